"""The ``siamrpnpp-track`` CLI, run as ``python -m siamrpnpp_ros.track`` in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from parity_support import first_ill_conditioned_frame

from siamrpnpp_ros.tracking import preset_for

REPO_ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^frames=(\d+) median_ms=(\d+\.\d+) p90_ms=(\d+\.\d+) fps=(\d+\.\d+) device=(\S+)$")
ROW = re.compile(r"^-?\d+\.\d{6}(,-?\d+\.\d{6}){4}$")


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # This checkout, not whatever copy of the package is installed.
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OMP_NUM_THREADS", "2")
    return subprocess.run(
        [sys.executable, "-m", "siamrpnpp_ros.track", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def first_12_frames_on_cpu(parity_checkpoint, parity_video) -> list[str]:
    """CLI arguments: the alex parity weights on the first 12 frames of the parity video, on the CPU."""
    return [
        "--weights", str(parity_checkpoint("alex")),
        "--video", str(parity_video),
        "--device", "cpu",
        "--max-frames", "12",
    ]  # fmt: skip


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0, f"expected failure, got exit 0; stdout: {result.stdout}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got: {result.stderr!r}"
    assert lines[0].startswith("siamrpnpp-track: error:"), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


@pytest.mark.slow
def test_tracks_parity_video_like_pysot(parity_checkpoint, parity_video, parity_golden, tmp_path):
    out = tmp_path / "results" / "alex.txt"
    video = tmp_path / "annotated.mp4"
    result = run_cli(
        "--model", "alex",
        "--weights", str(parity_checkpoint("alex")),
        "--video", str(parity_video),
        "--device", "cpu",
        "--short-term",  # pysot's SiamRPNTracker made the goldens
        "--out", str(out),
        "--show-video", str(video),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr

    last_line = result.stdout.strip().splitlines()[-1]
    match = SUMMARY.match(last_line)
    assert match, f"last stdout line is not machine-readable: {last_line!r}"
    assert int(match.group(1)) == 60 and match.group(5) == "cpu"
    median, p90, fps = (float(match.group(i)) for i in (2, 3, 4))
    assert 0 < median <= p90 and fps > 0

    lines = out.read_text().splitlines()
    assert len(lines) == 60
    for line in lines:
        assert ROW.match(line), f"bad result line {line!r}"
    rows = np.array([[float(v) for v in line.split(",")] for line in lines])
    golden = parity_golden("alex")
    assert rows[0].tolist() == [*golden[0, 1:5], 1.0]
    # Closed loop, compared as far as that is well conditioned on any CPU (parity_support).
    first = cv2.imread(str(parity_video / "img" / "0001.png"))
    end = first_ill_conditioned_frame(golden, preset_for("alex"), first.shape[1], first.shape[0])
    assert end > 5, "too few well-conditioned frames to compare"
    box_error = np.abs(rows[:end, :4] - golden[:end, 1:5]).max()
    score_error = np.abs(rows[:end, 4] - golden[:end, 5]).max()
    assert box_error <= 0.01, f"max box error {box_error} px"
    assert score_error <= 1e-4 + 5e-7, f"max score error {score_error}"

    capture = cv2.VideoCapture(str(video))
    assert capture.isOpened()
    frames = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        assert frame.shape == (480, 640, 3)
        frames += 1
    capture.release()
    assert frames == 60


@pytest.mark.slow
def test_missing_video(parity_checkpoint, tmp_path):
    result = run_cli("--model", "alex", "--weights", str(parity_checkpoint("alex")),
                     "--video", str(tmp_path / "nope.mp4"), "--init", "1,1,10,10")  # fmt: skip
    assert_one_line_error(result, "nope.mp4")


@pytest.mark.slow
def test_empty_folder(parity_checkpoint, tmp_path):
    (tmp_path / "img").mkdir()
    result = run_cli("--model", "alex", "--weights", str(parity_checkpoint("alex")),
                     "--video", str(tmp_path), "--init", "1,1,10,10")  # fmt: skip
    assert_one_line_error(result, "no images")


@pytest.mark.slow
def test_unreadable_video(parity_checkpoint, tmp_path):
    bogus = tmp_path / "broken.mp4"
    bogus.write_bytes(b"this is not a video")
    result = run_cli("--model", "alex", "--weights", str(parity_checkpoint("alex")),
                     "--video", str(bogus), "--init", "1,1,10,10")  # fmt: skip
    assert_one_line_error(result, "broken.mp4")


@pytest.mark.parametrize(
    "init, fragment",
    [("700,10,20,20", "outside"), ("10,10,0,20", "width"), ("1,2,3", "x,y,w,h"), ("a,b,c,d", "x,y,w,h")],
)
@pytest.mark.slow
def test_bad_init_box(parity_checkpoint, parity_video, init, fragment):
    result = run_cli("--model", "alex", "--weights", str(parity_checkpoint("alex")),
                     "--video", str(parity_video), "--init", init)  # fmt: skip
    assert_one_line_error(result, fragment)


@pytest.mark.slow
def test_no_init_and_no_groundtruth(parity_checkpoint, parity_video, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "0001.png").write_bytes((parity_video / "img" / "0001.png").read_bytes())
    result = run_cli("--model", "alex", "--weights", str(parity_checkpoint("alex")), "--video", str(folder))
    assert_one_line_error(result, "--init")


@pytest.mark.slow
def test_mismatched_checkpoint(parity_checkpoint, parity_video):
    result = run_cli("--model", "alex", "--weights", str(parity_checkpoint("mobilev2")), "--video", str(parity_video))
    assert_one_line_error(result, "alex")


def test_main_returns_exit_codes_in_process(parity_video, capsys):
    from siamrpnpp_ros.track import main

    assert main(["--model", "alex", "--video", str(parity_video), "--init", "1;2"]) == 2
    assert "--init" in capsys.readouterr().err
    code = main(["--model", "alex", "--video", str(parity_video), "--device", "cpu"])
    assert code == 1
    assert "--weights" in capsys.readouterr().err


@pytest.mark.slow
def test_strip_of_the_first_frames(parity_checkpoint, parity_video, tmp_path, capsys):
    from siamrpnpp_ros.track import main, strip_indices

    assert strip_indices(20, 6) == [0, 4, 8, 11, 15, 19]
    assert strip_indices(3, 6) == [0, 1, 2] and strip_indices(1, 6) == [0]
    out, strip = tmp_path / "boxes.txt", tmp_path / "strip.png"
    code = main([
        "--model", "alex",
        *first_12_frames_on_cpu(parity_checkpoint, parity_video),
        "--strip", str(strip), "--strip-frames", "4",
        "--out", str(out),
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 12
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("frames=12 ")
    grid = cv2.imread(str(strip))
    frame = cv2.imread(str(sorted((parity_video / "img").glob("*"))[0])) if (parity_video / "img").is_dir() else None
    assert grid is not None and grid.shape[1] == 3 * 400  # 4 frames: two rows of up to three
    if frame is not None:
        assert grid.shape[0] == 2 * round(frame.shape[0] * 400 / frame.shape[1])


@pytest.mark.slow
def test_several_targets_one_results_file_each(parity_checkpoint, parity_video, parity_golden, tmp_path, capsys):
    """--init twice plus an --init-file target selected on frame 6: one results file per target,
    each equal to the single-target tracker's boxes for that target alone; the strip draws them."""
    from siamrpnpp_ros.track import main, target_out_path
    from siamrpnpp_ros.tracking import build_tracker

    frames = [cv2.imread(str(p)) for p in sorted((parity_video / "img").glob("*.png"))[:12]]
    golden = parity_golden("alex")
    boxes = {1: (tuple(golden[0, 1:5]), 0), 2: ((40.0, 30.0, 80.0, 100.0), 0), 3: ((420.0, 300.0, 60.0, 50.0), 6)}
    init_file = tmp_path / "boxes.txt"
    init_file.write_text("# the third target, selected on frame 6\n420,300,60,50@6\n", encoding="utf-8")
    out, strip = tmp_path / "res.txt", tmp_path / "strip.png"
    first = ",".join(repr(float(v)) for v in boxes[1][0])
    code = main([
        "--model", "alex",
        *first_12_frames_on_cpu(parity_checkpoint, parity_video),
        "--short-term",
        "--init", first, "--init", "40,30,80,100", "--init-file", str(init_file),
        "--out", str(out),
        "--strip", str(strip), "--strip-frames", "3",
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.strip().splitlines()[-1].startswith("frames=12 ")
    assert captured.out.strip().endswith(" targets=3")
    assert not out.exists() and cv2.imread(str(strip)) is not None
    for target_id, (box, start) in boxes.items():
        path = target_out_path(str(out), target_id)
        assert path.name == f"res_target{target_id}.txt"
        rows = np.array([[float(v) for v in line.split(",")] for line in path.read_text().splitlines()])
        assert rows.shape == (12 - start, 5)
        assert np.allclose(rows[0], [*box, 1.0], atol=1e-6)
        tracker = build_tracker("alex", parity_checkpoint("alex"), device="cpu")
        tracker.init(frames[start], box)
        alone = np.array([[*r.box, r.score] for r in (tracker.track(f) for f in frames[start + 1 :])])
        assert np.abs(rows[1:, :4] - alone[:, :4]).max() <= 0.01 and np.abs(rows[1:, 4] - alone[:, 4]).max() <= 1e-4

    assert main(["--model", "alex", "--video", str(parity_video), "--init", "1,2,3,4@x"]) == 2
    assert "@" in capsys.readouterr().err
    assert main([
        "--model", "alex",
        "--weights", str(parity_checkpoint("alex")),
        "--video", str(parity_video),
        "--max-frames", "5",
        "--init", "1,2,30,40@5",
    ]) == 2  # fmt: skip
    assert "only 5 frames" in capsys.readouterr().err


@pytest.mark.slow
def test_default_runs_the_nodes_default_session(parity_checkpoint, parity_video, tmp_path, capsys):
    """Without --short-term the CLI tracks as the node does by default (``build_session``: the
    long-term tracker with the LOST thresholds driving its wide search), so both agree. A
    presence model that doubts every frame makes the wide search show."""
    from siamrpnpp_ros.track import main
    from siamrpnpp_ros.tracking.config import load_tracker_config
    from siamrpnpp_ros.tracking.factory import build_session

    frames = [cv2.imread(str(p)) for p in sorted((parity_video / "img").glob("*.png"))[:12]]
    config_file = tmp_path / "doubtful.yaml"
    config_file.write_text(
        "siamrpnpp_tracker:\n  ros__parameters:\n    model: alex\n    tracker:\n"
        "      presence_weights: [-2.0, 1.0, 0.0, 0.0]\n",
        encoding="utf-8",
    )
    init = (200.0, 150.0, 90.0, 70.0)
    out = tmp_path / "res.txt"
    code = main([
        "--config", str(config_file),
        *first_12_frames_on_cpu(parity_checkpoint, parity_video),
        "--init", ",".join(map(str, init)),
        "--out", str(out),
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = np.array([[float(v) for v in line.split(",")] for line in out.read_text().splitlines()])

    _, config = load_tracker_config(str(config_file), None)
    session = build_session("alex", parity_checkpoint("alex"), config=config, device="cpu")
    session.start(frames[0], init, target_id=1)
    expected, wide = [], []
    for frame in frames[1:]:
        tracked = session.step(frame).tracker_result
        expected.append([*tracked.box, tracked.presence])
        wide.append(tracked.search_wide)
    assert any(wide) and not all(wide), wide
    np.testing.assert_allclose(rows[1:], np.round(expected, 6), atol=2e-6)
