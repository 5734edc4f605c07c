"""Tracker hyperparameters: the frozen ``TrackerConfig``, pysot's presets, and the YAML loader.

The YAML files under ``config/`` are ROS 2 parameter files, so the same file can be
passed to the offline CLI (``--config``) and to the ROS node (``--params-file``).
Only two entries are read here: ``model`` and the ``tracker`` section. Everything
else under ``ros__parameters`` belongs to other consumers (the node) and is ignored.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from siamrpnpp_ros.models.config import model_config, split_model_name

from .presence import FEATURE_NAMES

#: The pysot presets; ``models.config.parse_model_name`` also accepts thinner variants (``alex-w0.5``)
#: and MobileNetV2 layouts (``mobilev2-w1-l345-n128``).
MODEL_NAMES: tuple[str, ...] = ("r50", "mobilev2", "alex")

_INT_FIELDS = (
    "exemplar_size",
    "instance_size",
    "base_size",
    "anchor_stride",
    "lost_instance_size",
    "lost_tiles_per_frame",
)
_FLOAT_FIELDS = (
    "penalty_k",
    "window_influence",
    "lr",
    "context_amount",
    "confidence_low",
    "confidence_high",
    "lost_window_influence",
)
_TUPLE_FIELDS = ("anchor_ratios", "anchor_scales", "presence_weights")
#: The presence model's weights: a bias and one per feature (``tracking/presence.py``).
PRESENCE_WEIGHTS = 1 + len(FEATURE_NAMES)
#: Parameter files written before the appearance features hold the first four.
LEGACY_PRESENCE_WEIGHTS = 4
#: How ``LongTermTracker`` searches for a lost target (``tracking/longterm.py``).
LOST_SEARCH_CHOICES: tuple[str, ...] = ("tiles", "wide")


@dataclass(frozen=True)
class TrackerConfig:
    """SiamRPN++ tracking hyperparameters (pysot's ``cfg.TRACK`` and ``cfg.ANCHOR``).

    Sizes (``exemplar_size``, ``instance_size``, ``lost_instance_size``) are side lengths in
    pixels of the square network inputs; ``anchor_stride`` is in search-crop pixels per
    score-map cell. The model-specific values (``penalty_k``, ``window_influence``, ``lr``,
    ``instance_size``, ``base_size``) have no defaults on purpose: take them from
    ``TRACKER_PRESETS`` so that a config never silently mixes two models' settings.

    Long-term fields (used only by ``LongTermTracker``, ``tracking/longterm.py``): below
    ``confidence_low`` the target counts as lost and is searched for with
    ``lost_window_influence``, by ``lost_search``: ``"tiles"`` (``lost_tiles_per_frame``
    normal-size searches per frame in one batch, visiting tiles over the whole frame: a lost
    frame costs one pass over that many crops; the state stays inside the frame and a loss
    holds the last size tracked above ``confidence_high``) or ``"wide"`` (pysot's
    ``SiamRPNLTTracker``: one ``lost_instance_size`` crop per frame, ~8x a normal step,
    pysot's unclipped state); above ``confidence_high`` it counts as found again.

    ``presence_weights``: ``(bias, logit_score, peak_ratio, spread, colour_similarity,
    pattern_similarity)`` of the presence model (``tracking/presence.py``), the confidence that
    the box is the target which the long-term search and the LOST status follow. The default
    ``(0, 1, 0, 0, 0, 0)`` makes presence the raw score. Four values (the weights before the
    appearance features existed) are read with zeros for the last two.
    """

    penalty_k: float
    window_influence: float
    lr: float
    instance_size: int
    base_size: int
    exemplar_size: int = 127
    context_amount: float = 0.5
    anchor_stride: int = 8
    anchor_ratios: tuple[float, ...] = (0.33, 0.5, 1.0, 2.0, 3.0)
    anchor_scales: tuple[float, ...] = (8.0,)
    lost_instance_size: int = 831
    confidence_low: float = 0.85
    confidence_high: float = 0.998
    # pysot hard-codes this weight for the lost state; it is a field so it can be tuned.
    lost_window_influence: float = 0.001
    presence_weights: tuple[float, ...] = (0.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    # Not pysot's wide search by default: its ~8x step while lost breaks a camera-rate latency
    # bound (README "Long runs"); "wide" reproduces pysot.
    lost_search: str = "tiles"
    # Tiles searched per lost frame, as one batch: more find a returning target sooner, each
    # adds a normal-size crop to the lost frame's pass (README "Parameters and launch arguments").
    lost_tiles_per_frame: int = 4

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            object.__setattr__(self, name, _as_int(name, getattr(self, name)))
        for name in _FLOAT_FIELDS:
            object.__setattr__(self, name, _as_float(name, getattr(self, name)))
        for name in _TUPLE_FIELDS:
            object.__setattr__(self, name, _as_float_tuple(name, getattr(self, name)))
        if len(self.presence_weights) == LEGACY_PRESENCE_WEIGHTS:
            unweighted = (0.0,) * (PRESENCE_WEIGHTS - LEGACY_PRESENCE_WEIGHTS)
            object.__setattr__(self, "presence_weights", self.presence_weights + unweighted)

        problems: list[str] = []
        if self.penalty_k < 0:
            problems.append(f"penalty_k must be >= 0, got {self.penalty_k}")
        for name in ("window_influence", "lost_window_influence", "lr"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {value}")
        if self.exemplar_size < 1:
            problems.append(f"exemplar_size must be >= 1, got {self.exemplar_size}")
        if self.instance_size < self.exemplar_size:
            problems.append(f"instance_size ({self.instance_size}) must be >= exemplar_size ({self.exemplar_size})")
        if self.lost_instance_size < self.instance_size:
            problems.append(
                f"lost_instance_size ({self.lost_instance_size}) must be >= instance_size ({self.instance_size})"
            )
        if self.base_size < 0:
            problems.append(f"base_size must be >= 0, got {self.base_size}")
        if self.context_amount < 0:
            problems.append(f"context_amount must be >= 0, got {self.context_amount}")
        if self.anchor_stride < 1:
            problems.append(f"anchor_stride must be >= 1, got {self.anchor_stride}")
        for name in ("anchor_ratios", "anchor_scales"):
            values = getattr(self, name)
            if not values:
                problems.append(f"{name} must not be empty")
            elif any(v <= 0 for v in values):
                problems.append(f"{name} must all be > 0, got {list(values)}")
        if len(self.presence_weights) != PRESENCE_WEIGHTS or not all(math.isfinite(v) for v in self.presence_weights):
            problems.append(
                f"presence_weights must be {PRESENCE_WEIGHTS} finite numbers (bias, logit_score, peak_ratio, "
                f"spread, colour_similarity, pattern_similarity; or the first {LEGACY_PRESENCE_WEIGHTS}), "
                f"got {list(self.presence_weights)}"
            )
        if self.lost_tiles_per_frame < 1:
            problems.append(f"lost_tiles_per_frame must be >= 1, got {self.lost_tiles_per_frame}")
        if self.lost_search not in LOST_SEARCH_CHOICES:
            problems.append(f"lost_search must be one of {', '.join(LOST_SEARCH_CHOICES)}, got {self.lost_search!r}")
        if not 0.0 <= self.confidence_low <= self.confidence_high <= 1.0:
            problems.append(
                "need 0 <= confidence_low <= confidence_high <= 1, got "
                f"confidence_low={self.confidence_low}, confidence_high={self.confidence_high}"
            )
        if problems:
            raise ValueError("invalid tracker config: " + "; ".join(problems))

    @property
    def anchor_count(self) -> int:
        """Anchors per score-map cell (ratios x scales)."""
        return len(self.anchor_ratios) * len(self.anchor_scales)

    def score_size(self, instance_size: int | None = None) -> int:
        """Side of the score map, in cells, for a search crop of ``instance_size`` pixels.

        ``(instance_size - exemplar_size) // anchor_stride + 1 + base_size`` as pysot computes it;
        ``instance_size`` defaults to this config's ``instance_size``.
        """
        size = self.instance_size if instance_size is None else int(instance_size)
        return (size - self.exemplar_size) // self.anchor_stride + 1 + self.base_size

    def replace(self, **changes: Any) -> TrackerConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


def tracker_field_names() -> tuple[str, ...]:
    """Names of the settable ``TrackerConfig`` fields, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(TrackerConfig))


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"tracker config: {name} must be an integer, got {value!r}")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"tracker config: {name} must be an integer, got {value!r}")


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"tracker config: {name} must be a number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"tracker config: {name} must be finite, got {value!r}")
    return result


