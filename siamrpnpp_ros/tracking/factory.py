"""One place that turns (model name, weights, device, precision) into a ready tracker.

Used by the offline CLI and the ROS node alike, so both build trackers the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from siamrpnpp_ros.models import build_model, load_checkpoint, model_config

from .backends import build_backend, configure_threads
from .config import TrackerConfig, preset_for
from .longterm import LongTermTracker
from .session import LostPolicy, TrackingSession, align_long_term_thresholds
from .tracker import SiamRPNTracker

# Bundled weights, one file per model name: ``default_<model>.pth``.
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "data"

#: The model whose weights ship with the package (trained by ``training/default_model.py``
#: on generated data; see the README): what runs when no model and no weights are given.
DEFAULT_MODEL = "alex-w0.25"


def select_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve ``"auto" | "cpu" | "cuda" | "cuda:N"`` (or a ``torch.device``) to a usable device.

    ``"auto"`` picks ``cuda`` when available, else ``cpu``. Asking for CUDA on a machine without
    it, or for a GPU index that does not exist, raises ValueError saying so.
    """
    if isinstance(device, torch.device):
        requested = device
    else:
        text = str(device).strip().lower()
        if text == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            requested = torch.device(text)
        except RuntimeError:
            raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if requested.type == "cpu":
        return torch.device("cpu")
    if requested.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!s} was requested but CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if requested.index is not None and requested.index >= count:
            raise ValueError(f"device {device!s} was requested but only {count} CUDA device(s) exist")
        return requested
    raise ValueError(f"unsupported device {device!r}; use auto, cpu, cuda or cuda:N")


def default_weights_path(model_name: str) -> Path:
    """The bundled weights file for ``model_name``: ``siamrpnpp_ros/data/default_<model>.pth``
    (the canonical name, so ``alex-w0.50`` finds ``alex-w0.5``'s). FileNotFoundError for a model
    without bundled weights: only ``DEFAULT_MODEL`` has them.
    """
    path = DEFAULT_WEIGHTS_DIR / f"default_{model_config(model_name).name}.pth"
    if not path.is_file():
        raise FileNotFoundError(
            f"no bundled weights for model {model_name!r} (looked for {path}); pass its checkpoint "
            f"(--weights, or the node's weights parameter), or use {DEFAULT_MODEL!r}, whose weights ship "
            "with the package"
        )
    return path


