"""Shared fixtures: the pysot parity material in test/data/parity (see its README.md)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Without the ROS wheels the ROS test files cannot be imported: they are left out then.
collect_ignore_glob = [] if importlib.util.find_spec("rclpy") else ["test_*_ros.py"]
# In the repository; SIAMRPNPP_PARITY_DIR may point at another copy.
PARITY_DIR = Path(os.environ.get("SIAMRPNPP_PARITY_DIR") or Path(__file__).resolve().parent / "data" / "parity")

# model name -> (compact weights, keys file, golden run name)
PARITY_MODELS = {
    "r50": ("r50_s0.npz", "keys_r50.txt", "r50_s0_video_s0"),
    "mobilev2": ("mobilev2_s1.npz", "keys_mobilev2.txt", "mobilev2_s1_video_s0"),
    "alex": ("alex_s0.npz", "keys_alex.txt", "alex_s0_video_s0"),
}


@pytest.fixture(scope="module")
def parity_model(parity_checkpoint):
    """``parity_model(name)``: a preset model with the parity weights loaded (read-only)."""
    from siamrpnpp_ros.models import build_model, load_checkpoint

    cache: dict = {}

    def get(name: str):
        if name not in cache:
            model = build_model(name)
            load_checkpoint(model, parity_checkpoint(name))
            cache[name] = model
        return cache[name]

    return get


@pytest.fixture(scope="module")
def two_torch_threads():
    """Run with 2 torch threads, as the goldens were made; other counts move boxes by ~1e-5 px."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    if not (PARITY_DIR / "FACTS.md").is_file():
        pytest.fail(f"pysot parity material not found at {PARITY_DIR} (it is part of the repository: test/data/parity)")
    return PARITY_DIR