def _as_float_tuple(name: str, value: Any) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"tracker config: {name} must be a list of numbers, got {value!r}")
    return tuple(_as_float(name, v) for v in value)


# pysot's experiments/<name>/config.yaml values (FACTS.md table 1).
TRACKER_PRESETS: Mapping[str, TrackerConfig] = MappingProxyType(
    {
        "r50": TrackerConfig(penalty_k=0.05, window_influence=0.42, lr=0.38, instance_size=255, base_size=8),
        "mobilev2": TrackerConfig(penalty_k=0.04, window_influence=0.40, lr=0.50, instance_size=255, base_size=8),
        "alex": TrackerConfig(penalty_k=0.16, window_influence=0.40, lr=0.30, instance_size=287, base_size=0),
    }
)


#: Settings tuned for the bundled default weights on validation data only, never on the reported
#: test sets (README, "Default model"). Other weights of that architecture start from them too.
#: Tracking values: ``siamrpnpp-tune`` on the validation sequences of ``training/default_model.py``
#: (penalty_k 0.1/0.16/0.25 x window_influence 0.3/0.4/0.5 x lr 0.3/0.45) found pysot's AlexNet
#: values best. Presence: ``eval.presence`` on the long-term validation set, fitted on the frames
#: the tracker produces with the raw score as presence (4 tiles per lost frame), then the bias
#: lowered by 0.25 (long-term F-score there 0.707; previous default 0.688; raw score 0.446;
#: the candidates and why this one: README, "Default model"). Mostly colour similarity, of the
#: whole box or its middle (``tracking/appearance.py``).
BUNDLED_MODEL_PRESETS: Mapping[str, TrackerConfig] = MappingProxyType(
    {"alex-w0.25": TRACKER_PRESETS["alex"].replace(presence_weights=(-7.3649, -0.0241, -0.0028, 0.2932, 9.6715, 0.243))}
)


