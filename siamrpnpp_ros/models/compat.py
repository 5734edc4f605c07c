"""Small shims for the oldest supported torch (1.13, Debian 12's python3-torch).

``with torch.device("meta"):`` (build modules without memory or initialisation cost, to
read their shapes) exists from torch 2.0 on. :func:`meta_device` gives the same on 1.13
by putting ``device="meta"`` into the tensor factory calls that module constructors make.
"""
from __future__ import annotations

from typing import Any, ContextManager

import torch

# Factories that nn modules and the models' constructors call without a device.
_FACTORIES = frozenset(
    {
        torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn, torch.randint,
        torch.arange, torch.eye, torch.linspace, torch.tensor, torch.empty_strided,
    }
)


def meta_device() -> ContextManager[Any]:
    """A context in which new tensors and modules live on the meta device (shapes only)."""
    meta = torch.device("meta")
    if hasattr(meta, "__enter__"):  # torch >= 2.0
        return meta
    return _MetaFactories()


class _MetaFactories(torch.overrides.TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = dict(kwargs or {})
        if func in _FACTORIES and kwargs.get("device") is None:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)
