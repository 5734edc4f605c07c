"""Inference-only rewrites of a :class:`~siamrpnpp_ros.models.SiamRPN`.

:func:`fuse_for_inference` returns a *new* :class:`FusedSiamRPN` with the same
``template(z) -> kernels`` / ``forward(x, kernels) -> (cls, loc)`` contract; the source model is
not modified, so checkpoints keep loading into the unfused :class:`SiamRPN` (load, then fuse).
Two variants:

**Exact** (``fold_bn=False``, what ``build_tracker`` uses by default): only rewrites that keep
every output bit (checked with 1 and 2 threads on all three models):

* the cls and loc 3x3 search convs of a level read the same feature, so they run as one conv
  with twice the output channels (concatenating output channels does not change any output's
  reduction order), followed by one BatchNorm over the concatenated channels;
* the two depth-wise correlations of a level run as one grouped conv;
* the RPN level-fusion softmax is computed once instead of every frame; template-branch work
  is cached per target (the tracker already does that).

**Folded** (``fold_bn=True``): exact in real arithmetic, not in float32:

* BatchNorm folding: ``BN(conv(x))`` with eval statistics is ``conv(x) * a + b`` per output
  channel, so ``a`` goes into the weight and ``b`` into the bias (computed in float64, stored
  in the model dtype). Removes one pass over every activation.
* Neck folding where it saves FLOPs: the neck is a 1x1 conv (+BN, no activation) and the
  search conv is unpadded, so ``conv3x3(conv1x1(x))`` is one 3x3 conv with weight ``W3 @ W1``
  on the backbone feature. For mobilev2's 44- and 134-channel levels this replaces 256x9
  input taps per output by 44x9 / 134x9 (~2.5 of 14 GFLOP per frame); for wide inputs (r50,
  mobilev2's 448 channels) it would cost more and is skipped. The template branch keeps the
  separate neck because the centre crop sits between the two.
* Both heads' first 1x1 convs as one 2-group conv.

Float32 results of the folded model differ from pysot's by rounding: per layer as close to the
float64 result as the unfused layer (~1e-6 relative), but the seeded random parity networks
amplify that to head differences of up to ~2e-4 absolute (1e-4 is the parity tolerance) and,
for mobilev2, boxes 0.024 px off after 60 frames (the parity limit is 0.01 px). Hence the
folded variant is opt-in. :meth:`FusedSiamRPN.set_channels_last` and
:meth:`FusedSiamRPN.set_nnpack` pick the CPU conv layout / algorithm for it.
"""

from __future__ import annotations

import copy
from typing import Any, Optional, Sequence, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .rpn import DepthwiseRPN, MultiRPN
from .siamrpn import SiamRPN, TemplateKernels

__all__ = ["FusedSiamRPN", "NnpackConv2d", "enable_nnpack", "fold_conv_bn", "fuse_backbone_bn", "fuse_for_inference"]


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv equal to ``bn(conv(x))`` in eval mode (BN statistics frozen).

    The fold is computed in float64 and cast back to the conv's dtype, so the only
    rounding is the final cast (relative 6e-8 per weight in float32).
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics")
    weight = conv.weight.detach().double()
    scale = torch.ones_like(bn.running_var, dtype=torch.float64)
    if bn.weight is not None:
        scale = bn.weight.detach().double()
    scale = scale / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    shift = torch.zeros_like(scale) if bn.bias is None else bn.bias.detach().double()
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(scale)
    return _frozen_conv(
        conv.in_channels,
        weight * scale.reshape(-1, 1, 1, 1),
        (bias - bn.running_mean.detach().double()) * scale + shift,
        like=conv,
        padding=conv.padding,
        groups=conv.groups,
        padding_mode=conv.padding_mode,
    )


