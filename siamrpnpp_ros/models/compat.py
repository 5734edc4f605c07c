"""Small shims for the oldest supported torch (1.13, Debian 12's python3-torch).

``with torch.device("meta"):`` (build modules without memory or initialisation cost, to
read their shapes) exists from torch 2.0 on. :func:`meta_device` gives the same on 1.13
by putting ``device="meta"`` into the tensor factory calls that module constructors make.

``torch.load(weights_only=True)`` exists on 1.13, but its unpickler refuses plain Python
floats, which optimizer state and training checkpoints hold. :func:`load_weights_only`
applies the same restriction there through a standard unpickler that resolves only the
globals torch's own weights-only unpickler allows.
"""

from __future__ import annotations

import os
import pickle
import types
from contextlib import AbstractContextManager
from typing import IO, Any

import torch

TORCH_MAJOR = int(torch.__version__.split(".", 1)[0])

# Factories that nn modules and the models' constructors call without a device.
_FACTORIES = frozenset(
    {
        torch.empty,
        torch.zeros,
        torch.ones,
        torch.full,
        torch.rand,
        torch.randn,
        torch.randint,
        torch.arange,
        torch.eye,
        torch.linspace,
        torch.tensor,
        torch.empty_strided,
    }
)


def meta_device() -> AbstractContextManager[Any]:
    """A context in which new tensors and modules live on the meta device (shapes only)."""
    meta = torch.device("meta")
    if hasattr(meta, "__enter__"):  # torch >= 2.0
        return meta
    return _MetaFactories()


class _MetaFactories(torch.overrides.TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _FACTORIES and kwargs.get("device") is None:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


def load_weights_only(f: str | os.PathLike[str] | IO[bytes], map_location: Any = None) -> Any:
    """``torch.load(f, map_location=map_location, weights_only=True)``, also on torch 1.x.

    Refuses, like ``weights_only``, any pickle that needs a global other than tensors,
    storages, dtypes and ``OrderedDict``; the error says "Weights only load failed" and
    names the global, as torch's does.
    """
    if TORCH_MAJOR >= 2:
        return torch.load(f, map_location=map_location, weights_only=True)
    # torch 1.13's load() ignores pickle_module unless weights_only is False, and then
    # replaces it with pickle; call its file-format readers with the restricted one instead.
    from torch import serialization

    with serialization._open_file_like(f, "rb") as opened:
        if serialization._is_zipfile(opened):
            with serialization._open_zipfile_reader(opened) as archive:
                if serialization._is_torchscript_zip(archive):
                    raise pickle.UnpicklingError("Weights only load failed.\nUnsupported: a TorchScript archive")
                return serialization._load(archive, map_location, _RESTRICTED_PICKLE, encoding="utf-8")
        return serialization._legacy_load(opened, map_location, _RESTRICTED_PICKLE, encoding="utf-8")


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        from torch import _weights_only_unpickler  # torch 1.x only; its allow-list is fixed

        allowed = _weights_only_unpickler._get_allowed_globals()
        key = f"{module}.{name}"
        if key in allowed:
            return allowed[key]
        raise pickle.UnpicklingError(f"Weights only load failed.\nUnsupported global: GLOBAL {key}")


def _restricted_load(file: IO[bytes], **kwargs: Any) -> Any:
    return _RestrictedUnpickler(file, **kwargs).load()


_RESTRICTED_PICKLE = types.SimpleNamespace(
    __name__="siamrpnpp_restricted_pickle", Unpickler=_RestrictedUnpickler, load=_restricted_load
)
