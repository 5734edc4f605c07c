"""Neck: per-level 1x1 channel reduction (pysot ``AdjustLayer`` / ``AdjustAllLayer``)."""

from __future__ import annotations

from typing import Optional, Sequence

from torch import Tensor, nn

from .config import NeckConfig


class AdjustLayer(nn.Module):
    """1x1 conv (no bias) + BN, then an optional centre crop of template features.

    Input ``(B, C_in, H, W)`` -> ``(B, C_out, H, W)``, or ``(B, C_out, k, k)``
    when cropped (``k = center_size``). The crop keeps the exemplar kernel small
    (15x15 -> 7x7 for a 127 px exemplar): its border cells mostly see padding
    context, not the target.
    """

    def __init__(self, in_channels: int, out_channels: int, center_size: int = 7, crop_below: int = 20) -> None:
        super().__init__()
        self.downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.center_size = center_size
        self.crop_below = crop_below

    def forward(self, x: Tensor, crop: Optional[bool] = None) -> Tensor:
        """Adjust channels; ``crop``: ``True``/``False`` forces the centre crop on/off,
        ``None`` applies pysot's rule (crop when the width is below ``crop_below``).
        """
        x = self.downsample(x)
        width = x.shape[-1]
        if crop is None:
            crop = width < self.crop_below
        if crop and width > self.center_size:
            start = (width - self.center_size) // 2
            stop = start + self.center_size
            x = x[:, :, start:stop, start:stop]
        return x


class AdjustAllLayer(nn.Module):
    """One :class:`AdjustLayer` per level.

    Modules are named ``downsample2``, ``downsample3``, ... (level index + 2, as
    in pysot, independent of which backbone layers feed them); a single-level
    neck uses the name ``downsample``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: Sequence[int],
        center_size: int = 7,
        crop_below: int = 20,
    ) -> None:
        super().__init__()
        if len(in_channels) != len(out_channels):
            raise ValueError("in_channels and out_channels must have the same length")
        self.num_levels = len(in_channels)
        self.out_channels: tuple[int, ...] = tuple(out_channels)
        for name, cin, cout in zip(self.level_names(), in_channels, out_channels, strict=True):
            self.add_module(name, AdjustLayer(cin, cout, center_size, crop_below))

    def level_names(self) -> list[str]:
        """Sub-module names in level order."""
        if self.num_levels == 1:
            return ["downsample"]
        return [f"downsample{i + 2}" for i in range(self.num_levels)]

    def forward(self, features: Sequence[Tensor], crop: Optional[bool] = None) -> list[Tensor]:
        """``features[i]``: ``(B, in_channels[i], H, W)``; returns ``(B, out_channels[i], H', W')``.

        ``crop`` is passed to every level (see :meth:`AdjustLayer.forward`).
        """
        if len(features) != self.num_levels:
            raise ValueError(f"neck expects {self.num_levels} feature levels, got {len(features)}")
        return [getattr(self, name)(feat, crop) for name, feat in zip(self.level_names(), features, strict=True)]


def build_neck(cfg: NeckConfig) -> AdjustAllLayer:
    """Instantiate the neck described by ``cfg``."""
    return AdjustAllLayer(cfg.in_channels, cfg.out_channels, cfg.template_crop, cfg.crop_below)
