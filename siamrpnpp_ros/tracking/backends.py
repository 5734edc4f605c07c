"""Inference back-ends and process settings for the tracker (no ROS).

* :func:`prepare_model` turns a loaded ``SiamRPN`` into what the tracker runs: the model itself,
  the bit-exact optimised copy (default), or the BN-folded copy (opt-in, not bit-exact).
* :class:`OnnxRuntimeModel` is a drop-in for the network (``template(z) -> kernels``,
  ``model(x, kernels) -> (cls, loc)``) that runs the per-frame search branch in ONNX Runtime.
* :func:`tune_allocator` and :func:`configure_threads` are the process-level knobs measured
  in ``siamrpnpp_ros.benchmark.speed``.

Tiers (see the README's performance section for the numbers):

``exact``   ``optimize=True`` (default): same arithmetic as pysot, every output bit equal.
``fused``   ``fuse_bn=True``: BatchNorm and mobilev2's narrow necks folded into the convs,
            NNPACK (alex, r50) or NHWC (mobilev2) on CPU. Head outputs move by float rounding
            (up to ~2e-4 abs on the parity networks): the 60-frame parity run stays within
            0.01 px for alex (9e-4 px) and r50 (7e-3 px) but not mobilev2 (0.024 px), so it is
            opt-in.
``fast``    ONNX Runtime back-end and/or a smaller ``instance_size``: documented accuracy only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from siamrpnpp_ros.models import SiamRPN
from siamrpnpp_ros.models.fusion import fuse_for_inference
from siamrpnpp_ros.models.onnx_graphs import export_search_onnx

BACKENDS: tuple[str, ...] = ("torch", "onnxruntime")

# glibc mallopt() parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_allocator_tuned = False


def tune_allocator(mmap_threshold_bytes: int = 256 << 20) -> bool:
    """Keep freed activation buffers in the heap instead of returning them to the OS (glibc only).

    Each eager PyTorch op allocates its output; glibc serves blocks over its mmap threshold
    with fresh ``mmap`` pages, so every frame page-faults its activations in again
    (measured: ~5,000 minor faults and ~5 ms of kernel time per mobilev2 frame, ~7,000 and
    ~13 ms per alex frame). Raising the mmap and trim thresholds makes the heap reuse them.
    Process-wide and idempotent; the cost is that RSS stays at its peak. Returns True when
    applied, False where it cannot be (not glibc). Bit-exact: it changes no arithmetic.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if os.environ.get("SIAMRPNPP_NO_MALLOPT"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold_bytes))) and bool(
        mallopt(_M_TRIM_THRESHOLD, int(2 * mmap_threshold_bytes))
    )
    _allocator_tuned = ok
    return ok


def configure_threads(threads: int | None) -> int:
    """Set PyTorch's intra-op thread count (``None``/``0``: leave it) and return the count in use.

    Policy (measured on a 2-core Zen 3, see the README): one thread per physical core, which
    is PyTorch's own default, is fastest on an idle machine; when other processes compete
    for the cores, fewer threads avoid OpenMP barrier stalls. ONNX Runtime sessions created
    afterwards use the same count.
    """
    if threads:
        if threads < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


# Fastest CPU layout of the folded model per backbone, measured on a 2-core Zen 3 (ms per
# forward, 2 threads): alex nnpack 148 / NHWC 186 / NCHW 204; r50 nnpack 1372 / NHWC 1498 /
# NCHW 1451; mobilev2 NHWC 205 / nnpack 220 / NCHW 228. NNPACK wins where big stride-1
# undilated convs dominate (alex's 5x5 and 3x3s); mobilev2's depth-wise convs prefer NHWC.
_CPU_FUSED_LAYOUT = {"alexnet": "nnpack", "resnet50": "nnpack", "mobilenetv2": "channels_last"}