def _frozen_conv(in_channels: int, weight: Tensor, bias: Tensor, like: nn.Conv2d, **layout: Any) -> nn.Conv2d:
    """A frozen conv holding ``weight`` and ``bias`` (computed in float64) cast to ``like``'s
    dtype, on its device, with its kernel size, stride and dilation; ``layout``: the other
    ``nn.Conv2d`` arguments (padding, groups, padding mode) where they are not the defaults.
    """
    conv = nn.Conv2d(
        in_channels,
        weight.shape[0],
        kernel_size=like.kernel_size,  # type: ignore[arg-type]
        stride=like.stride,  # type: ignore[arg-type]
        dilation=like.dilation,  # type: ignore[arg-type]
        bias=True,
        **layout,
    ).to(device=like.weight.device)
    with torch.no_grad():
        conv.weight.copy_(weight.to(like.weight.dtype))
        conv.bias.copy_(bias.to(like.weight.dtype))  # type: ignore[union-attr]
    conv.requires_grad_(False)
    return conv


def fuse_backbone_bn(module: nn.Module) -> nn.Module:
    """Fold every BatchNorm that directly follows a conv into it, in place; returns ``module``.

    "Directly follows" means: the next entry of the same ``nn.Sequential``, or the ``bnN``
    attribute next to a ``convN`` attribute (ResNet bottlenecks). The BN is replaced by
    ``nn.Identity`` so the modules' own ``forward`` code keeps working unchanged.
    """
    for child in list(module.modules()):
        if isinstance(child, nn.Sequential):
            names = list(child._modules.keys())
            for first, second in zip(names, names[1:], strict=False):
                conv, bn = child._modules[first], child._modules[second]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    child._modules[first] = fold_conv_bn(conv, bn)
                    child._modules[second] = nn.Identity()
        for index in range(1, 10):
            conv_n = getattr(child, f"conv{index}", None)
            bn_n = getattr(child, f"bn{index}", None)
            if isinstance(conv_n, nn.Conv2d) and isinstance(bn_n, nn.BatchNorm2d):
                setattr(child, f"conv{index}", fold_conv_bn(conv_n, bn_n))
                setattr(child, f"bn{index}", nn.Identity())
    return module


class NnpackConv2d(nn.Conv2d):
    """A ``Conv2d`` that runs through NNPACK (Winograd / FFT) on CPU float32 when available.

    NNPACK's fast algorithms cut the multiplications of 3x3 and 5x5 stride-1 convs by 2-4x at a
    cost of ~1e-5 relative error per conv (measured: a 256->512 3x3 conv on a 31x31 map in
    15 ms vs oneDNN's 29 ms; alex's 5x5 conv gains most). Other devices, dtypes, or a torch
    build without NNPACK take the normal ``Conv2d`` path.
    """

    use_nnpack: bool = True

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 - nn.Conv2d's argument name
        """The convolution, through NNPACK on CPU float32 when enabled and available, else ``Conv2d``'s."""
        if self.use_nnpack and input.device.type == "cpu" and input.dtype == torch.float32 and _NNPACK:
            return torch._nnpack_spatial_convolution(
                input.contiguous(),
                self.weight,
                self.bias,
                # enable_nnpack swaps only convs with tuple padding (_nnpack_eligible).
                list(cast(tuple[int, ...], self.padding)),
                list(self.stride),
            )
        return super().forward(input)


def _nnpack_available() -> bool:
    try:
        return bool(torch._nnpack_available()) and hasattr(torch, "_nnpack_spatial_convolution")
    except (AttributeError, RuntimeError):
        return False


_NNPACK = _nnpack_available()


def _nnpack_eligible(conv: nn.Module) -> bool:
    return (
        type(conv) is nn.Conv2d
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and isinstance(conv.padding, tuple)
        and 1 < conv.kernel_size[0] <= 16
        and 1 < conv.kernel_size[1] <= 16
        and all(p < k for p, k in zip(conv.padding, conv.kernel_size, strict=True))  # NNPACK's limit
    )


