"""Depth-wise cross-correlation RPN heads (pysot ``DepthwiseRPN`` / ``MultiRPN``).

Each head is split into a *template* part, run once per target, and a
*search* part, run every frame, so the tracker can cache the template-branch
conv outputs ("kernels"). Running both parts back to back is exactly pysot's
forward: the template branch does not depend on the search image.

Shapes below: ``B`` batch, ``C`` level channels, ``A`` anchors per position.
For the 127/255 px crops of r50/mobilev2 a template feature is 7x7 (kernel
5x5) and a search feature 31x31 (29x29 after its conv), giving 25x25 score
maps; alex: 6x6 -> 4x4 kernels, 26 -> 24, 21x21 maps.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import RPNConfig


def xcorr_depthwise(search: Tensor, kernel: Tensor) -> Tensor:
    """Correlate every channel of ``search`` with the same channel of ``kernel``.

    No kernel flip, no padding ("valid"). Implemented as one grouped conv with
    the batch folded into the channels, so each (item, channel) pair is its
    own group.

    Args:
        search: ``(B, C, H, W)``.
        kernel: ``(B, C, h, w)``, or ``(1, C, h, w)`` to use one template for
            the whole batch.

    Returns:
        ``(B, C, H - h + 1, W - w + 1)``.
    """
    batch, channels, height, width = search.shape
    if kernel.shape[1] != channels:
        raise ValueError(f"kernel has {kernel.shape[1]} channels but the search feature has {channels}")
    if kernel.shape[0] != batch:
        if kernel.shape[0] != 1:
            raise ValueError(f"kernel batch {kernel.shape[0]} does not match search batch {batch}")
        kernel = kernel.expand(batch, -1, -1, -1)
    kh, kw = kernel.shape[2], kernel.shape[3]
    out = F.conv2d(
        search.reshape(1, batch * channels, height, width),
        kernel.reshape(batch * channels, 1, kh, kw),
        groups=batch * channels,
    )
    return out.reshape(batch, channels, out.shape[2], out.shape[3])


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DepthwiseXCorr(nn.Module):
    """Template conv, search conv, depth-wise correlation, 1x1 head.

    ``conv_kernel``: ``(B, C_in, h, w)`` -> ``(B, hidden, h-2, w-2)``;
    ``conv_search``: ``(B, C_in, H, W)`` -> ``(B, hidden, H-2, W-2)``;
    ``head``: ``(B, hidden, S, S)`` -> ``(B, out_channels, S, S)`` (its last conv
    has a bias, the others do not).
    """

    def __init__(self, in_channels: int, hidden: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv_kernel = _conv_bn_relu(in_channels, hidden, kernel_size)
        self.conv_search = _conv_bn_relu(in_channels, hidden, kernel_size)
        self.head = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel_size=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, kernel_size=1),
        )

    def template_kernel(self, z_f: Tensor) -> Tensor:
        """Template branch: ``(B, C_in, h, w)`` -> correlation kernel ``(B, hidden, h-2, w-2)``."""
        kernel: Tensor = self.conv_kernel(z_f)
        return kernel

    def track(self, x_f: Tensor, kernel: Tensor) -> Tensor:
        """Search branch with a cached kernel: ``(B, C_in, H, W)`` -> ``(B, out, S, S)``."""
        out: Tensor = self.head(xcorr_depthwise(self.conv_search(x_f), kernel))
        return out

    def forward(self, z_f: Tensor, x_f: Tensor) -> Tensor:
        """pysot-style one-shot forward (template and search together)."""
        return self.track(x_f, self.template_kernel(z_f))


class DepthwiseRPN(nn.Module):
    """Classification (``2A`` channels) and regression (``4A`` channels) branches for one level.

    Output layout as in pysot: cls channel ``a`` is background and ``A + a``
    foreground of anchor ``a``; loc channel ``k*A + a`` is component ``k``
    (dx, dy, dw, dh) of anchor ``a``.
    """

    def __init__(self, anchor_num: int = 5, in_channels: int = 256, out_channels: int = 256) -> None:
        super().__init__()
        self.cls = DepthwiseXCorr(in_channels, out_channels, 2 * anchor_num)
        self.loc = DepthwiseXCorr(in_channels, out_channels, 4 * anchor_num)

    def template_kernels(self, z_fs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """``z_fs``: one template feature ``[(B, C, h, w)]``. Returns ``(cls_kernel, loc_kernel)``."""
        (z_f,) = _one_level(z_fs)
        return self.cls.template_kernel(z_f), self.loc.template_kernel(z_f)

    def track(self, x_fs: Sequence[Tensor], kernels: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """``x_fs``: ``[(B, C, H, W)]``; ``kernels`` from :meth:`template_kernels`.

        Returns ``cls (B, 2A, S, S)``, ``loc (B, 4A, S, S)``.
        """
        (x_f,) = _one_level(x_fs)
        if len(kernels) != 2:
            raise ValueError(f"expected 2 template kernels (cls, loc), got {len(kernels)}")
        return self.cls.track(x_f, kernels[0]), self.loc.track(x_f, kernels[1])

    def forward(self, z_f: Tensor, x_f: Tensor) -> tuple[Tensor, Tensor]:
        """pysot-style one-shot forward on single feature maps."""
        return self.cls(z_f, x_f), self.loc(z_f, x_f)


def _one_level(features: Sequence[Tensor]) -> Sequence[Tensor]:
    if len(features) != 1:
        raise ValueError(f"a single-level RPN takes one feature map, got {len(features)}")
    return features


class MultiRPN(nn.Module):
    """One :class:`DepthwiseRPN` per level (``rpn2``, ``rpn3``, ...), fused.

    Fusion: with ``weighted``, ``sum_i softmax(cls_weight)_i * cls_i`` (and the
    same with ``loc_weight``); otherwise the plain mean over levels.
    """

    def __init__(
        self,
        anchor_num: int,
        in_channels: Sequence[int],
        hidden_channels: Sequence[int],
        weighted: bool = False,
    ) -> None:
        super().__init__()
        if len(in_channels) != len(hidden_channels):
            raise ValueError("in_channels and hidden_channels must have the same length")
        self.num_levels = len(in_channels)
        self.weighted = weighted
        for name, cin, hidden in zip(self.level_names(), in_channels, hidden_channels, strict=True):
            self.add_module(name, DepthwiseRPN(anchor_num, cin, hidden))
        if weighted:
            # ones -> equal weights after the softmax until trained.
            self.cls_weight = nn.Parameter(torch.ones(self.num_levels))
            self.loc_weight = nn.Parameter(torch.ones(self.num_levels))

    def level_names(self) -> list[str]:
        """Sub-module names in level order (pysot numbers them from 2)."""
        return [f"rpn{i + 2}" for i in range(self.num_levels)]

    def _levels(self) -> list[DepthwiseRPN]:
        return [getattr(self, name) for name in self.level_names()]

    def template_kernels(self, z_fs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """``z_fs[i]``: ``(B, C_i, h, w)``.

        Returns the flat tuple ``(cls_k_lvl0, loc_k_lvl0, cls_k_lvl1, loc_k_lvl1, ...)``.
        """
        if len(z_fs) != self.num_levels:
            raise ValueError(f"expected {self.num_levels} template features, got {len(z_fs)}")
        kernels: list[Tensor] = []
        for rpn, z_f in zip(self._levels(), z_fs, strict=True):
            kernels.extend(rpn.template_kernels([z_f]))
        return tuple(kernels)

    def track(self, x_fs: Sequence[Tensor], kernels: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """``x_fs[i]``: ``(B, C_i, H, W)``; ``kernels`` from :meth:`template_kernels`.

        Returns fused ``cls (B, 2A, S, S)`` and ``loc (B, 4A, S, S)``.
        """
        if len(x_fs) != self.num_levels:
            raise ValueError(f"expected {self.num_levels} search features, got {len(x_fs)}")
        if len(kernels) != 2 * self.num_levels:
            raise ValueError(f"expected {2 * self.num_levels} template kernels, got {len(kernels)}")
        cls_list: list[Tensor] = []
        loc_list: list[Tensor] = []
        for i, (rpn, x_f) in enumerate(zip(self._levels(), x_fs, strict=True)):
            c, loc = rpn.track([x_f], kernels[2 * i : 2 * i + 2])
            cls_list.append(c)
            loc_list.append(loc)
        return self._fuse(cls_list, self.cls_weight if self.weighted else None), self._fuse(
            loc_list, self.loc_weight if self.weighted else None
        )

    def forward(self, z_fs: Sequence[Tensor], x_fs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """pysot-style one-shot forward on per-level feature lists."""
        return self.track(x_fs, self.template_kernels(z_fs))

    @staticmethod
    def _fuse(outputs: list[Tensor], logits: Tensor | None) -> Tensor:
        # Accumulate left to right, like pysot, so float rounding matches.
        if logits is None:
            total = outputs[0]
            for out in outputs[1:]:
                total = total + out
            return total / len(outputs)
        weights = F.softmax(logits, dim=0)
        total = outputs[0] * weights[0]
        for i in range(1, len(outputs)):
            total = total + outputs[i] * weights[i]
        return total


def build_rpn_head(cfg: RPNConfig) -> MultiRPN | DepthwiseRPN:
    """``MultiRPN`` for multi-level configs, a single ``DepthwiseRPN`` otherwise."""
    if cfg.multi:
        return MultiRPN(cfg.anchor_num, cfg.in_channels, cfg.hidden_channels, cfg.weighted)
    return DepthwiseRPN(cfg.anchor_num, cfg.in_channels[0], cfg.hidden_channels[0])
