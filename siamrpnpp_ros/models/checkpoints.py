"""Loading and saving SiamRPN++ weights in pysot's checkpoint layout.

Checkpoints are treated as untrusted input: they are read with
``torch.load(..., weights_only=True)`` only, which refuses pickles that would
construct arbitrary objects. Loading is all-or-nothing: the file is checked
against the model completely before a single parameter is copied, and any
mismatch raises one :class:`CheckpointError` describing all of it.
"""

from __future__ import annotations

import os
import tempfile
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
from torch import Tensor, nn

from .compat import load_weights_only, meta_device
from .config import MODEL_PRESETS
from .siamrpn import SiamRPN

PathLike = Union[str, "os.PathLike[str]"]

# Buffers that carry no information at inference time; pysot's loader ignores
# them too, and many published checkpoints predate them.
_IGNORED_SUFFIX = "num_batches_tracked"
_MODULE_PREFIX = "module."  # added by nn.DataParallel / DistributedDataParallel
_LIST_LIMIT = 5  # keys listed per category in error messages


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or does not fit the model; the model is unchanged."""


def state_dict_keys(model: nn.Module) -> list[str]:
    """The model's state-dict keys in order (the checkpoint contract)."""
    return list(model.state_dict().keys())


def _format_shape(shape: torch.Size | tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape) if len(shape) else "scalar"


def _preview(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LIST_LIMIT])
    return shown + (", ..." if len(keys) > _LIST_LIMIT else "")


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"