def build_tracker(
    model_name: str,
    weights: str | os.PathLike[str] | None,
    device: str | torch.device = "auto",
    fp16: bool = False,
    config: TrackerConfig | None = None,
    long_term: bool = False,
    *,
    optimize: bool = True,
    fuse_bn: bool = False,
    backend: str = "torch",
    instance_size: int | None = None,
    threads: int | None = None,
    channels_last: bool | None = None,
    compile: bool = False,
    onnx_cache_dir: str | os.PathLike[str] | None = None,
) -> SiamRPNTracker:
    """Build the network, load a pysot checkpoint and wrap it in a tracker.

    ``model_name``: "r50" | "mobilev2" | "alex", or a thinner variant such as "alex-w0.5".
    ``weights``: checkpoint path, or None for the bundled ``default_<model_name>.pth``
    (only ``DEFAULT_MODEL`` ships; others raise FileNotFoundError). ``device``: see ``select_device``.
    ``fp16`` runs the network in half precision and is refused (ValueError) unless the device
    is CUDA, since CPU half convolutions are slow or unsupported. It implies ``fuse_bn`` (see
    the comment in the body). ``config`` defaults to the
    model's pysot preset. ``long_term`` returns a ``LongTermTracker``.
    A checkpoint that does not fit the model raises ``siamrpnpp_ros.models.CheckpointError``.

    Speed options (keyword-only; tiers and measurements in ``tracking/backends.py`` and the README):

    * ``optimize`` (default True): the bit-exact optimised network (cls/loc convs merged,
      template work cached, allocator tuned); outputs equal the plain model's to the last bit.
      False runs the checkpoint's ``SiamRPN`` as built.
    * ``fuse_bn``: fold BatchNorm (and mobilev2's narrow necks) into the convs, with NNPACK
      (alex, r50) or NHWC (mobilev2) on CPU (``channels_last`` True/False forces NHWC/NCHW).
      Faster, not bit-exact: head outputs move by up to ~2e-4; see ``backends.py``.
    * ``backend``: ``"torch"`` or ``"onnxruntime"`` (search branch in ONNX Runtime, fp32).
    * ``instance_size``: search crop side in pixels instead of the preset's (255/287); smaller
      is faster and searches a smaller area (fast mode, documented accuracy only).
    * ``threads``: ``torch.set_num_threads`` (process-wide; None leaves it, = cores by default).
    * ``onnx_cache_dir`` (onnxruntime): keep the exported graphs and TensorRT engines in this
      folder between runs (a sub-folder per weights); default: a temporary folder.
    * ``compile``: wrap the torch network's forward in ``torch.compile`` (CUDA graphs via
      ``mode="reduce-overhead"`` on CUDA); compiles on the first frames, off by default.
    """
    model_config(model_name)  # ValueError naming the valid forms, before any file is touched
    resolved_device = select_device(device)
    if fp16 and resolved_device.type != "cuda":
        raise ValueError(f"fp16 needs a CUDA device, but the device is {resolved_device}; drop --fp16")
    tracker_config = config if config is not None else preset_for(model_name)
    weights_path = Path(weights) if weights is not None else default_weights_path(model_name)
    if not weights_path.is_file():
        raise FileNotFoundError(f"weights file not found: {weights_path}")

    if instance_size is not None:
        tracker_config = tracker_config.replace(instance_size=int(instance_size))
    if fp16 and backend != "torch":
        raise ValueError(f"fp16 applies to the torch backend only, not {backend!r}")
    configure_threads(threads)

    model = build_model(model_name)
    load_checkpoint(model, weights_path)
    # fp16 folds BatchNorm into the convolutions first, in float32. The networks take raw 0-255
    # pixels, so the first BatchNorm subtracts means in the thousands, where float16 resolves
    # only 2 units: unfolded, the bundled model's box moved by 4.5 px on vtest.avi's first
    # tracked frame (CUDA and CPU alike); folded, by 0.005 px (test_models.py covers it).
    fuse_bn = fuse_bn or fp16
    network = build_backend(
        backend,
        model,
        resolved_device,
        optimize=optimize,
        fuse_bn=fuse_bn,
        channels_last=channels_last,
        threads=threads,
        onnx_cache_dir=onnx_cache_dir,
    )
    if backend == "onnxruntime":
        # Export and load the search graphs now rather than stalling on the first (or first
        # lost) frame: one fixed-size graph per search size.
        network.session(tracker_config.instance_size)
        if long_term and tracker_config.lost_search == "wide":
            network.session(tracker_config.lost_instance_size)
        elif long_term and tracker_config.lost_tiles_per_frame > 1:
            network.session(tracker_config.instance_size, tracker_config.lost_tiles_per_frame)
    if compile and isinstance(network, torch.nn.Module):
        mode = "reduce-overhead" if resolved_device.type == "cuda" else None
        network.forward = torch.compile(network.forward, mode=mode, dynamic=False)
    tracker_class = LongTermTracker if long_term else SiamRPNTracker
    return tracker_class(network, tracker_config, device=resolved_device, fp16=fp16)


def build_session(
    model_name: str,
    weights: str | os.PathLike[str] | None,
    *,
    long_term: bool = True,
    policy: LostPolicy | None = None,
    config: TrackerConfig | None = None,
    **tracker_options: Any,
) -> TrackingSession:
    """A ``TrackingSession`` set up as the node sets it up by default: the long-term tracker
    with its wide search tied to the LOST thresholds of ``policy`` (``LostPolicy()`` unless
    given). The offline CLI, the evaluation and the node share it, so they agree on the
    status. ``tracker_options`` go to :func:`build_tracker` (device, backend, fuse_bn, ...).
    """
    policy = policy or LostPolicy()
    tracker_config = config if config is not None else preset_for(model_name)
    if long_term:
        tracker_config = align_long_term_thresholds(tracker_config, policy)
    tracker = build_tracker(model_name, weights, config=tracker_config, long_term=long_term, **tracker_options)
    return TrackingSession(tracker, policy)
