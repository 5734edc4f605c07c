"""Explicit, immutable descriptions of the SiamRPN++ network architectures.

A :class:`ModelConfig` fixes everything that determines the parameter layout
(and therefore the checkpoint keys) of a :class:`~siamrpnpp_ros.models.SiamRPN`.
Tracking hyper-parameters (penalty, window influence, crop sizes) are *not*
part of it: they belong to the tracker, which can change them without touching
the weights.

The presets reproduce the three published pysot experiments
(``siamrpn_r50_l234_dwxcorr``, ``siamrpn_mobilev2_l234_dwxcorr`` and
``siamrpn_alex_dwxcorr``) so that their checkpoints load key for key.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Mapping, Optional, Sequence, Union

from .backbones.mobilenet_v2 import MobileNetV2
from .compat import meta_device

BackboneName = Literal["resnet50", "mobilenetv2", "alexnet"]
_BACKBONE_NAMES: tuple[str, ...] = ("resnet50", "mobilenetv2", "alexnet")

# The layers a backbone can expose (index into its list of stage outputs).
# AlexNet only exposes its final conv5 output, called layer 5 here.
_VALID_LAYERS: dict[str, tuple[int, ...]] = {
    "resnet50": (0, 1, 2, 3, 4),
    "mobilenetv2": (0, 1, 2, 3, 4, 5, 6, 7),
    "alexnet": (5,),
}


def _as_int_tuple(value: Any, what: str, positive: bool = True) -> tuple[int, ...]:
    """Normalise a list/tuple of ints to a tuple, so configs stay hashable and frozen.

    ``value`` is unchecked input (a config field, a YAML list): whatever is not a sequence of
    ints raises TypeError here.
    """
    try:
        out = tuple(int(v) for v in value)
    except TypeError as exc:
        raise TypeError(f"{what} must be a sequence of ints, got {value!r}") from exc
    if positive and any(v <= 0 for v in out):
        raise ValueError(f"{what} must be positive, got {out}")
    return out


@dataclass(frozen=True)
class BackboneConfig:
    """Feature extractor.

    Attributes:
        name: ``'resnet50'`` (pysot's atrous ResNet-50), ``'mobilenetv2'`` (pysot's
            dilated MobileNetV2) or ``'alexnet'`` (pysot's ``AlexNetLegacy``).
        used_layers: indices of the stage outputs handed to the neck/RPN, in
            order. ResNet-50: 0 = stem, 1..4 = layer1..layer4. MobileNetV2:
            0 = layer0 (stem), 1..7 = layer1..layer7. AlexNet: only ``(5,)``.
        width_mult: channel multiplier (MobileNetV2 and AlexNet; must be 1.0 for
            ResNet-50).
    """

    name: BackboneName
    used_layers: tuple[int, ...]
    width_mult: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in _BACKBONE_NAMES:
            raise ValueError(f"unknown backbone {self.name!r}; valid: {', '.join(_BACKBONE_NAMES)}")
        layers = _as_int_tuple(self.used_layers, "used_layers", positive=False)
        object.__setattr__(self, "used_layers", layers)
        if not layers:
            raise ValueError("used_layers must not be empty")
        if list(layers) != sorted(set(layers)):
            raise ValueError(f"used_layers must be strictly increasing, got {layers}")
        bad = [i for i in layers if i not in _VALID_LAYERS[self.name]]
        if bad:
            raise ValueError(f"{self.name} has no layer(s) {bad}; valid: {list(_VALID_LAYERS[self.name])}")
        if not self.width_mult > 0:
            raise ValueError(f"width_mult must be positive, got {self.width_mult}")
        if self.name == "resnet50" and self.width_mult != 1.0:
            raise ValueError("resnet50 has no width multiplier (width_mult must be 1.0)")


@dataclass(frozen=True)
class NeckConfig:
    """Per-level channel adjustment (pysot ``AdjustAllLayer``): 1x1 conv + BN.

    Attributes:
        in_channels: backbone channels of each used layer.
        out_channels: channels fed to the RPN, one per level.
        template_crop: side (in feature cells) of the centre crop taken from
            template features.
        crop_below: pysot decides *by width* whether a feature is a template:
            features narrower than this are centre-cropped (15 < 20 for the
            127 px exemplar, 31 >= 20 for the 255 px search region).
    """

    in_channels: tuple[int, ...]
    out_channels: tuple[int, ...]
    template_crop: int = 7
    crop_below: int = 20

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_channels", _as_int_tuple(self.in_channels, "in_channels"))
        object.__setattr__(self, "out_channels", _as_int_tuple(self.out_channels, "out_channels"))
        if len(self.in_channels) != len(self.out_channels) or not self.in_channels:
            raise ValueError(
                f"neck in_channels {self.in_channels} and out_channels {self.out_channels} "
                "must be non-empty and of equal length"
            )
        if self.template_crop <= 0:
            raise ValueError(f"template_crop must be positive, got {self.template_crop}")


@dataclass(frozen=True)
class RPNConfig:
    """Depth-wise cross-correlation region-proposal head(s).

    Attributes:
        anchor_num: anchors per score-map position ``A``; cls has ``2A`` and loc
            ``4A`` output channels.
        in_channels: feature channels per level.
        hidden_channels: channels of the template/search branch convs and of the
            correlation map, per level (pysot uses ``in_channels`` again).
        weighted: fuse levels with learned softmax weights (``cls_weight`` /
            ``loc_weight``) instead of a plain mean. Only for ``multi``.
        multi: ``True`` -> pysot ``MultiRPN`` (keys ``rpn_head.rpn2.*``, ...),
            ``False`` -> a single ``DepthwiseRPN`` (keys ``rpn_head.cls.*``),
            which requires exactly one level.
    """

    anchor_num: int = 5
    in_channels: tuple[int, ...] = (256, 256, 256)
    hidden_channels: tuple[int, ...] = (256, 256, 256)
    weighted: bool = False
    multi: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_channels", _as_int_tuple(self.in_channels, "in_channels"))
        object.__setattr__(self, "hidden_channels", _as_int_tuple(self.hidden_channels, "hidden_channels"))
        if self.anchor_num <= 0:
            raise ValueError(f"anchor_num must be positive, got {self.anchor_num}")
        if len(self.in_channels) != len(self.hidden_channels) or not self.in_channels:
            raise ValueError(
                f"rpn in_channels {self.in_channels} and hidden_channels {self.hidden_channels} "
                "must be non-empty and of equal length"
            )
        if not self.multi and len(self.in_channels) != 1:
            raise ValueError("a single (non-multi) RPN takes exactly one level")
        if self.weighted and not self.multi:
            raise ValueError("weighted fusion needs a multi-level RPN")

    @property
    def num_levels(self) -> int:
        """Number of feature levels the head consumes."""
        return len(self.in_channels)


@dataclass(frozen=True)
class ModelConfig:
    """A complete SiamRPN++ network: backbone -> optional neck -> RPN head.

    ``name`` is only used in messages (e.g. checkpoint mismatch errors).
    """

    backbone: BackboneConfig
    neck: Optional[NeckConfig]
    rpn: RPNConfig
    name: str = field(default="custom")

    def __post_init__(self) -> None:
        levels = len(self.backbone.used_layers)
        if self.neck is not None and len(self.neck.in_channels) != levels:
            raise ValueError(f"neck has {len(self.neck.in_channels)} levels but the backbone exposes {levels}")
        if self.rpn.num_levels != levels:
            raise ValueError(f"rpn has {self.rpn.num_levels} levels but the backbone exposes {levels}")
        if self.neck is not None and self.neck.out_channels != self.rpn.in_channels:
            raise ValueError(f"neck out_channels {self.neck.out_channels} != rpn in_channels {self.rpn.in_channels}")


# Read-only view: presets are shared by every caller, so nobody may edit them in place.
# RPNConfig's defaults are pysot's MultiRPN: 5 anchors, three 256-channel levels.
MODEL_PRESETS: Mapping[str, ModelConfig] = MappingProxyType(
    {
        # experiments/siamrpn_r50_l234_dwxcorr
        "r50": ModelConfig(
            name="r50",
            backbone=BackboneConfig(name="resnet50", used_layers=(2, 3, 4)),
            neck=NeckConfig(in_channels=(512, 1024, 2048), out_channels=(256, 256, 256)),
            rpn=RPNConfig(weighted=True),
        ),
        # experiments/siamrpn_mobilev2_l234_dwxcorr
        "mobilev2": ModelConfig(
            name="mobilev2",
            backbone=BackboneConfig(name="mobilenetv2", used_layers=(3, 5, 7), width_mult=1.4),
            neck=NeckConfig(in_channels=(44, 134, 448), out_channels=(256, 256, 256)),
            rpn=RPNConfig(weighted=False),
        ),
        # experiments/siamrpn_alex_dwxcorr (no neck: ADJUST false)
        "alex": ModelConfig(
            name="alex",
            backbone=BackboneConfig(name="alexnet", used_layers=(5,), width_mult=1.0),
            neck=None,
            rpn=RPNConfig(in_channels=(256,), hidden_channels=(256,), weighted=False, multi=False),
        ),
    }
)


#: How a model is named: a preset, a thinner preset (``<preset>-w<width_mult>``), or a
#: MobileNetV2 layout (``-l`` levels, ``-n`` neck channels); quoted in every name error.
THIN_NAME_HELP = (
    "r50, mobilev2, alex, a thinner alex/mobilev2 named like alex-w0.5, or a mobilev2 layout "
    "named like mobilev2-w1-l345-n128 (width 1.0, levels from layers 3, 4 and 5, a 128-channel "
    "neck and heads, learned level fusion)"
)

_THINNABLE_BACKBONES = ("alexnet", "mobilenetv2")
#: Presets whose levels and neck width a name may choose (``-l``/``-n``).
_LAYOUT_PRESETS = ("mobilev2",)
_MODEL_NAME = re.compile(
    r"^(?P<base>[a-z0-9]+)(?:-w(?P<width>[0-9]*\.?[0-9]+))?(?:-l(?P<layers>[0-9]+))?(?:-n(?P<neck>[0-9]+))?$"
)


@dataclass(frozen=True)
class ModelName:
    """A parsed model name: ``<base>[-w<width>][-l<layers>][-n<neck>]``.

    Attributes:
        base: the preset (``'r50'``, ``'mobilev2'``, ``'alex'``).
        width: backbone width multiplier, or None for the preset's.
        layers: backbone stages handed to the neck (``-l345`` -> ``(3, 4, 5)``), or None.
        neck: channels of the neck and of the RPN heads, per level (``-n128``), or None.
    """

    base: str
    width: Optional[float] = None
    layers: Optional[tuple[int, ...]] = None
    neck: Optional[int] = None

    @property
    def is_layout(self) -> bool:
        """Whether the name chooses levels or neck width (a :func:`layout_model_config`)."""
        return self.layers is not None or self.neck is not None


def parse_model_name(name: str) -> ModelName:
    """``'mobilev2-w1-l345-n128'`` -> ``ModelName('mobilev2', 1.0, (3, 4, 5), 128)``.

    Only the syntax and what each preset allows are checked here (``-w`` for alex and
    mobilev2, ``-l``/``-n`` for mobilev2); whether the layers exist is checked when the
    config is built.

    Raises:
        ValueError: not a valid name; the message lists the valid forms.
    """
    error = ValueError(f"unknown model {name!r}; valid names: {THIN_NAME_HELP}")
    if not isinstance(name, str):
        raise ValueError(f"a model name must be a string, got {name!r}; valid names: {THIN_NAME_HELP}")
    match = _MODEL_NAME.match(name)
    if match is None or match["base"] not in MODEL_PRESETS:
        raise error
    base = match["base"]
    width = float(match["width"]) if match["width"] is not None else None
    layers = tuple(int(c) for c in match["layers"]) if match["layers"] is not None else None
    neck = int(match["neck"]) if match["neck"] is not None else None
    if width is not None and not (width > 0 and MODEL_PRESETS[base].backbone.name in _THINNABLE_BACKBONES):
        raise error
    if (layers is not None or neck is not None) and base not in _LAYOUT_PRESETS:
        raise error
    if neck is not None and neck <= 0:
        raise error
    return ModelName(base, width, layers, neck)


def split_model_name(name: str) -> tuple[str, Optional[float]]:
    """``'alex-w0.5'`` -> ``('alex', 0.5)``; ``'alex'`` -> ``('alex', None)``;
    ``'mobilev2-w1-l345-n128'`` -> ``('mobilev2', 1.0)`` (see :func:`parse_model_name`).

    Raises:
        ValueError: not a valid model name.
    """
    parsed = parse_model_name(name)
    return parsed.base, parsed.width


def is_model_name(name: object) -> bool:
    """Whether ``name`` is accepted by :func:`model_config`."""
    try:
        model_config(name)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def model_name_argument(text: str) -> str:
    """``argparse`` type of the command-line tools' ``--model``: the canonical name
    (``alex-w0.50`` -> ``alex-w0.5``), or a usage error listing the valid forms.
    """
    import argparse

    if not is_model_name(text):
        raise argparse.ArgumentTypeError(f"unknown model {text!r}; valid: {THIN_NAME_HELP}")
    return model_config(text).name


def thinner_model_config(base: ModelConfig, width_mult: float) -> ModelConfig:
    """``base`` with the backbone's width multiplier set to ``width_mult`` and the neck/RPN
    scaled alongside (alex and mobilev2 only): a faster network with its own checkpoint
    shapes, named ``<base>-w<width_mult>``.
    """
    if width_mult == base.backbone.width_mult:
        return base
    name = f"{base.name}-w{width_mult:g}"
    backbone = dataclasses.replace(base.backbone, width_mult=width_mult)
    if base.backbone.name == "alexnet":
        width = int(256 * width_mult)
        return dataclasses.replace(
            base,
            name=name,
            backbone=backbone,
            rpn=dataclasses.replace(base.rpn, in_channels=(width,), hidden_channels=(width,)),
        )
    if base.backbone.name == "mobilenetv2" and base.neck is not None:
        # Same stage layout as the preset, channels scaled the way the backbone scales them.
        with meta_device():
            channels = MobileNetV2(width_mult=width_mult, used_layers=base.backbone.used_layers).out_channels
        hidden = max(16, int(256 * width_mult / base.backbone.width_mult))
        levels = len(channels)
        return dataclasses.replace(
            base,
            name=name,
            backbone=backbone,
            neck=dataclasses.replace(base.neck, in_channels=tuple(channels), out_channels=(hidden,) * levels),
            rpn=dataclasses.replace(base.rpn, in_channels=(hidden,) * levels, hidden_channels=(hidden,) * levels),
        )
    raise ValueError(f"a width multiplier is supported for alex and mobilev2, not {base.name!r}")


def layout_model_config(
    base: ModelConfig,
    width_mult: Optional[float] = None,
    used_layers: Optional[Sequence[int]] = None,
    neck_channels: Optional[int] = None,
) -> ModelConfig:
    """A MobileNetV2 SiamRPN++ of the package's own layout, derived from the preset ``base``:
    the backbone at ``width_mult`` (default: the preset's), cut after the last of
    ``used_layers`` (default: the preset's), a neck of ``neck_channels`` per level (default:
    the thinner variant's, 256 scaled by the width), DW-XCorr heads of the same width, and,
    with several levels, learned fusion weights (the SiamRPN++ paper's layer-wise
    aggregation; pysot's released mobilev2 checkpoint averages instead).

    Named ``<base>-w<width>-l<layers>-n<neck>`` in full, so one architecture has one name
    (its checkpoint file, ``default_<name>.pth``, and the node's ``model`` parameter use it).
    """
    if base.backbone.name != "mobilenetv2" or base.neck is None:
        raise ValueError(f"levels and neck width can be chosen for mobilev2, not {base.name!r}")
    width = base.backbone.width_mult if width_mult is None else float(width_mult)
    layers = base.backbone.used_layers if used_layers is None else tuple(used_layers)
    # Validates the layers (range, order) with the backbone's own rules.
    backbone = BackboneConfig(name="mobilenetv2", used_layers=layers, width_mult=width)
    neck = max(16, int(256 * width / base.backbone.width_mult)) if neck_channels is None else int(neck_channels)
    if neck <= 0:
        raise ValueError(f"neck channels must be positive, got {neck}")
    with meta_device():
        channels = MobileNetV2(width_mult=width, used_layers=backbone.used_layers).out_channels
    levels = len(channels)
    digits = "".join(str(i) for i in backbone.used_layers)
    return ModelConfig(
        name=f"{base.name}-w{width:g}-l{digits}-n{neck}",
        backbone=backbone,
        neck=dataclasses.replace(base.neck, in_channels=tuple(channels), out_channels=(neck,) * levels),
        rpn=dataclasses.replace(
            base.rpn,
            in_channels=(neck,) * levels,
            hidden_channels=(neck,) * levels,
            weighted=levels > 1,
            multi=True,
        ),
    )


def model_config(name: Union[str, ModelConfig]) -> ModelConfig:
    """The architecture called ``name``: a preset (``'r50'``, ``'mobilev2'``, ``'alex'``), a
    thinner variant of one (``'alex-w0.5'``, see :func:`thinner_model_config`) or a MobileNetV2
    layout (``'mobilev2-w1-l345-n128'``, see :func:`layout_model_config`).

    A :class:`ModelConfig` is returned unchanged, so callers can accept either.

    Raises:
        ValueError: ``name`` is not valid; the message lists the valid forms.
    """
    if isinstance(name, ModelConfig):
        return name
    parsed = parse_model_name(name)
    preset = MODEL_PRESETS[parsed.base]
    if parsed.is_layout:
        try:
            return layout_model_config(preset, parsed.width, parsed.layers, parsed.neck)
        except ValueError as exc:
            raise ValueError(f"model {name!r}: {exc}; valid names: {THIN_NAME_HELP}") from exc
    return preset if parsed.width is None else thinner_model_config(preset, parsed.width)