def preset_for(model: str) -> TrackerConfig:
    """The tracker settings for ``model``: pysot's preset ("r50" | "mobilev2" | "alex"); for a
    thinner variant ("alex-w0.5") or a MobileNetV2 layout ("mobilev2-w1-l345-n128") its
    preset's, as it is trained with the same crops and anchors (every layout keeps stride 8,
    so mobilev2's 255 px search, base size 8 and 25x25 score map hold), unless
    ``BUNDLED_MODEL_PRESETS`` has tuned ones for it.
    """
    base, _ = split_model_name(model)
    tuned = BUNDLED_MODEL_PRESETS.get(model_config(model).name)
    return tuned if tuned is not None else TRACKER_PRESETS[base]


def _collect_ros_parameters(node: Mapping[str, Any], found: list[Mapping[str, Any]]) -> None:
    # ROS 2 parameter files nest ``ros__parameters`` under a node name, optionally under
    # namespaces (``/ns: node: ros__parameters:``); wildcards like ``/**`` are plain keys here.
    for value in node.values():
        if isinstance(value, Mapping):
            if "ros__parameters" in value:
                params = value["ros__parameters"]
                if not isinstance(params, Mapping):
                    raise ValueError("'ros__parameters' must be a mapping")
                found.append(params)
            else:
                _collect_ros_parameters(value, found)


def _parameters_from_document(document: Mapping[str, Any]) -> dict[str, Any]:
    found: list[Mapping[str, Any]] = []
    _collect_ros_parameters(document, found)
    if not found:
        return dict(document)
    merged: dict[str, Any] = {}
    # Several node sections may match; later sections override earlier ones like ROS does.
    for params in found:
        merged.update(params)
    return merged


def _tracker_section(params: Mapping[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = {}
    nested = params.get("tracker")
    if nested is not None:
        if not isinstance(nested, Mapping):
            raise ValueError(f"'tracker' must be a mapping of tracker settings, got {nested!r}")
        section.update(nested)
    # ROS 2 also accepts the flattened spelling ``tracker.penalty_k: 0.05``.
    for key, value in params.items():
        if isinstance(key, str) and key.startswith("tracker."):
            section[key[len("tracker.") :]] = value
    return section


def load_tracker_config(
    path_or_mapping: str | os.PathLike[str] | Mapping[str, Any], model: str | None = None
) -> tuple[str, TrackerConfig]:
    """Read ``model`` and the ``tracker`` section of a YAML parameters file (or a mapping).

    ``path_or_mapping`` is a path to a ROS 2 parameters file (``<node>: ros__parameters: {...}``), or a
    mapping with that layout, or a plain mapping ``{model: ..., tracker: {...}}``. Tracker
    fields that are not given fall back to the model's pysot preset; unknown tracker keys are
    an error. Top-level keys other than ``model`` and ``tracker`` are ignored (they belong to
    the ROS node). ``model`` fills in a file without one; if both are given they must agree,
    because a tracker section tuned for one backbone is wrong for another.

    Returns ``(model_name, TrackerConfig)``. Raises ``ValueError`` (or ``FileNotFoundError``)
    with a message naming the problem.
    """
    if isinstance(path_or_mapping, Mapping):
        document: Any = path_or_mapping
        origin = "config mapping"
    else:
        path = Path(path_or_mapping)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        import yaml  # local import: only needed when reading files

        try:
            with path.open("r", encoding="utf-8") as handle:
                document = yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            raise ValueError(f"config file {path} is not valid YAML: {exc}") from None
        origin = f"config file {path}"
        if document is None:
            document = {}
    if not isinstance(document, Mapping):
        raise ValueError(f"{origin}: expected a mapping at the top level, got {type(document).__name__}")

    params = _parameters_from_document(document)
    file_model = params.get("model")
    if file_model is not None and not isinstance(file_model, str):
        raise ValueError(f"{origin}: 'model' must be a string, got {file_model!r}")
    if file_model and model and file_model != model:
        raise ValueError(f"{origin} is for model {file_model!r} but model {model!r} was requested")
    chosen = model or file_model
    if not chosen:
        raise ValueError(f"{origin}: no model given (set 'model' in the file or pass one)")
    preset = preset_for(chosen)

    overrides = _tracker_section(params)
    allowed = set(tracker_field_names())
    unknown = sorted(str(k) for k in overrides if k not in allowed)
    if unknown:
        raise ValueError(
            f"{origin}: unknown tracker key(s) {', '.join(unknown)}; valid keys are {', '.join(sorted(allowed))}"
        )
    try:
        config = preset.replace(**overrides) if overrides else preset
    except ValueError as exc:
        raise ValueError(f"{origin}: {exc}") from None
    return chosen, config