def prepare_model(
    model: SiamRPN,
    device: torch.device,
    optimize: bool = True,
    fuse_bn: bool = False,
    channels_last: bool | None = None,
) -> torch.nn.Module:
    """The network the tracker should run, on ``device`` (see the module docstring for tiers).

    ``optimize`` without ``fuse_bn``: :func:`~siamrpnpp_ros.models.fusion.fuse_for_inference`
    with ``fold_bn=False`` (bit-exact) plus :func:`tune_allocator` on CPU. ``fuse_bn``: the
    folded copy in the fastest measured CPU layout per backbone (``_CPU_FUSED_LAYOUT``: NNPACK
    for alex/r50, NHWC for mobilev2; NCHW on other devices); ``channels_last`` True/False forces
    NHWC/NCHW without NNPACK. Neither: ``model`` unchanged.
    """
    model = model.to(device).eval()
    if device.type == "cpu" and (optimize or fuse_bn):
        tune_allocator()
    if fuse_bn:
        fused = fuse_for_inference(model, fold_bn=True)
        layout = _CPU_FUSED_LAYOUT.get(model.config.backbone.name, "channels_last") if device.type == "cpu" else "nchw"
        if channels_last is not None:
            layout = "channels_last" if channels_last else "nchw"
        if layout == "nnpack":
            return fused.set_nnpack(True)
        return fused.set_channels_last(layout == "channels_last")
    if optimize:
        return fuse_for_inference(model, fold_bn=False)
    return model


def provider_name(provider: str | tuple[str, dict[str, Any]]) -> str:
    """An ONNX Runtime provider's name, given as a name or a ``(name, options)`` pair."""
    return provider if isinstance(provider, str) else provider[0]


