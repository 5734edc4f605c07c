"""ImageNet MobileNetV2 weights mapped onto the package's (pysot-layout) MobileNetV2 backbone.

The source is a classification-style MobileNetV2 at width 1.0 whose state dict has
``features.0`` (stem conv + BN), ``features.1`` .. ``features.17`` (the 17 inverted-residual
blocks) and ``features.18`` (a 1x1 conv to 1280 channels), and takes RGB images scaled to
0..1 and normalised with ImageNet's mean and standard deviation. The package's backbone
differs in three ways, each handled here:

* **Block layout.** pysot gives every block a 1x1 expansion conv, even at expansion 1, so
  ``layer1.0`` has a 32->32 ``conv.0`` + ``conv.1`` (BN) that ImageNet's first block lacks.
  They are set to the identity: the block's input is the stem's ReLU6 output, already in
  [0, 6], so the ReLU6 after them changes nothing and the block computes what ImageNet's
  does. Every other tensor maps one to one, in order, with the same shape; ``features.18``
  has no counterpart and is dropped, as are stages the backbone does not build (a backbone
  cut after layer 5 takes ``features.0`` .. ``features.13``).
* **Input.** The package feeds raw BGR crops in 0..255. The normalisation is folded into the
  stem: its weights are divided by ``255 * std`` with the input channels reversed, and the
  mean's contribution (a constant per output channel, since the stem conv has no padding)
  is moved into the stem BN's running mean. The result on raw BGR equals the original on
  normalised RGB up to float rounding.
* **Padding and dilation.** pysot's stride-2 convs are unpadded and its later stages dilate
  instead of striding; the weights stay the same, the sampling grid shifts slightly, and
  fine-tuning absorbs that.

Only tensors are read, with ``weights_only`` loading (``models.checkpoints.read_state_dict``).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union

import torch
from torch import Tensor, nn

from .backbones.mobilenet_v2 import _MOBILENETV2_STAGES, MobileNetV2
from .checkpoints import read_state_dict

#: ImageNet's per-channel statistics of RGB images scaled to 0..1 (mean, standard deviation).
IMAGENET_MEAN_RGB: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: Pixel value range of the package's crops (uint8 images as float, 0..255).
PIXEL_SCALE = 255.0

_BN_TENSORS = ("weight", "bias", "running_mean", "running_var")
_IGNORED_SUFFIX = "num_batches_tracked"

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class MappingReport:
    """What :func:`map_imagenet_mobilenetv2` did.

    Attributes:
        mapped: backbone tensors copied from the ImageNet state dict.
        identity: backbone tensors set to the identity (``layer1.0``'s expansion conv and BN).
        dropped: ImageNet tensors with no counterpart in this backbone (``features.18``, and
            the stages a cut backbone does not build), ``num_batches_tracked`` not counted.
        folded: whether the input normalisation was folded into the stem.
    """

    mapped: int
    identity: int
    dropped: int
    folded: bool


def imagenet_key_map(backbone: MobileNetV2) -> "OrderedDict[str, str]":
    """Backbone key -> ImageNet key for every tensor that has an ImageNet counterpart, in
    network order (``num_batches_tracked`` left out). ``layer1.0.conv.0`` / ``conv.1`` have
    none (see the module docstring); stages the backbone does not build are not listed.
    """
    pairs: OrderedDict[str, str] = OrderedDict()
    pairs["layer0.0.weight"] = "features.0.0.weight"
    for name in _BN_TENSORS:
        pairs[f"layer0.1.{name}"] = f"features.0.1.{name}"
    feature = 1
    for stage, (expansion, _, blocks, _, _) in enumerate(_MOBILENETV2_STAGES[: backbone.num_stages], start=1):
        for block in range(blocks):
            target = f"layer{stage}.{block}.conv"
            source = f"features.{feature}.conv"
            # (pysot conv index, ImageNet conv index) of each conv and the BN after it; at
            # expansion 1 ImageNet's block starts at the depth-wise conv.
            convs: tuple[tuple[int, int], ...] = ((3, 0), (6, 3)) if expansion == 1 else ((0, 0), (3, 3), (6, 6))
            for ours, theirs in convs:
                pairs[f"{target}.{ours}.weight"] = f"{source}.{theirs}.weight"
                for name in _BN_TENSORS:
                    pairs[f"{target}.{ours + 1}.{name}"] = f"{source}.{theirs + 1}.{name}"
            feature += 1
    return pairs


def _identity_tensors(backbone: MobileNetV2) -> dict[str, Tensor]:
    """Values that make ``layer1.0``'s expansion conv + BN (32 -> 32) the identity."""
    block = backbone.get_submodule("layer1.0.conv")
    assert isinstance(block, nn.Sequential)
    conv, bn = block[0], block[1]
    assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
    channels = conv.out_channels
    if conv.in_channels != channels:
        raise ValueError(f"layer1.0's expansion conv is {conv.in_channels}->{channels}, not square")
    eye = torch.eye(channels, dtype=conv.weight.dtype).reshape(channels, channels, 1, 1)
    # BN in eval mode: (x - mean) / sqrt(var + eps) * weight + bias; var = 1 - eps makes the
    # divisor 1 (to float rounding), so the BN passes x through.
    return {
        "layer1.0.conv.0.weight": eye,
        "layer1.0.conv.1.weight": torch.ones(channels),
        "layer1.0.conv.1.bias": torch.zeros(channels),
        "layer1.0.conv.1.running_mean": torch.zeros(channels),
        "layer1.0.conv.1.running_var": torch.full((channels,), 1.0 - bn.eps),
    }


def fold_input_normalisation(
    conv_weight: Tensor,
    bn_running_mean: Tensor,
    mean: tuple[float, ...] = IMAGENET_MEAN_RGB,
    std: tuple[float, ...] = IMAGENET_STD_RGB,
    scale: float = PIXEL_SCALE,
    reverse_channels: bool = True,
) -> tuple[Tensor, Tensor]:
    """Stem weights and BN running mean that take raw pixels instead of normalised ones.

    The original stem sees ``(pixel / scale - mean[c]) / std[c]`` in channel order ``c`` (RGB);
    the returned one sees ``pixel`` in reversed order (BGR) when ``reverse_channels``. Exact
    for an unpadded conv (a padded one would see the constant offset at the border too).

    Args:
        conv_weight: ``(out, 3, kh, kw)`` stem conv weight (no bias).
        bn_running_mean: ``(out,)`` running mean of the BN after it.
        mean, std: per input channel, in the original channel order, for 0..1 pixels.
        scale: pixel range of the new input (255 for uint8 images as float).
        reverse_channels: the new input's channels are the original's reversed (BGR <-> RGB).

    Returns:
        ``(weight, running_mean)``: new tensors; the arguments are not changed.
    """
    mean_t = torch.tensor(mean, dtype=torch.float64)
    std_t = torch.tensor(std, dtype=torch.float64)
    weight = conv_weight.detach().to(torch.float64)
    if weight.dim() != 4 or weight.shape[1] != len(mean_t) or len(std_t) != len(mean_t):
        raise ValueError(f"stem weight {tuple(weight.shape)} does not fit {len(mean_t)} input channels")
    # conv(normalised) = conv_with(weight / (scale * std))(pixels) - sum(weight * mean / std):
    # the second term is the same at every output position, so it shifts the BN's mean.
    offset = (weight * (mean_t / std_t).reshape(1, -1, 1, 1)).sum(dim=(1, 2, 3))
    folded = weight / (scale * std_t).reshape(1, -1, 1, 1)
    if reverse_channels:
        folded = folded.flip(1)
    running_mean = bn_running_mean.detach().to(torch.float64) + offset
    return folded.to(conv_weight.dtype).contiguous(), running_mean.to(bn_running_mean.dtype)


def map_imagenet_mobilenetv2(
    backbone: MobileNetV2,
    state: Mapping[str, Tensor],
    fold_normalisation: bool = True,
) -> MappingReport:
    """Copy an ImageNet MobileNetV2 state dict (width 1.0) into ``backbone``, in place.

    All or nothing: every expected ImageNet key must be present with the backbone's shape,
    else ValueError (naming the first few problems) and the backbone is unchanged.

    Args:
        backbone: the package's MobileNetV2 at width 1.0, any ``used_layers``.
        state: ``features.*`` tensors (e.g. from :func:`read_imagenet_mobilenetv2`).
        fold_normalisation: fold ImageNet's RGB normalisation into the stem so the backbone
            takes raw BGR 0..255 (the package's crops); False keeps the original input
            convention (normalised RGB), for checks.
    """
    target = backbone.state_dict()
    pairs = imagenet_key_map(backbone)
    identity = _identity_tensors(backbone)
    problems = []
    for ours, theirs in pairs.items():
        if theirs not in state:
            problems.append(f"{theirs} missing")
        elif tuple(state[theirs].shape) != tuple(target[ours].shape):
            problems.append(f"{theirs} is {tuple(state[theirs].shape)}, {ours} is {tuple(target[ours].shape)}")
    uncovered = [k for k in target if k not in pairs and k not in identity and not k.endswith(_IGNORED_SUFFIX)]
    if uncovered:  # pragma: no cover - would mean the key map and the backbone disagree
        problems.append(f"no source for {', '.join(uncovered[:5])}")
    if problems:
        shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
        raise ValueError(
            f"ImageNet MobileNetV2 weights (width 1.0) do not fit this width-{_width(backbone)} backbone: {shown}"
        )

    values: dict[str, Tensor] = {ours: state[theirs] for ours, theirs in pairs.items()}
    values.update(identity)
    if fold_normalisation:
        values["layer0.0.weight"], values["layer0.1.running_mean"] = fold_input_normalisation(
            values["layer0.0.weight"], values["layer0.1.running_mean"]
        )
    with torch.no_grad():
        for key, value in values.items():
            target[key].copy_(value)
    used = set(pairs.values())
    dropped = [k for k in state if k not in used and not k.endswith(_IGNORED_SUFFIX)]
    return MappingReport(mapped=len(pairs), identity=len(identity), dropped=len(dropped), folded=fold_normalisation)


def read_imagenet_mobilenetv2(path: PathLike) -> "OrderedDict[str, Tensor]":
    """The ImageNet state dict in ``path``, read with ``weights_only`` loading (CPU tensors).

    Raises:
        models.CheckpointError: unreadable, or not a state dict.
        ValueError: a state dict without MobileNetV2's ``features.*`` keys.
    """
    state = read_state_dict(path, map_location="cpu")
    if "features.0.0.weight" not in state:
        raise ValueError(f"{os.fspath(path)} is not an ImageNet MobileNetV2 state dict (no features.0.0.weight)")
    return state


def load_imagenet_mobilenetv2(backbone: MobileNetV2, path: PathLike, fold_normalisation: bool = True) -> MappingReport:
    """:func:`read_imagenet_mobilenetv2` then :func:`map_imagenet_mobilenetv2`."""
    return map_imagenet_mobilenetv2(backbone, read_imagenet_mobilenetv2(path), fold_normalisation)


def _width(backbone: MobileNetV2) -> str:
    stem = backbone.layer0[0]
    assert isinstance(stem, nn.Conv2d)
    return f"{stem.out_channels / 32:g}"
