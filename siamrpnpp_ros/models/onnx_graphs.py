"""ONNX graphs of the SiamRPN++ network, split the way the tracker runs it.

Two graphs per model, both with fixed shapes (TensorRT builds one engine per input size):

* **search** (every frame): inputs ``search`` ``(1, 3, I, I)`` float32 (BGR, 0..255, as the
  tracker's crop) and the template kernels (``cls_kernel_2, loc_kernel_2, ...`` for r50/mobilev2,
  ``cls_kernel, loc_kernel`` for alex; each ``(1, 256, k, k)``, k = 5 or 4); outputs
  ``cls`` ``(1, 2A, S, S)`` and ``loc`` ``(1, 4A, S, S)``, the raw head outputs the tracker decodes.
  ``batch=B`` exports the same graph for B targets at once (every input and output with batch
  B, each crop correlated with its own kernels), for the multi-target tracker.
* **template** (once per target): input ``template`` ``(1, 3, 127, 127)``; outputs the kernels,
  named as the search graph's kernel inputs, so one graph's outputs feed the other.

The kernels are graph *inputs*, not constants: the depth-wise correlation is a grouped Conv
whose weight is a runtime tensor, so one engine serves every target.

Used by the ONNX Runtime back-end (``tracking/backends.py``) and by ``siamrpnpp-export``
(``export/onnx.py``); it imports nothing of the package outside ``models``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

DEFAULT_OPSET = 17


class SearchGraph(nn.Module):
    """``forward(search, *kernels) -> (cls, loc)``: the model's per-frame call with flat inputs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model: Any = model  # a SiamRPN or FusedSiamRPN: template() and kernel_names too

    def forward(self, search: Tensor, *kernels: Tensor) -> tuple[Tensor, Tensor]:
        """``(cls, loc)`` of ``search`` against the template ``kernels``, passed as separate graph inputs."""
        cls, loc = self.model(search, tuple(kernels))
        return cls, loc


class TemplateGraph(nn.Module):
    """``forward(template) -> kernels``: the model's once-per-target call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model: Any = model  # a SiamRPN or FusedSiamRPN: template() and kernel_names too

    def forward(self, template: Tensor) -> tuple[Tensor, ...]:
        """The kernel tuple of exemplar ``template``."""
        return tuple(self.model.template(template))


def _exportable(model: nn.Module) -> nn.Module:
    """A float32 CPU NCHW copy-or-self of ``model`` in eval mode (what ONNX should see)."""
    model = model.to("cpu").float().eval()
    if getattr(model, "channels_last", False):
        model.set_channels_last(False)  # type: ignore[operator]
    return model


def _run_export(
    module: nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    opset: int,
) -> None:
    """``torch.onnx.export`` with the TorchScript-based exporter where it exists (no onnxscript
    needed, reliable for this static graph), else the dynamo exporter.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = dict(input_names=list(input_names), output_names=list(output_names), opset_version=opset)
    # Export traces with autograd state on: no inference tensors, no grad recording.
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape checks are expected
        try:
            torch.onnx.export(module, args, str(path), dynamo=False, **kwargs)
        except TypeError:  # torch < 2.5 has no ``dynamo`` argument and is TorchScript-based
            torch.onnx.export(module, args, str(path), **kwargs)


def _check(path: Path) -> None:
    try:
        import onnx
    except ImportError:
        return
    onnx.checker.check_model(str(path))


def example_kernels(model: Any, exemplar_size: int = 127) -> tuple[Tensor, ...]:
    """Template kernels of a mid-grey exemplar (shapes and dtypes for the export's example inputs);
    ``model`` is a ``SiamRPN`` or ``FusedSiamRPN``.
    """
    with torch.inference_mode(False), torch.no_grad():
        z = torch.full((1, 3, exemplar_size, exemplar_size), 127.0)
        return tuple(k.detach().clone() for k in model.template(z))


def export_search_onnx(
    model: nn.Module,
    path: str | Path,
    instance_size: int,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    batch: int = 1,
) -> Path:
    """Export the per-frame graph (search crop + template kernels -> cls, loc) to ``path``.

    ``model``: a ``SiamRPN`` or ``FusedSiamRPN`` (exported as given; fold first for a smaller
    graph). ``instance_size``: search crop side in pixels (the tracker preset's is
    ``tracking.config.preset_for(name).instance_size``, 255 or 287). ``batch``: crops (targets)
    per call, each with its own kernels. Returns the path. The graph has fixed shapes and
    opset ``opset`` (>= 17).
    """
    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    model = _exportable(model)
    path = Path(path)
    kernels = tuple(k.repeat(batch, 1, 1, 1) for k in example_kernels(model))
    search = torch.full((batch, 3, int(instance_size), int(instance_size)), 127.0)
    names = tuple(model.kernel_names)  # type: ignore[arg-type]
    _run_export(SearchGraph(model).eval(), (search, *kernels), path, ("search", *names), ("cls", "loc"), opset)
    if check:
        _check(path)
    return path


def export_template_onnx(
    model: nn.Module, path: str | Path, exemplar_size: int = 127, opset: int = DEFAULT_OPSET, check: bool = True
) -> Path:
    """Export the once-per-target graph (exemplar crop -> template kernels) to ``path``."""
    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    model = _exportable(model)
    path = Path(path)
    z = torch.full((1, 3, exemplar_size, exemplar_size), 127.0)
    names = tuple(model.kernel_names)  # type: ignore[arg-type]
    _run_export(TemplateGraph(model).eval(), (z,), path, ("template",), names, opset)
    if check:
        _check(path)
    return path


def verify_search_onnx(model: nn.Module, path: str | Path, instance_size: int, seed: int = 0) -> float:
    """Max absolute difference between ONNX Runtime and PyTorch on a random crop (raw outputs)."""
    import onnxruntime as ort

    net: Any = _exportable(model)
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((1, 3, instance_size, instance_size), generator=generator) * 255
    z = torch.rand((1, 3, 127, 127), generator=generator) * 255
    with torch.inference_mode():
        kernels = net.template(z)
        expected = net(x, kernels)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"search": x.numpy(), **{n: k.numpy() for n, k in zip(net.kernel_names, kernels, strict=True)}}
    got = session.run(["cls", "loc"], feed)
    return max(float((torch.from_numpy(g) - e).abs().max()) for g, e in zip(got, expected, strict=True))