def _extract_state_dict(obj: Any, path: str) -> "OrderedDict[str, Tensor]":
    """Unwrap ``{'state_dict': ...}``, check every entry is a named tensor, strip ``module.``."""
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict")
    if not obj:
        raise CheckpointError(f"checkpoint {path} holds an empty state dict")
    bad = [repr(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(
            f"checkpoint {path} is not a state dict: "
            f"{_count(len(bad), 'entry is', 'entries are')} not name -> tensor ({_preview(bad)})"
        )
    out: OrderedDict[str, Tensor] = OrderedDict()
    for key, value in obj.items():
        name = key[len(_MODULE_PREFIX) :] if key.startswith(_MODULE_PREFIX) else key
        if name in out:
            raise CheckpointError(f"checkpoint {path} has key {name!r} twice (with and without 'module.')")
        out[name] = value
    return out


def _load_failure_reason(exc: Exception) -> str:
    """A one-line reason for a failed ``torch.load``.

    torch's own messages are long, vary between versions and suggest retrying
    with ``weights_only=False``, which is exactly what must not be done with an
    untrusted file; only the diagnostic line is kept.
    """
    text = str(exc)
    if isinstance(exc, EOFError) or not text.strip():
        return "the file is empty or truncated"
    if "Weights only load failed" in text:
        boilerplate = ("Weights only load failed", "weights_only", "trusted", "documentation")
        details = []
        for line in text.splitlines():
            line = line.replace("WeightsUnpickler error:", "").split(". Please use", 1)[0]
            line = line.strip().rstrip(".")
            if line and not any(b in line for b in boilerplate):
                details.append(line)
        detail = details[0] if details else "refused by weights_only loading"
        if "GLOBAL" in detail:
            return (
                "it pickles objects other than tensors and plain containers, which "
                f"weights_only loading refuses ({detail})"
            )
        return f"not a PyTorch checkpoint ({detail})"
    first = text.strip().splitlines()[0].split(". ", 1)[0].rstrip(".")
    if len(first) > 200:
        first = first[:200] + "..."
    return f"not a readable PyTorch checkpoint ({type(exc).__name__}: {first})"


def read_state_dict(path: PathLike, map_location: Any = "cpu") -> "OrderedDict[str, Tensor]":
    """Read a checkpoint file into a plain ``{key: tensor}`` dict (safely, nothing checked
    against a model). Accepts pysot's ``{'state_dict': ...}`` and bare state dicts, and
    strips a leading ``module.`` from keys.

    Raises:
        CheckpointError: missing/unreadable/corrupt file, or contents that are not
            a state dict (including pickles that ``weights_only`` refuses).
    """
    name = os.fspath(path)
    if not os.path.exists(name):
        raise CheckpointError(f"checkpoint {name} does not exist")
    if os.path.isdir(name):
        raise CheckpointError(f"checkpoint {name} is a directory, not a file")
    try:
        obj = load_weights_only(name, map_location=map_location)
    except Exception as exc:
        # torch.load raises many types (UnpicklingError, RuntimeError, EOFError, ...);
        # callers get one error type with a short reason.
        raise CheckpointError(f"checkpoint {name} could not be read: {_load_failure_reason(exc)}") from exc
    return _extract_state_dict(obj, name)


def _model_name(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    return str(getattr(config, "name", type(model).__name__))


def load_checkpoint(model: nn.Module, path: PathLike, map_location: Any = "cpu") -> None:
    """Load a pysot-layout checkpoint into ``model``, all or nothing.

    Every model key must be in the file with the same shape, and the file may
    hold no other keys; only ``num_batches_tracked`` buffers may be absent (they
    are loaded when present). Values are copied into the existing parameters,
    so the model keeps its device and dtype.

    Args:
        model: typically a :class:`~siamrpnpp_ros.models.SiamRPN`.
        path: ``.pth`` file: ``{'state_dict': {...}}`` or a bare state dict,
            keys optionally prefixed with ``module.``.
        map_location: passed to ``torch.load``.

    Raises:
        CheckpointError: unreadable file, or a mismatch; the message names the
            file and the first few missing / unexpected / mis-shaped keys. The
            model is left untouched.
    """
    name = os.fspath(path)
    loaded = read_state_dict(name, map_location)
    expected = model.state_dict()

    def ignorable(key: str) -> bool:
        return key.endswith(_IGNORED_SUFFIX)

    missing = [k for k in expected if k not in loaded and not ignorable(k)]
    unexpected = [k for k in loaded if k not in expected and not ignorable(k)]
    mismatched: list[str] = []
    for key, target in expected.items():
        if key not in loaded:
            continue
        source = loaded[key]
        if ignorable(key):
            if source.numel() != 1:
                mismatched.append(f"{key}: file {_format_shape(source.shape)}, model scalar")
        elif source.shape != target.shape:
            mismatched.append(f"{key}: file {_format_shape(source.shape)}, model {_format_shape(target.shape)}")
        elif target.is_floating_point() and not source.is_floating_point():
            mismatched.append(f"{key}: file dtype {source.dtype}, model {target.dtype}")

    if missing or unexpected or mismatched:
        parts = [
            f"{_count(len(items), singular, plural)} ({_preview(items)})"
            for items, singular, plural in (
                (missing, "missing key", "missing keys"),
                (unexpected, "unexpected key", "unexpected keys"),
                (mismatched, "shape mismatch", "shape mismatches"),
            )
            if items
        ]
        model_name = _model_name(model)
        message = f"checkpoint {name} does not match model {model_name!r}: " + ", ".join(parts)
        guess = guess_model_name(loaded)
        if guess is not None and guess != model_name:
            message += f"; it looks like a {guess!r} checkpoint"
        raise CheckpointError(message)

    to_load = OrderedDict(
        (k, v.reshape(expected[k].shape) if ignorable(k) else v) for k, v in loaded.items() if k in expected
    )
    # Everything was validated above, so this cannot fail half-way on a key or
    # shape problem; strict=False only tolerates absent num_batches_tracked.
    result = model.load_state_dict(to_load, strict=False)
    leftover = [k for k in result.missing_keys if not ignorable(k)] + list(result.unexpected_keys)
    if leftover:  # pragma: no cover - would mean the checks above are wrong
        raise CheckpointError(f"checkpoint {name}: internal key check failed for {_preview(leftover)}")


def save_checkpoint(model: nn.Module, path: PathLike) -> None:
    """Write ``model``'s weights as pysot does: ``{'state_dict': OrderedDict}`` (CPU tensors).

    The file is written to a temporary name in the same directory and renamed,
    so a crash never leaves a truncated checkpoint under ``path``.
    """
    target = Path(os.fspath(path))
    # contiguous(): a model trained in NHWC layout (channels_last) is still written in the
    # usual one, so the file is the same whatever layout the weights had in memory.
    state = OrderedDict((k, v.detach().cpu().contiguous()) for k, v in model.state_dict().items())
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save({"state_dict": state}, handle)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@lru_cache(maxsize=None)
def _preset_signature(name: str) -> frozenset[tuple[str, tuple[int, ...]]]:
    """Keys and shapes of a preset, computed on the meta device (no memory, no init cost)."""
    with meta_device():
        model = SiamRPN(MODEL_PRESETS[name])
    return frozenset((k, tuple(v.shape)) for k, v in model.state_dict().items() if not k.endswith(_IGNORED_SUFFIX))


def guess_model_name(state_dict: Mapping[str, Tensor]) -> Optional[str]:
    """The preset (``'r50'``, ``'mobilev2'``, ``'alex'``) whose keys and shapes exactly
    match ``state_dict`` (``module.`` prefixes and ``num_batches_tracked`` ignored), or
    ``None``.
    """
    signature = frozenset(
        (k[len(_MODULE_PREFIX) :] if k.startswith(_MODULE_PREFIX) else k, tuple(v.shape))
        for k, v in state_dict.items()
        if not k.endswith(_IGNORED_SUFFIX)
    )
    for name in MODEL_PRESETS:
        if _preset_signature(name) == signature:
            return name
    return None
