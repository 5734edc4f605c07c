"""Per-frame ``track()`` speed of the SiamRPN++ tracker, per model and mode (the body of
``siamrpnpp-bench``, whose command line is ``siamrpnpp_ros/bench.py``).

Modes (each runs in its own subprocess, so allocator settings and peak RSS do not leak
between modes):

``reference``    the network as pysot runs it: the search branch plus the RPN's template-branch
                 convs recomputed every frame (pysot's ``ModelBuilder.track``), unoptimised.
                 Crop and decoding are this package's (pysot's crop pads the whole frame when the
                 window leaves it, so pysot's own crop is slower than the figure shown).
``plain``        ``build_tracker(optimize=False)``: template kernels cached, nothing else.
``exact``        ``build_tracker()`` (default): bit-exact optimisations.
``fused``        ``fuse_bn=True``: BN/neck folding + NHWC on CPU (not bit-exact).
``onnxruntime``  ``backend="onnxruntime"`` (fp32, BN folded).
``fast``         ``fused`` with a smaller search crop (``--fast-size``, default 191 for
                 r50/mobilev2, 255 for alex).
``fast-ort``     ``onnxruntime`` with the smaller search crop.
``fp16``         ``fused`` in half precision (``fp16=True``); CUDA only.

Printed per run: median / p90 / FPS of ``track()``, the median split into crop, backbone, neck,
head (RPN incl. correlation, level fusion and the copy of the outputs to the host) and
decode+update; effective GFLOP/s (pysot's nominal FLOPs per ``track()`` divided by the median
time) against this machine's matmul and 3x3-conv peaks, measured here; peak RSS while tracking
(and peak CUDA memory). ``--accuracy`` adds the mean IoU of each mode's boxes against the ``exact`` mode's,
closed loop and teacher-forced (each frame searched from the exact run's state, which keeps
one divergent frame from spoiling the rest).

Timings are wall-clock; the load average is printed with them because other processes on the
machine distort them. Weights: ``--weights`` (``PATH`` for one model, ``name=PATH,...``, or a
directory with ``<name>.pth``), else seeded random weights with calibrated BatchNorm statistics.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from siamrpnpp_ros.benchmark.report import format_row
from siamrpnpp_ros.models import build_model, load_checkpoint
from siamrpnpp_ros.models.config import split_model_name
from siamrpnpp_ros.models.rpn import MultiRPN
from siamrpnpp_ros.sequences import open_sequence
from siamrpnpp_ros.tracking import SiamRPNTracker, preset_for, select_device
from siamrpnpp_ros.tracking.backends import build_backend, configure_threads

PROGRAM = "siamrpnpp-bench"
# Each (model, mode) runs as ``python -m CLI_MODULE --_child ...`` (see ``_child_command``).
CLI_MODULE = "siamrpnpp_ros.bench"
MODES: tuple[str, ...] = ("reference", "plain", "exact", "fused", "onnxruntime", "fast", "fast-ort", "fp16")
DEFAULT_MODES = ("reference", "exact", "fused", "onnxruntime", "fast")
DEFAULT_FAST_SIZE = {"r50": 191, "mobilev2": 191, "alex": 255}
SPLIT_KEYS = ("crop", "backbone", "neck", "head", "decode")
# "net" = backbone + neck + head; the only network figure for back-ends without modules (ORT).
RECORD_KEYS = ("track", "net", *SPLIT_KEYS)


# ----------------------------------------------------------------------------- machine facts
def machine_info() -> dict[str, Any]:
    """CPU model, core count, torch version and the load average (1, 5, 15 min)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info