def enable_nnpack(module: nn.Module) -> int:
    """Swap every eligible plain ``Conv2d`` in ``module`` (stride 1, no dilation, no groups,
    kernel 2..16) for an :class:`NnpackConv2d` sharing its weights, in place. Returns the count
    (0 when this torch build has no NNPACK).
    """
    if not _NNPACK:
        return 0
    count = 0
    for name, child in list(module.named_children()):
        if _nnpack_eligible(child):
            swapped = NnpackConv2d.__new__(NnpackConv2d)
            swapped.__dict__.update(child.__dict__)  # same parameters, no copy
            setattr(module, name, swapped)
            count += 1
        else:
            count += enable_nnpack(child)
    return count


def _fused_neck_conv(model: SiamRPN, level: int) -> Optional[nn.Conv2d]:
    """The neck's 1x1 conv of ``level`` with its BN folded in, or None without a neck."""
    if model.neck is None:
        return None
    adjust = getattr(model.neck, model.neck.level_names()[level])
    return fold_conv_bn(*_conv_and_bn(adjust.downsample))


def _conv_and_bn(block: nn.Sequential) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    """The ``Conv2d`` and ``BatchNorm2d`` that open a ``conv -> BN [-> ...]`` ``nn.Sequential``."""
    conv, bn = block[0], block[1]
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
        raise TypeError(f"expected Conv2d then BatchNorm2d, got {type(conv).__name__}, {type(bn).__name__}")
    return conv, bn


def _compose_1x1_then_conv(first: nn.Conv2d, second: nn.Conv2d) -> nn.Conv2d:
    """One conv equal to ``second(first(x))`` for a 1x1, stride-1, ungrouped ``first``.

    Exact when ``second`` is unpadded (true for the RPN search convs): then every tap of
    ``second`` reads a real ``first`` output, and ``first`` is affine per pixel, so its bias
    contributes ``sum over taps of second.weight @ first.bias`` to the new bias.
    """
    if first.kernel_size != (1, 1) or first.stride != (1, 1) or first.groups != 1:
        raise ValueError("the first conv must be a plain 1x1 conv")
    if any(p != 0 for p in second.padding) or second.groups != 1:
        raise ValueError("the second conv must be unpadded and ungrouped")
    w1 = first.weight.detach().double()[:, :, 0, 0]  # (mid, in)
    b1 = first.bias.detach().double() if first.bias is not None else torch.zeros(w1.shape[0], dtype=torch.float64)
    w2 = second.weight.detach().double()  # (out, mid, kh, kw)
    b2 = second.bias.detach().double() if second.bias is not None else torch.zeros(w2.shape[0], dtype=torch.float64)
    weight = torch.einsum("omhw,mi->oihw", w2, w1)
    bias = b2 + torch.einsum("omhw,m->o", w2, b1.to(w2.device))
    return _frozen_conv(first.in_channels, weight, bias, like=second)


def _filled_with(merged: nn.Conv2d, convs: Sequence[nn.Conv2d]) -> nn.Conv2d:
    """``merged`` on ``convs``' device and dtype, holding their weights and biases stacked along
    the output channels, frozen.
    """
    first = convs[0]
    merged = merged.to(device=first.weight.device, dtype=first.weight.dtype)
    with torch.no_grad():
        merged.weight.copy_(torch.cat([c.weight for c in convs], dim=0))
        merged.bias.copy_(torch.cat([c.bias for c in convs], dim=0))  # type: ignore[union-attr,misc]
    return merged.requires_grad_(False)


def _cat_convs(convs: Sequence[nn.Conv2d]) -> nn.Conv2d:
    """One conv whose output channels are the concatenation of ``convs``' (same input, same geometry)."""
    first = convs[0]
    merged = nn.Conv2d(
        first.in_channels,
        sum(c.out_channels for c in convs),
        kernel_size=first.kernel_size,  # type: ignore[arg-type]
        stride=first.stride,  # type: ignore[arg-type]
        padding=first.padding,  # type: ignore[arg-type]
        dilation=first.dilation,  # type: ignore[arg-type]
        bias=True,
    )
    return _filled_with(merged, convs)