def _import_parity_weights(parity_dir: Path):
    spec = importlib.util.spec_from_file_location("parity_weights", parity_dir / "parity_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def parity_state_dict(parity_dir: Path):
    """``parity_state_dict(model) -> {key: np.ndarray}`` in pysot's key order."""
    parity_weights = _import_parity_weights(parity_dir)
    cache: dict[str, dict[str, np.ndarray]] = {}

    def get(model: str) -> dict[str, np.ndarray]:
        if model not in cache:
            npz, keys, _ = PARITY_MODELS[model]
            cache[model] = parity_weights.load_state_dict(str(parity_dir / npz), str(parity_dir / keys))
        return cache[model]

    return get


@pytest.fixture(scope="session")
def parity_checkpoint(parity_state_dict, tmp_path_factory):
    """``parity_checkpoint(model) -> Path`` of a pysot-format ``{'state_dict': ...}`` .pth file."""
    import torch

    cache: dict[str, Path] = {}

    def get(model: str) -> Path:
        if model not in cache:
            path = tmp_path_factory.mktemp("parity_ckpt") / f"{model}.pth"
            state = OrderedDict(
                # np.array keeps 0-d buffers (num_batches_tracked) 0-d, as in pysot's own files.
                (k, torch.from_numpy(np.array(v)))
                for k, v in parity_state_dict(model).items()
            )
            torch.save({"state_dict": state}, path)
            cache[model] = path
        return cache[model]

    return get


@pytest.fixture(scope="session")
def parity_video(parity_dir: Path, tmp_path_factory) -> Path:
    """The 60-frame synthetic sequence the goldens were made on (``img/0001.png``..., ``groundtruth.txt``)."""
    out = tmp_path_factory.mktemp("video_s0")
    subprocess.run(
        [sys.executable, str(parity_dir / "make_video.py"), "--out", str(out), "--frames", "60", "--seed", "0"],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="session")
def parity_frames(parity_video: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """The parity video as read with cv2.imread (BGR uint8 frames) and its (N, 4) ground truth x, y, w, h."""
    import cv2

    frames = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sorted((parity_video / "img").glob("*.png"))]
    assert len(frames) == 60 and all(frame is not None for frame in frames)
    groundtruth = np.loadtxt(parity_video / "groundtruth.txt", delimiter=",", ndmin=2)
    return frames, groundtruth


@pytest.fixture(scope="session")
def parity_golden(parity_dir: Path):
    """``parity_golden(model) -> ndarray`` of pysot's rows ``idx, x, y, w, h, best_score`` per frame."""

    def get(model: str) -> np.ndarray:
        _, _, run = PARITY_MODELS[model]
        return np.loadtxt(parity_dir / "expected" / f"{run}.txt", delimiter=",", comments="#", ndmin=2)

    return get


@pytest.fixture(scope="session")
def parity_dump(parity_dir: Path):
    """``parity_dump(model) -> {name: ndarray}`` of frame 1: ``z_crop``, ``x_crop_f1``, ``cls_f1``, ``loc_f1``."""

    def get(model: str) -> dict[str, np.ndarray]:
        _, _, run = PARITY_MODELS[model]
        folder = parity_dir / "expected" / f"{run}_dump"
        return {p.stem: np.load(p) for p in sorted(folder.glob("*.npy"))}

    return get


# ---------------------------------------------------------------------------
# ROS: real rclpy nodes in separate processes on an isolated domain.


@pytest.fixture(scope="session")
def ros_environment():
    """The environment for ROS peers, also applied to this process before rclpy starts
    (``node_under_test.isolated_domain``: this session's own domain, on this host only).
    """
    from siamrpnpp_ros.tools.node_under_test import isolated_domain, pick_domain_id

    try:
        import rclpy  # noqa: F401

        import siamrpnpp_ros.msg  # noqa: F401
    except ImportError as error:
        pytest.fail(f"ROS 2 Python packages or generated messages missing ({error}); run tools/setup_venv.sh")
    with isolated_domain(pick_domain_id()) as env:
        yield env


@pytest.fixture
def ros_processes(request):
    """The processes a test started; stopped after it, their output printed when it failed."""
    processes: list = []
    yield processes
    for process in processes:
        process.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for process in processes:
            print(f"--- output of {' '.join(process.args)} ---\n{process.output()}")


@pytest.fixture
def ros_peer(ros_environment, ros_processes, tmp_path):
    """``ros_peer(*python_args) -> PythonProcess``: a Python program on the session's domain."""
    from siamrpnpp_ros.tools.node_under_test import PythonProcess

    def start(*args: str) -> PythonProcess:
        peer = PythonProcess(args, ros_environment, tmp_path / f"peer{len(ros_processes)}.log")
        ros_processes.append(peer)
        return peer

    return start


@pytest.fixture
def tracker_node(ros_environment, ros_processes, tmp_path):
    """``tracker_node(*NAME:=VALUE, lifecycle=False, remaps=..., params_file=...) -> PythonProcess``:
    the tracker node on the session's domain (``node_under_test.start_tracker_node``).
    """
    from siamrpnpp_ros.tools.node_under_test import PythonProcess, start_tracker_node

    def start(*parameters: str, **options) -> PythonProcess:
        node = start_tracker_node(parameters, ros_environment, tmp_path / f"peer{len(ros_processes)}.log", **options)
        ros_processes.append(node)
        return node

    return start


@pytest.fixture
def ros_node(ros_environment, request):
    """A real rclpy node in the test process (see node_under_test.InProcessNode)."""
    from siamrpnpp_ros.tools.node_under_test import InProcessNode

    node = InProcessNode("test_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:40])
    yield node
    node.close()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures can tell whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


ROS_FIXTURES = frozenset({"ros_environment", "ros_processes", "ros_peer", "tracker_node", "ros_node"})


def pytest_collection_modifyitems(config, items):
    """Keep the lanes honest: a test that uses a ROS fixture must carry the ``ros`` marker."""
    unmarked = [
        item.nodeid for item in items if ROS_FIXTURES & set(item.fixturenames) and not item.get_closest_marker("ros")
    ]
    if unmarked:
        raise pytest.UsageError(f"tests using a ROS fixture need @pytest.mark.ros: {', '.join(unmarked)}")