def measure_peaks(device: str = "cpu", repeats: int = 20) -> dict[str, float]:
    """Best-of-``repeats`` GFLOP/s of a float32 1024x2048 @ 2048x1024 matmul and of a 3x3 conv
    (256 -> 512 channels, 31x31 input, the RPN's shape) on ``device``; short (~2 s on CPU).
    Best-of keeps it meaningful on a shared machine; the bench measures before and after the
    runs and reports the higher figure.
    """
    import torch
    import torch.nn.functional as F

    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(1024, 2048, generator=gen).to(dev)
    b = torch.randn(2048, 1024, generator=gen).to(dev)
    x = torch.randn(1, 256, 31, 31, generator=gen).to(dev)
    w = torch.randn(512, 256, 3, 3, generator=gen).to(dev)

    def best(fn: Any, flops: float) -> float:
        times = []
        with torch.inference_mode():
            for i in range(repeats + 2):
                _sync(dev)
                start = time.perf_counter()
                fn()
                _sync(dev)
                if i >= 2:  # warm-up
                    times.append(time.perf_counter() - start)
        return flops / min(times) / 1e9

    return {
        "matmul_gflops": best(lambda: a @ b, 2.0 * 1024 * 2048 * 1024),
        "conv3x3_gflops": best(lambda: F.conv2d(x, w), 2.0 * 29 * 29 * 512 * 256 * 9),
    }