def _grouped_1x1(convs: Sequence[nn.Conv2d]) -> nn.Conv2d:
    """The 1x1 convs ``convs[g]`` (each on its own block of input channels) as one grouped conv."""
    first = convs[0]
    merged = nn.Conv2d(
        first.in_channels * len(convs),
        first.out_channels * len(convs),
        kernel_size=1,
        groups=len(convs),
        bias=True,
    )
    return _filled_with(merged, convs)


def _conv_flops(conv: nn.Conv2d, out_hw: int) -> int:
    """Multiply-adds x2 of ``conv`` for an ``out_hw`` x ``out_hw`` output (a cost model only)."""
    kh, kw = conv.kernel_size
    return 2 * out_hw * out_hw * conv.out_channels * (conv.in_channels // conv.groups) * kh * kw


def _cat_batchnorms(bns: Sequence[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    """One eval-mode BatchNorm over the concatenated channels of ``bns`` (per channel identical)."""
    if len({bn.eps for bn in bns}) != 1:
        raise ValueError("cannot merge BatchNorms with different eps")
    means: list[Tensor] = []
    variances: list[Tensor] = []
    for bn in bns:
        if bn.running_mean is None or bn.running_var is None:
            raise ValueError("cannot merge BatchNorms without running statistics")
        means.append(bn.running_mean)
        variances.append(bn.running_var)
    merged = nn.BatchNorm2d(sum(bn.num_features for bn in bns), eps=bns[0].eps).to(
        device=means[0].device,
        dtype=means[0].dtype,
    )
    # A new BatchNorm2d tracks running statistics (track_running_stats defaults to True).
    assert merged.running_mean is not None and merged.running_var is not None
    with torch.no_grad():
        merged.weight.copy_(torch.cat([bn.weight for bn in bns]))
        merged.bias.copy_(torch.cat([bn.bias for bn in bns]))
        merged.running_mean.copy_(torch.cat(means))
        merged.running_var.copy_(torch.cat(variances))
    merged.requires_grad_(False)
    return merged.eval()


class _SearchLevel(nn.Module):
    """The per-frame work of one RPN level: [neck] -> search convs -> xcorr -> heads.

    ``search`` computes the cls and loc search features together (``2*hidden`` channels, ReLU
    included): one conv instead of two, since both read the same feature. The depth-wise
    correlation then runs once over all ``2*hidden`` channels with the concatenated kernels.
    ``head_hidden`` (optional) runs on the whole correlation, then ``cls_head`` / ``loc_head``
    on its first / second half of channels.
    """

    def __init__(
        self,
        neck: Optional[nn.Module],
        search: nn.Module,
        head_hidden: Optional[nn.Module],
        cls_head: nn.Module,
        loc_head: nn.Module,
        hidden: int,
    ) -> None:
        super().__init__()
        self.neck = neck
        self.search = search
        self.head_hidden = head_hidden
        self.cls_head = cls_head
        self.loc_head = loc_head
        self.hidden = hidden

    def forward(self, feature: Tensor, cls_kernel: Tensor, loc_kernel: Tensor) -> tuple[Tensor, Tensor]:
        """``feature`` ``(B, C, H, W)``, kernels ``(B|1, hidden, k, k)`` -> ``cls``, ``loc`` ``(B, 2A|4A, S, S)``."""
        if self.neck is not None:
            feature = self.neck(feature)
        search = self.search(feature)
        batch, channels = search.shape[0], search.shape[1]
        kernel = torch.cat((cls_kernel, loc_kernel), dim=1)
        if kernel.shape[0] != batch:
            kernel = kernel.expand(batch, -1, -1, -1)
        if kernel.shape[1] != channels:
            raise ValueError(f"kernels have {kernel.shape[1]} channels, the search feature {channels}")
        # Batch folded into the groups: every (item, channel) pair is its own group, as in
        # rpn.xcorr_depthwise; per channel this is the same computation, bit for bit.
        corr = F.conv2d(
            search.reshape(1, batch * channels, search.shape[2], search.shape[3]),
            kernel.reshape(batch * channels, 1, kernel.shape[2], kernel.shape[3]),
            groups=batch * channels,
        )
        corr = corr.reshape(batch, channels, corr.shape[2], corr.shape[3])
        if self.head_hidden is not None:
            corr = self.head_hidden(corr)
        # With batch 1 both channel halves are contiguous views: no copies.
        return self.cls_head(corr[:, : self.hidden]), self.loc_head(corr[:, self.hidden :])


def _exact_level(source: SiamRPN, index: int, rpn: DepthwiseRPN) -> _SearchLevel:
    """Level ``index`` with the source's own arithmetic: only bit-identical merges."""
    neck = None
    if source.neck is not None:
        neck = copy.deepcopy(getattr(source.neck, source.neck.level_names()[index]).downsample)
    (cls_conv, cls_bn), (loc_conv, loc_bn) = _conv_and_bn(rpn.cls.conv_search), _conv_and_bn(rpn.loc.conv_search)
    convs, bns = [cls_conv, loc_conv], [cls_bn, loc_bn]
    merged_conv = nn.Conv2d(
        convs[0].in_channels,
        convs[0].out_channels + convs[1].out_channels,
        kernel_size=convs[0].kernel_size,  # type: ignore[arg-type]
        stride=convs[0].stride,  # type: ignore[arg-type]
        padding=convs[0].padding,  # type: ignore[arg-type]
        dilation=convs[0].dilation,  # type: ignore[arg-type]
        bias=False,
    ).to(device=convs[0].weight.device, dtype=convs[0].weight.dtype)
    with torch.no_grad():
        merged_conv.weight.copy_(torch.cat([c.weight for c in convs], dim=0))
    # Concatenating output channels keeps every output's reduction order (checked bit for bit
    # with 1 and 2 threads), and BatchNorm and ReLU are per element.
    search = nn.Sequential(merged_conv, _cat_batchnorms(bns), nn.ReLU(inplace=True))
    return _SearchLevel(
        neck,
        search,
        None,
        copy.deepcopy(rpn.cls.head),
        copy.deepcopy(rpn.loc.head),
        hidden=convs[0].out_channels,
    )


def _folded_level(source: SiamRPN, index: int, rpn: DepthwiseRPN, fold_neck: bool, search_side: int) -> _SearchLevel:
    """Level ``index`` with BatchNorms folded, the neck folded in where cheaper, heads grouped."""
    search_convs = [fold_conv_bn(*_conv_and_bn(b.conv_search)) for b in (rpn.cls, rpn.loc)]
    merged = _cat_convs(search_convs)
    neck = _fused_neck_conv(source, index)
    if neck is not None and fold_neck:
        composed = _compose_1x1_then_conv(neck, merged)
        separate = _conv_flops(neck, search_side) + _conv_flops(merged, search_side - 2)
        if _conv_flops(composed, search_side - 2) < separate:
            neck, merged = None, composed
    hidden = _grouped_1x1([fold_conv_bn(*_conv_and_bn(b.head)) for b in (rpn.cls, rpn.loc)])
    return _SearchLevel(
        neck,
        nn.Sequential(merged, nn.ReLU(inplace=True)),
        nn.Sequential(hidden, nn.ReLU(inplace=True)),
        copy.deepcopy(rpn.cls.head[3]),
        copy.deepcopy(rpn.loc.head[3]),
        hidden=search_convs[0].out_channels,
    )


class FusedSiamRPN(nn.Module):
    """Inference-only SiamRPN++ built by :func:`fuse_for_inference` (same I/O as ``SiamRPN``).

    ``template(z)`` returns the same kernel tuple as the source model's (kernels are
    interchangeable between the two), ``forward(x, kernels)`` the same ``(cls, loc)``.
    ``fold_bn``: whether BatchNorms were folded (see the module docstring); ``channels_last``:
    whether inputs are converted to NHWC (see :meth:`set_channels_last`).
    Not meant for training or for loading checkpoints.
    """

    # Buffers registered in __init__ when the source fuses its levels with weights (``weighted``).
    cls_weight: Tensor
    loc_weight: Tensor

    def __init__(self, source: SiamRPN, fold_bn: bool = True, fold_neck: bool = True) -> None:
        super().__init__()
        self.config = source.config
        self.fold_bn = bool(fold_bn)
        self._kernel_names = source.kernel_names
        self._anchor_num = source.anchor_num
        fuse = fuse_backbone_bn if fold_bn else (lambda module: module)
        self.backbone = fuse(copy.deepcopy(source.backbone)).eval()
        # Template branch (once per target): copies of the neck and the RPN kernel convs.
        self.template_neck = fuse(copy.deepcopy(source.neck)).eval() if source.neck is not None else None
        head = source.rpn_head
        levels: list[DepthwiseRPN] = head._levels() if isinstance(head, MultiRPN) else [head]
        self.kernel_convs = nn.ModuleList()
        self.levels = nn.ModuleList()
        # Cost model for the neck fold: the search feature side at the default instance size
        # (31 for r50/mobilev2 at 255 px); the decision does not depend on it much.
        search_side = 31
        for index, rpn in enumerate(levels):
            for branch in (rpn.cls, rpn.loc):
                self.kernel_convs.append(fuse(copy.deepcopy(branch.conv_kernel)))
            if fold_bn:
                self.levels.append(_folded_level(source, index, rpn, fold_neck, search_side))
            else:
                self.levels.append(_exact_level(source, index, rpn))
        # Level fusion weights: the same float32 softmax pysot evaluates every frame, done once.
        self.weighted = isinstance(head, MultiRPN) and head.weighted
        if isinstance(head, MultiRPN) and head.weighted:
            self.register_buffer("cls_weight", F.softmax(head.cls_weight.detach(), dim=0).clone())
            self.register_buffer("loc_weight", F.softmax(head.loc_weight.detach(), dim=0).clone())
        self.channels_last = False
        self.nnpack = False
        self.requires_grad_(False)
        self.eval()

    @property
    def anchor_num(self) -> int:
        """Anchors per score-map position ``A``."""
        return self._anchor_num

    @property
    def kernel_names(self) -> tuple[str, ...]:
        """Names of the template kernels, as ``SiamRPN.kernel_names``."""
        return self._kernel_names

    def set_channels_last(self, enabled: bool = True) -> "FusedSiamRPN":
        """Keep weights and activations in NHWC (``channels_last``) when ``enabled``; returns self.

        On CPU this lets oneDNN skip its NCHW<->blocked reorders around every conv, which is
        faster for the fused model, but it changes the conv arithmetic (reduction order), so
        outputs move by float rounding like BN folding does.
        """
        self.channels_last = bool(enabled)
        # Module.to converts in place and returns self; the stubs lack its memory_format overload.
        self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)  # type: ignore[call-overload]
        return self

    def set_nnpack(self, enabled: bool = True) -> "FusedSiamRPN":
        """Route eligible convs through NNPACK on CPU (see :class:`NnpackConv2d`); returns self.

        NNPACK wants NCHW, so this also switches ``channels_last`` off when enabling.
        """
        if enabled:
            self.set_channels_last(False)
            enable_nnpack(self)
        for module in self.modules():
            if isinstance(module, NnpackConv2d):
                module.use_nnpack = bool(enabled)
        self.nnpack = bool(enabled) and _NNPACK
        return self

    def _input(self, image: Tensor) -> Tensor:
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) image tensor, got shape {tuple(image.shape)}")
        param = next(self.parameters())
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        return image.to(device=param.device, dtype=param.dtype, memory_format=memory_format)

    def features(self, image: Tensor) -> list[Tensor]:
        """Backbone features of a search crop ``(B, 3, I, I)`` (no neck), per level."""
        features: list[Tensor] = self.backbone(self._input(image))
        return features

    def template(self, z: Tensor) -> TemplateKernels:
        """Exemplar ``(B, 3, 127, 127)`` -> the flat per-level ``(cls, loc)`` kernel tuple."""
        features = self.backbone(self._input(z))
        if self.template_neck is not None:
            features = self.template_neck(features, crop=None)
        kernels: list[Tensor] = []
        for index, feature in enumerate(features):
            kernels.append(self.kernel_convs[2 * index](feature))
            kernels.append(self.kernel_convs[2 * index + 1](feature))
        return tuple(kernels)

    def head(self, features: Sequence[Tensor], kernels: TemplateKernels) -> tuple[Tensor, Tensor]:
        """Neck + RPN on backbone ``features`` with template ``kernels`` -> raw ``(cls, loc)``."""
        if len(kernels) != 2 * len(self.levels):
            raise ValueError(f"expected {2 * len(self.levels)} template kernels, got {len(kernels)}")
        cls_list: list[Tensor] = []
        loc_list: list[Tensor] = []
        for index, (level, feature) in enumerate(zip(self.levels, features, strict=True)):
            cls, loc = level(feature, kernels[2 * index], kernels[2 * index + 1])
            cls_list.append(cls)
            loc_list.append(loc)
        if len(cls_list) == 1:
            return cls_list[0], loc_list[0]
        return (
            _fuse_levels(cls_list, self.cls_weight if self.weighted else None),
            _fuse_levels(loc_list, self.loc_weight if self.weighted else None),
        )

    def forward(self, x: Tensor, kernels: TemplateKernels) -> tuple[Tensor, Tensor]:
        """Search crop ``(B, 3, I, I)`` and kernels -> ``cls (B, 2A, S, S)``, ``loc (B, 4A, S, S)``."""
        cls, loc = self.head(self.features(x), kernels)
        out_dtype = torch.promote_types(cls.dtype, torch.float32)
        # contiguous(): channels_last outputs become plain NCHW for the NumPy decoding.
        return cls.to(out_dtype).contiguous(), loc.to(out_dtype).contiguous()


def _fuse_levels(outputs: list[Tensor], weights: Optional[Tensor]) -> Tensor:
    """The level fusion of pysot's MultiRPN with precomputed softmax ``weights`` (None: plain mean).

    Accumulates left to right like ``MultiRPN._fuse`` so the float rounding is the same.
    """
    if weights is None:
        total = outputs[0]
        for out in outputs[1:]:
            total = total + out
        return total / len(outputs)
    total = outputs[0] * weights[0]
    for i in range(1, len(outputs)):
        total = total + outputs[i] * weights[i]
    return total


def fuse_for_inference(model: SiamRPN, fold_bn: bool = True, fold_neck: bool = True) -> FusedSiamRPN:
    """A fused, inference-only copy of ``model`` (see the module docstring); ``model`` is unchanged.

    Load the checkpoint into ``model`` first; the copy's weights are derived from it once.
    ``fold_bn=False`` gives the *exact* variant: only rewrites that keep every output bit
    (cls/loc conv merging, precomputed level weights, cached template work).
    ``fold_neck=False`` keeps every neck conv separate when folding.
    The copy lives on ``model``'s device and dtype; ``.to()``/``.half()`` work on it as usual.
    """
    if not isinstance(model, SiamRPN):
        raise TypeError(f"fuse_for_inference expects a SiamRPN, got {type(model).__name__}")
    was_training = model.training
    model.eval()
    try:
        return FusedSiamRPN(model, fold_bn=fold_bn, fold_neck=fold_neck)
    finally:
        model.train(was_training)