class OnnxRuntimeModel:
    """The search branch in ONNX Runtime, the template branch in PyTorch (once per target).

    Same contract as ``SiamRPN``: ``template(z)`` returns the kernel tuple (torch tensors on
    the CPU), ``model(x, kernels)`` returns float32 ``(cls, loc)`` torch tensors. The search
    graph is exported on first use for each search size (normal and long-term wide search),
    with the template kernels as graph inputs (``siamrpnpp_ros.models.onnx_graphs``), and run with all
    graph optimisations. Inputs are passed as NumPy views (no copies on the CPU).

    Args:
        model: a loaded ``SiamRPN`` or ``FusedSiamRPN`` (exported as is; a ``SiamRPN`` is
            BN-folded first unless ``fold_bn=False``, which ORT would do anyway, plus the
            neck fold that ORT does not do).
        providers: ORT execution providers (names, or ``(name, options)`` pairs). Default: CPU;
            when ``device`` is CUDA, ``TensorrtExecutionProvider`` (fp32, engines cached next
            to the graphs) and ``CUDAExecutionProvider`` first where this ORT build has them
            (onnxruntime-gpu; on Jetson, NVIDIA's builds). Not yet run on a GPU here.
        threads: intra-op threads (default: ``torch.get_num_threads()``).
        cache_dir: a folder that keeps the exported ``.onnx`` graphs and TensorRT engines
            between runs, in a sub-folder per network and weights (:func:`onnx_cache_key`), so
            a restart skips the export and the engine build. Default: a private temporary
            folder, rebuilt at every start.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        providers: Sequence[str | tuple[str, dict[str, Any]]] | None = None,
        threads: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        fold_bn: bool = True,
        device: torch.device | str = "cpu",
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(
                "the onnxruntime back-end needs the onnxruntime package (pip install onnxruntime)"
            ) from error
        self._ort = ort
        torch_model = model.to("cpu").float().eval()
        if isinstance(torch_model, SiamRPN) and fold_bn:
            torch_model = fuse_for_inference(torch_model, fold_bn=True)
        if getattr(torch_model, "channels_last", False):
            torch_model.set_channels_last(False)  # type: ignore[operator]
        self.torch_model = torch_model
        self.config = getattr(torch_model, "config", None)
        self.kernel_names: tuple[str, ...] = tuple(torch_model.kernel_names)  # type: ignore[arg-type]
        self.device = torch.device("cpu")  # where the tracker should put crops
        self.threads = int(threads) if threads else torch.get_num_threads()
        if cache_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="siamrpnpp_onnx_")
            self.cache_dir = Path(self._tmp.name)
        else:
            # ORT recognises its cached TensorRT engines by graph structure, not by weight
            # values, so graphs of other weights must never share a folder.
            self.cache_dir = Path(cache_dir) / onnx_cache_key(torch_model, ort.__version__)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        available = ort.get_available_providers()
        if providers is None:
            providers = ["CPUExecutionProvider"]
            if torch.device(device).type == "cuda":
                # TensorRT builds an engine per graph on first use (seconds to minutes on a
                # Jetson); ORT caches it in cache_dir, which persists only when the caller
                # passes one (the default is a temporary folder).
                tensorrt = (
                    "TensorrtExecutionProvider",
                    {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(self.cache_dir)},
                )
                providers = [tensorrt, "CUDAExecutionProvider", "CPUExecutionProvider"]
        self.providers = [p for p in providers if provider_name(p) in available] or ["CPUExecutionProvider"]
        self._sessions: dict[tuple[int, int], Any] = {}

    # The tracker treats its network like an nn.Module in a few places.
    def eval(self) -> OnnxRuntimeModel:
        """No-op (sessions are inference-only); returns self."""
        return self

    def session(self, instance_size: int, batch: int = 1) -> Any:
        """The ORT session for ``batch`` search crops of ``instance_size`` x ``instance_size``
        (built once). The graphs have fixed shapes (the depth-wise correlation's group count is
        batch x channels), so every batch size of a multi-target tracker has its own graph.
        """
        key = (int(instance_size), int(batch))
        session = self._sessions.get(key)
        if session is None:
            suffix = "" if batch == 1 else f"_b{int(batch)}"
            path = self.cache_dir / f"search_{int(instance_size)}{suffix}.onnx"
            if not path.is_file():
                # Written aside and renamed, so an interrupted export never leaves a graph
                # that a later start would take as complete.
                partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
                export_search_onnx(self.torch_model, partial, instance_size, batch=int(batch))
                os.replace(partial, path)
            options = self._ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3  # no per-node placement chatter
            # ORT's pool threads spin after each run by default; on a small CPU that steals the
            # cores from the crop and decoding that follow (measured: crop 0.6 -> 7.5 ms).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = self._ort.InferenceSession(str(path), options, providers=self.providers)
            self._sessions[key] = session
        return session

    def template(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Exemplar ``(1, 3, 127, 127)`` -> kernel tuple, float32 on the CPU (PyTorch, once per target)."""
        with torch.inference_mode():
            kernels = self.torch_model.template(z.to("cpu", torch.float32))  # type: ignore[operator]
        return tuple(k.float().contiguous() for k in kernels)

    def __call__(self, x: torch.Tensor, kernels: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Search crops ``(B, 3, I, I)`` float and kernels of batch B -> ``cls (B, 2A, S, S)``,
        ``loc (B, 4A, S, S)`` float32.
        """
        if x.dim() != 4 or x.shape[0] < 1 or x.shape[1] != 3 or x.shape[2] != x.shape[3]:
            raise ValueError(f"expected a (B, 3, I, I) search crop, got shape {tuple(x.shape)}")
        session = self.session(int(x.shape[-1]), int(x.shape[0]))
        feed = {"search": _as_numpy(x)}
        for name, kernel in zip(self.kernel_names, kernels, strict=True):
            feed[name] = _as_numpy(kernel)
        cls, loc = session.run(["cls", "loc"], feed)
        return torch.from_numpy(cls), torch.from_numpy(loc)


def onnx_cache_key(model: torch.nn.Module, ort_version: str) -> str:
    """``<model name>-<16 hex digits>``: a digest of the network's weights and buffers and of
    the torch and ONNX Runtime versions that export and run it. Equal keys mean the same
    exported graphs; any change of weights or versions gives a new cache sub-folder.
    """
    digest = hashlib.sha256(f"{type(model).__name__} torch {torch.__version__} ort {ort_version}".encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
    config = getattr(model, "config", None)
    name = getattr(config, "name", None) or "model"
    return f"{name}-{digest.hexdigest()[:16]}"


def _as_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A float32 C-contiguous NumPy view of a CPU tensor (a copy only when it must convert)."""
    return np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy())


def build_backend(
    backend: str,
    model: SiamRPN,
    device: torch.device,
    optimize: bool = True,
    fuse_bn: bool = False,
    channels_last: bool | None = None,
    threads: int | None = None,
    onnx_cache_dir: str | os.PathLike[str] | None = None,
) -> Any:
    """The network object for ``backend`` (``'torch'`` or ``'onnxruntime'``); see the module
    docstring. ``onnx_cache_dir``: see :class:`OnnxRuntimeModel`'s ``cache_dir``.
    """
    if backend == "torch":
        return prepare_model(model, device, optimize=optimize, fuse_bn=fuse_bn, channels_last=channels_last)
    if backend == "onnxruntime":
        if device.type == "cpu":
            tune_allocator()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return OnnxRuntimeModel(model, threads=threads, device=device, cache_dir=onnx_cache_dir)
    raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