def _sync(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- models
def seeded_model(name: str, seed: int = 0) -> Any:
    """A ``SiamRPN`` with deterministic random weights and BatchNorm statistics calibrated on
    random crops, so activations and head outputs have sane ranges (timing only; it does not
    track anything meaningful).
    """
    import torch

    torch.manual_seed(seed)
    model = build_model(name)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the calibration batches
    model.train()
    gen = torch.Generator().manual_seed(seed)
    size = preset_for(name).instance_size
    with torch.no_grad():
        for _ in range(2):
            z = torch.rand((2, 3, 127, 127), generator=gen) * 255
            x = torch.rand((2, 3, size, size), generator=gen) * 255
            model(x, model.template(z))
    model.eval()
    # Small regression deltas keep decoded boxes near the anchors.
    heads = [m for n, m in model.named_modules() if n.endswith("loc.head")]
    with torch.no_grad():
        for head in heads:
            head[3].weight.mul_(0.01)
            head[3].bias.zero_()
    return model


def resolve_weights(spec: str | None, models: Sequence[str]) -> dict[str, str | None]:
    """``--weights`` -> {model: path or None}: a path (one model), ``name=path,...`` or a directory."""
    result: dict[str, str | None] = {m: None for m in models}
    if not spec:
        return result
    if "=" in spec:
        for item in spec.split(","):
            name, _, path = item.partition("=")
            if name.strip() not in result:
                raise ValueError(f"--weights names model {name.strip()!r}, not among --models")
            result[name.strip()] = path.strip()
        return result
    folder = Path(spec)
    if folder.is_dir():
        for m in models:
            candidate = folder / f"{m}.pth"
            result[m] = str(candidate) if candidate.is_file() else None
        return result
    if len(models) != 1:
        raise ValueError("one --weights path needs exactly one --models entry (or use name=path,...)")
    result[models[0]] = str(folder)
    return result


class PysotReference:
    """The network as pysot's ``ModelBuilder`` runs it: exemplar features kept, and the RPN
    forward (template-branch convs included) recomputed on every search crop.

    ``template(z)`` stores the (cropped) neck features and returns the kernels so the tracker's
    flow is unchanged; ``__call__(x, kernels)`` ignores ``kernels`` and recomputes them.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.backbone = model.backbone
        self.neck = model.neck
        self._zf: list[Any] | None = None

    def to(self, *args: Any, **kwargs: Any) -> PysotReference:
        """Move or cast the wrapped model (``nn.Module.to`` arguments); returns self."""
        self.model = self.model.to(*args, **kwargs)
        return self

    def eval(self) -> PysotReference:
        """Put the wrapped model in eval mode; returns self."""
        self.model.eval()
        return self

    def half(self) -> PysotReference:
        """Make the wrapped model float16; returns self."""
        self.model = self.model.half()
        return self

    @property
    def device(self) -> Any:
        """The device of the wrapped model's parameters."""
        return next(self.model.parameters()).device

    def template(self, z: Any) -> tuple[Any, ...]:
        """Keep the exemplar features of ``z`` for later searches and return its kernels."""
        self._zf = self.model._features(z, is_template=True)
        return tuple(self.model.rpn_head.template_kernels(self._zf))

    def __call__(self, x: Any, kernels: Any) -> tuple[Any, Any]:
        """Raw ``(cls, loc)`` of search crop ``x``: the whole RPN on the kept exemplar features.

        ``kernels`` is not used; pysot recomputes them every frame.
        """
        assert self._zf is not None, "template() first"
        xf = self.model._features(x, is_template=False)
        head = self.model.rpn_head
        if isinstance(head, MultiRPN):
            cls, loc = head(self._zf, xf)
        else:
            cls, loc = head(self._zf[0], xf[0])
        return cls.float(), loc.float()


def nominal_flops(model: Any, instance_size: int) -> dict[str, float]:
    """FLOPs as pysot counts them (2 x multiply-adds of every conv and correlation) per ``track()`` and per
    template, for a ``SiamRPN`` at ``instance_size``; counted by running it once.
    """
    import torch

    counts = {"value": 0.0}

    def hook(module: Any, inputs: Any, output: Any) -> None:
        kh, kw = module.kernel_size
        counts["value"] += 2.0 * output.numel() * (module.in_channels // module.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    reference = PysotReference(model)
    device = next(model.parameters()).device
    try:
        with torch.inference_mode():
            z = torch.zeros((1, 3, 127, 127), device=device)
            reference.template(z)
            template_flops = counts["value"]
            counts["value"] = 0.0
            x = torch.zeros((1, 3, instance_size, instance_size), device=device)
            cls, _ = reference(x, None)
            track_flops = counts["value"]
    finally:
        for handle in handles:
            handle.remove()
    # The depth-wise correlations are functional convs (no module): C x S^2 x k^2 MACs each.
    score = cls.shape[-1]
    for z_f in reference._zf or []:
        k = z_f.shape[-1] - 2
        track_flops += 2 * 2.0 * z_f.shape[1] * score * score * k * k  # cls + loc branches
    return {"track_gflop": track_flops / 1e9, "template_gflop": template_flops / 1e9}


# ----------------------------------------------------------------------------- frames
def synthetic_sequence(
    frames: int, width: int = 640, height: int = 480, seed: int = 0
) -> tuple[list[np.ndarray], tuple[float, float, float, float]]:
    """``frames`` BGR uint8 frames of a textured box drifting over a textured background, and
    its initial box ``(x, y, w, h)`` (deterministic for a seed).
    """
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    background = np.kron(background, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]
    target = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    target = np.kron(target, np.ones((6, 6, 1), dtype=np.uint8))  # 72 x 96 px
    th, tw = target.shape[:2]
    out: list[np.ndarray] = []
    for i in range(frames):
        frame = background.copy()
        x = int(width / 2 - tw / 2 + 120 * math.sin(i / 15.0))
        y = int(height / 2 - th / 2 + 60 * math.sin(i / 23.0))
        frame[y : y + th, x : x + tw] = target
        out.append(frame)
    x0 = int(width / 2 - tw / 2)
    y0 = int(height / 2 - th / 2)
    return out, (float(x0), float(y0), float(tw), float(th))


def load_frames(video: str | None, count: int) -> tuple[list[np.ndarray], tuple[float, float, float, float], str]:
    """``count`` frames (the init frame included) from ``video`` (looped if shorter) or synthetic."""
    if video is None:
        frames, box = synthetic_sequence(count)
        return frames, box, "synthetic 640x480"

    sequence = open_sequence(video)
    frames = []
    for frame in sequence:
        frames.append(frame)
        if len(frames) >= count:
            break
    if not frames:
        raise ValueError(f"{video} yielded no frames")
    if sequence.groundtruth is None or len(sequence.groundtruth) == 0:
        raise ValueError(f"{video} has no groundtruth.txt for the initial box")
    x, y, w, h = (float(v) for v in sequence.groundtruth[0])
    while len(frames) < count:  # loop short sequences (timing only)
        frames.extend(frames[1 : count - len(frames) + 1])
    height, width = frames[0].shape[:2]
    return frames, (x, y, w, h), f"{video} ({width}x{height})"


# ----------------------------------------------------------------------------- one run
def _timed(function: Any, timer: "_Timer") -> Any:
    """``function`` with each call timed by ``timer``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        timer.pre()
        try:
            return function(*args, **kwargs)
        finally:
            timer.post()

    return wrapper


class _Timer:
    """Accumulates elapsed seconds around forward calls of a module (CUDA-synchronised)."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.total = 0.0
        self._start = 0.0

    def pre(self, *_: Any) -> None:
        _sync(self.device)
        self._start = time.perf_counter()

    def post(self, *_: Any) -> None:
        _sync(self.device)
        self.total += time.perf_counter() - self._start


def _attach(module: Any, timer: _Timer) -> list[Any]:
    if module is None:
        return []
    return [module.register_forward_pre_hook(timer.pre), module.register_forward_hook(timer.post)]


def build_for_mode(mode: str, model_name: str, weights: str | None, device: str, fast_size: int, seed: int) -> Any:
    """The tracker for one bench mode (see the module docstring)."""
    dev = select_device(device)
    model = seeded_model(model_name, seed)
    if weights:
        load_checkpoint(model, weights)
    config = preset_for(model_name)
    if mode in ("fast", "fast-ort"):
        config = config.replace(instance_size=fast_size)
    if mode == "reference":
        network: Any = PysotReference(model.to(dev).eval())
    elif mode == "plain":
        network = build_backend("torch", model, dev, optimize=False)
    elif mode == "exact":
        network = build_backend("torch", model, dev, optimize=True)
    elif mode in ("fused", "fast", "fp16"):
        network = build_backend("torch", model, dev, fuse_bn=True)
    elif mode in ("onnxruntime", "fast-ort"):
        network = build_backend("onnxruntime", model, dev)
    else:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    # Any: it also carries the plain model, which FLOP counting needs (run_one and
    # benchmark.targets delete it again); SiamRPNTracker declares no such attribute.
    # fp16 on a CPU device is refused here, by SiamRPNTracker, with a clear message.
    tracker: Any = SiamRPNTracker(network, config, device=dev, fp16=mode == "fp16")
    tracker._bench_source = model  # noqa: SLF001
    return tracker


def run_one(args: argparse.Namespace) -> dict[str, Any]:
    """Benchmark one (model, mode) in this process; returns the result record."""
    import torch
    from tqdm import tqdm

    configure_threads(args.threads)
    weights = resolve_weights(args.weights, [args.model])[args.model]
    fast_size = _fast_size(args, args.model)
    tracker = build_for_mode(args.mode, args.model, weights, args.device, fast_size, args.seed)
    device = tracker.device
    net = tracker.model
    flops = nominal_flops(tracker._bench_source, tracker.config.instance_size)  # noqa: SLF001
    del tracker._bench_source  # noqa: SLF001
    frames, init_box, source = load_frames(args.video, args.warmup + args.frames + 1)

    # Split instrumentation: crop and network by wrapping the tracker's own steps, backbone and
    # neck by module hooks; head = network - backbone - neck, decode = track - crop - network.
    crop_t, net_t, backbone_t, neck_t = _Timer(device), _Timer(device), _Timer(device), _Timer(device)
    search_crop, run_model = tracker.search_crop, tracker._run_model

    tracker.search_crop = _timed(search_crop, crop_t)
    tracker._run_model = _timed(run_model, net_t)
    handles: list[Any] = []
    has_modules = isinstance(net, torch.nn.Module) or isinstance(net, PysotReference)
    if has_modules:
        handles += _attach(getattr(net, "backbone", None), backbone_t)
        if hasattr(net, "levels"):  # FusedSiamRPN: per-level neck convs (absent when folded)
            for level in net.levels:
                handles += _attach(level.neck, neck_t)
        else:
            handles += _attach(getattr(net, "neck", None), neck_t)

    teacher = _load_teacher(args.teacher)
    records: dict[str, list[float]] = {k: [] for k in RECORD_KEYS}
    boxes: list[list[float]] = []
    states: list[list[float]] = []
    tf_boxes: list[list[float]] = []
    rss_peak = 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    process = _psutil_process()
    tracker.init(frames[0], init_box)
    # Template features are computed once; the backbone hook must only see search crops.
    progress = tqdm(
        total=len(frames) - 1,
        desc=f"{args.model}/{args.mode}",
        unit="frame",
        file=sys.stderr,
        leave=False,
        disable=args.quiet,
    )
    for index, frame in enumerate(frames[1:]):
        for timer in (crop_t, net_t, backbone_t, neck_t):
            timer.total = 0.0
        states.append([*tracker.center, *tracker.size])
        start = time.perf_counter()
        result = tracker.track(frame)
        elapsed = time.perf_counter() - start
        boxes.append(list(result.box))
        if index >= args.warmup:
            records["track"].append(elapsed)
            records["crop"].append(crop_t.total)
            records["net"].append(net_t.total)
            if has_modules:
                records["backbone"].append(backbone_t.total)
                records["neck"].append(neck_t.total)
                records["head"].append(net_t.total - backbone_t.total - neck_t.total)
            records["decode"].append(elapsed - crop_t.total - net_t.total)
        if process is not None:
            rss_peak = max(rss_peak, process.memory_info().rss)
        progress.update(1)
    progress.close()
    if teacher is not None:  # teacher-forced pass: each frame from the reference run's state
        for frame, state in zip(frames[1:], teacher, strict=True):
            tracker.set_state(state[:2], state[2:4])
            tf_boxes.append(list(tracker.track(frame).box))
    for handle in handles:
        handle.remove()

    track = np.asarray(records["track"])
    median = float(np.median(track))
    record: dict[str, Any] = {
        "model": args.model,
        "mode": args.mode,
        "device": str(device),
        "instance_size": tracker.config.instance_size,
        "frames": int(track.size),
        "source": source,
        "median_ms": median * 1e3,
        "p90_ms": float(np.percentile(track, 90)) * 1e3,
        "fps": float(track.size / track.sum()),
        "split_ms": {k: (float(np.median(records[k])) * 1e3 if records[k] else None) for k in RECORD_KEYS[1:]},
        "nominal_gflop": flops["track_gflop"],
        "template_gflop": flops["template_gflop"],
        "gflops": flops["track_gflop"] / median,
        # Peak RSS while tracking (sampled every frame; the process's lifetime peak, which
        # includes building and fusing the model, is "maxrss_mb").
        "rss_peak_mb": (rss_peak or _maxrss_bytes()) / 2**20,
        "maxrss_mb": _maxrss_bytes() / 2**20,
        "threads": torch.get_num_threads(),
        "loadavg": list(os.getloadavg()),
        "boxes": boxes,
        "states": states,
        "tf_boxes": tf_boxes,
    }
    if device.type == "cuda":
        record["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return record


def _load_teacher(path: str | None) -> np.ndarray | None:
    return None if not path else np.load(path)


def _psutil_process() -> Any:
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process()


def _maxrss_bytes() -> int:
    """This process's peak RSS (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(value) if sys.platform == "darwin" else int(value) * 1024


def _fast_size(args: argparse.Namespace, model: str) -> int:
    sizes = dict(DEFAULT_FAST_SIZE)
    if args.fast_size:
        for item in args.fast_size.split(","):
            if "=" in item:
                name, _, value = item.partition("=")
                sizes[name.strip()] = int(value)
            else:
                sizes = {m: int(item) for m in sizes}
    if model in sizes:
        return sizes[model]

    return sizes[split_model_name(model)[0]]  # a thinner model runs at its preset's fast size


# ----------------------------------------------------------------------------- orchestration
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of matching rows of two ``(N, 4)`` arrays of top-left ``(x, y, w, h)`` boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _child_command(
    args: argparse.Namespace, model: str, mode: str, weights: str | None, teacher: str | None
) -> list[str]:
    # ``weights``: this model's own path, as the child benchmarks one model only.
    cmd = [
        sys.executable,
        "-m",
        CLI_MODULE,
        "--_child",
        "--model",
        model,
        "--mode",
        mode,
        "--device",
        args.device,
        "--frames",
        str(args.frames),
        "--warmup",
        str(args.warmup),
        "--seed",
        str(args.seed),
    ]
    for flag, value in (
        ("--weights", weights),
        ("--video", args.video),
        ("--threads", args.threads),
        ("--fast-size", args.fast_size),
        ("--teacher", teacher),
    ):
        if value:
            cmd += [flag, str(value)]
    if args.quiet:
        cmd.append("--quiet")
    return cmd


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Run every (model, mode) (in subprocesses unless ``--in-process``) and collect the records."""
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    weights = resolve_weights(args.weights, models)  # validated before any run
    if args.accuracy and "exact" in modes:
        modes = ["exact"] + [m for m in modes if m != "exact"]  # the teacher runs first

    configure_threads(args.threads)
    info = machine_info()
    peaks = measure_peaks(_peak_device(args.device))
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="siamrpnpp_bench_") as tmp:
        for model in models:
            teacher_path: str | None = None
            exact_record: dict[str, Any] | None = None
            for mode in modes:
                if mode in ("onnxruntime", "fast-ort") and not _has_onnxruntime():
                    print(f"{PROGRAM}: skipping {model}/{mode}: onnxruntime is not installed", file=sys.stderr)
                    continue
                child_teacher = teacher_path if (args.accuracy and mode != "exact") else None
                if args.in_process:
                    ns = argparse.Namespace(**vars(args))
                    ns.model, ns.mode, ns.teacher = model, mode, child_teacher
                    ns.weights = weights[model]
                    record = run_one(ns)
                else:
                    proc = subprocess.run(
                        _child_command(args, model, mode, weights[model], child_teacher),
                        stdout=subprocess.PIPE,
                        text=True,
                        env=_child_env(),
                    )
                    if proc.returncode != 0:
                        raise RuntimeError(f"{model}/{mode} failed (exit {proc.returncode})")
                    record = json.loads(proc.stdout.strip().splitlines()[-1])
                _add_peaks(record, peaks)
                if mode == "exact":
                    exact_record = record
                    if args.accuracy:
                        teacher_path = os.path.join(tmp, f"{model}_states.npy")
                        np.save(teacher_path, np.asarray(record["states"]))
                elif exact_record is not None and args.accuracy:
                    ref = np.asarray(exact_record["boxes"])
                    record["iou_closed"] = float(box_iou(np.asarray(record["boxes"]), ref).mean())
                    if record["tf_boxes"]:
                        record["iou_teacher"] = float(box_iou(np.asarray(record["tf_boxes"]), ref).mean())
                results.append(record)
                if not args.quiet:
                    print(format_row(record), file=sys.stderr)
    order = {mode: i for i, mode in enumerate(m.strip() for m in args.modes.split(","))}
    results.sort(key=lambda r: (models.index(r["model"]), order.get(r["mode"], len(order))))
    after = measure_peaks(_peak_device(args.device))
    peaks = {k: max(v, after[k]) for k, v in peaks.items()}
    for record in results:
        _add_peaks(record, peaks)
    return {"machine": info, "peaks": peaks, "results": results, "loadavg_end": list(os.getloadavg())}


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _peak_device(device: str) -> str:
    return str(select_device(device))


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def _add_peaks(record: dict[str, Any], peaks: dict[str, float]) -> None:
    record["pct_matmul_peak"] = 100.0 * record["gflops"] / peaks["matmul_gflops"]
    record["pct_conv_peak"] = 100.0 * record["gflops"] / peaks["conv3x3_gflops"]
