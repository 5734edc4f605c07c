"""The node's ROS parameters: declarations (with descriptors), validation and runtime changes.

Everything is declared with a description; parameters whose change needs a restart (the
model, the device, the topics' QoS, sizes baked into the network input) are read-only,
and numeric ones carry ranges that ``ros2 param`` and rqt show. Cross-field rules (e.g.
``instance_size >= exemplar_size``) are checked by ``TrackerConfig`` and ``LostPolicy``; a
violation raises ``ValueError`` at start-up and is a rejected ``set_parameters`` at run time.

``tracker.confidence_low`` / ``tracker.confidence_high`` (pysot's long-term thresholds) are
not node parameters: the node derives them from ``lost_score_threshold`` and
``recover_score_threshold`` (see ``tracking.session``). The offline CLI still reads them.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

from siamrpnpp_ros.models.config import THIN_NAME_HELP, is_model_name, model_config
from siamrpnpp_ros.ros.qos import IMAGE_QOS_CHOICES
from siamrpnpp_ros.tracking.config import TrackerConfig, preset_for, tracker_field_names
from siamrpnpp_ros.tracking.factory import DEFAULT_MODEL, build_tracker, select_device
from siamrpnpp_ros.tracking.longterm import BUDGET_AUTO, parse_lost_search_budget
from siamrpnpp_ros.tracking.session import LostPolicy, align_long_term_thresholds

MAX_INT = 2**31 - 1
BACKENDS = ("torch", "onnxruntime")


@dataclass(frozen=True)
class NodeSettings:
    """The validated parameter values the node runs with."""

    model: str
    weights: str
    device: str
    fp16: bool
    backend: str
    fuse_bn: bool
    threads: int
    onnx_cache_dir: str
    long_term: bool
    use_compressed: bool
    image_qos: str
    image_qos_depth: int
    frame_cache_size: int
    frame_cache_max_mb: int
    max_catch_up_frames: int
    max_image_pixels: int
    diagnostics_period: float
    policy: LostPolicy
    tracker: TrackerConfig
    max_targets: int = 1
    # "auto", "off" or milliseconds (tracking.longterm.LostSearchBudget).
    lost_search_budget_ms: float | str = BUDGET_AUTO

    @property
    def weights_path(self) -> str | None:
        """The checkpoint to load; None means the package's bundled default."""
        return self.weights or None


# NodeSettings' fields of a plain type (str, bool, int, float) -> that type.
_PLAIN_FIELDS: dict[str, type] = {
    name: kind for name, kind in typing.get_type_hints(NodeSettings).items() if kind in (str, bool, int, float)
}


@dataclass(frozen=True)
class _Spec:
    name: str
    default: Any
    description: str
    read_only: bool = True
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None
    constraints: str = ""
    # Any type (e.g. "auto" or a number of milliseconds, which the command line types as a number).
    dynamic_typing: bool = False

    def descriptor(self) -> ParameterDescriptor:
        descriptor = ParameterDescriptor(
            name=self.name,
            type=ParameterType.PARAMETER_NOT_SET if self.dynamic_typing else _parameter_type(self.default),
            dynamic_typing=self.dynamic_typing,
            description=self.description,
            read_only=self.read_only,
            additional_constraints=self.constraints,
        )
        if self.float_range is not None:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(self.float_range[0]), to_value=float(self.float_range[1]), step=0.0)
            ]
        if self.int_range is not None:
            descriptor.integer_range = [
                IntegerRange(from_value=int(self.int_range[0]), to_value=int(self.int_range[1]), step=1)
            ]
        return descriptor


# Python type of a default -> ROS parameter type; bool before int (a bool is an int).
_PARAMETER_TYPES: tuple[tuple[type | tuple[type, ...], int], ...] = (
    (bool, ParameterType.PARAMETER_BOOL),
    (int, ParameterType.PARAMETER_INTEGER),
    (float, ParameterType.PARAMETER_DOUBLE),
    (str, ParameterType.PARAMETER_STRING),
    ((list, tuple), ParameterType.PARAMETER_DOUBLE_ARRAY),
)


def _parameter_type(value: Any) -> int:
    for python_type, parameter_type in _PARAMETER_TYPES:
        if isinstance(value, python_type):
            return parameter_type
    raise TypeError(f"no parameter type for {value!r}")


_DEFAULT_POLICY = LostPolicy()

# Declared first: the tracker defaults depend on the model.
MODEL_SPEC = _Spec(
    "model",
    DEFAULT_MODEL,
    "Network of the checkpoint; must match 'weights'. The default runs the bundled model.",
    constraints=THIN_NAME_HELP,
)

NODE_SPECS: tuple[_Spec, ...] = (
    _Spec("weights", "", f"pysot checkpoint (.pth) for 'model'; empty = the bundled weights ({DEFAULT_MODEL} only)."),
    _Spec(
        "device",
        "auto",
        "Inference device: auto (CUDA if available), cpu, cuda or cuda:N.",
        constraints="auto, cpu, cuda or cuda:N",
    ),
    _Spec("fp16", False, "Half-precision network, BatchNorm folded first (CUDA only; refused on the CPU)."),
    _Spec(
        "backend",
        "torch",
        "Network runtime: torch, or onnxruntime (fp32, BN folded; TensorRT/CUDA providers "
        "on CUDA where the onnxruntime build has them).",
        constraints="torch or onnxruntime",
    ),
    _Spec(
        "fuse_bn",
        False,
        "Fold BatchNorm into the convs (torch backend): faster on the CPU, within pysot parity but not bit-exact.",
    ),
    _Spec("threads", 0, "CPU threads for the network; 0 = one per core.", int_range=(0, 256)),
    _Spec(
        "onnx_cache_dir",
        "",
        "backend onnxruntime: folder that keeps the exported graphs and TensorRT engines "
        "between starts (a sub-folder per weights); empty = a temporary folder, rebuilt at every start.",
    ),
    _Spec(
        "max_targets",
        1,
        "Most targets tracked at once, with one batched network pass per image. 1 (default) keeps the "
        "single-target behaviour: a START while a target is tracked is refused and a REPLACE switches "
        "targets. Each further target adds its share of network time to every image (see the README).",
        int_range=(1, 64),
    ),
    _Spec(
        "long_term",
        True,
        "Use pysot's long-term tracker: while the score is low it holds the box and searches a wider "
        "region (lost_score_threshold / recover_score_threshold drive it). false = plain SiamRPN++.",
    ),
    _Spec(
        "lost_search_budget_ms",
        BUDGET_AUTO,
        "Long-term tracker, lost_search tiles: the time a frame with a lost target may take, so the node "
        "keeps up with the camera. auto = the measured image period less a margin for the rest of the "
        "node; a number = that many milliseconds; off = always tracker.lost_tiles_per_frame tiles. "
        "Fewer tiles per frame cover the image over more frames: the one around the last box first, "
        "then those that have become most like the target in colour.",
        read_only=False,
        constraints="auto, off, or a number of milliseconds > 0",
        dynamic_typing=True,
    ),
    _Spec(
        "use_compressed",
        False,
        "Subscribe to sensor_msgs/CompressedImage on 'image/compressed' instead of Image on 'image'.",
    ),
    _Spec(
        "image_qos",
        "sensor_data",
        "Camera subscription QoS: sensor_data (best effort, works with every camera) or reliable.",
        constraints="one of " + ", ".join(IMAGE_QOS_CHOICES),
    ),
    _Spec(
        "image_qos_depth",
        5,
        "History depth of the camera subscription (the node only uses the newest frame).",
        int_range=(1, 100),
    ),
    _Spec(
        "frame_cache_size",
        45,
        "Recent frames kept so a selection can start on the exact image it was drawn on (45 = 1.5 s at 30 fps).",
        int_range=(1, 1000),
    ),
    _Spec(
        "frame_cache_max_mb",
        256,
        "Memory bound of that cache in MiB; the oldest frames go first.",
        int_range=(1, 65536),
    ),
    _Spec(
        "max_catch_up_frames",
        15,
        "After initialising on an older cached frame, track through at most this many of the newer cached "
        "frames (evenly spaced) before joining the live stream; 0 = jump straight to the newest.",
        int_range=(0, 1000),
    ),
    _Spec(
        "max_image_pixels",
        3840 * 2160,
        "Images with more pixels than this (default 4K UHD) are dropped with a warning.",
        read_only=False,
        int_range=(1, MAX_INT),
    ),
    _Spec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", float_range=(0.05, 60.0)),
    _Spec(
        "lost_score_threshold",
        _DEFAULT_POLICY.lost_score_threshold,
        "A frame whose score is below this counts as low; lost_frames low frames in a row make the target LOST.",
        read_only=False,
        float_range=(0.0, 1.0),
    ),
    _Spec(
        "lost_frames",
        _DEFAULT_POLICY.lost_frames,
        "Consecutive low-score frames before the status becomes LOST.",
        read_only=False,
        int_range=(1, 10000),
    ),
    _Spec(
        "recover_score_threshold",
        _DEFAULT_POLICY.recover_score_threshold,
        "While LOST, recover_frames frames at or above this score make the status TRACKING again. "
        "Must be >= lost_score_threshold.",
        read_only=False,
        float_range=(0.0, 1.0),
    ),
    _Spec(
        "recover_frames",
        _DEFAULT_POLICY.recover_frames,
        "Consecutive frames at or above recover_score_threshold needed to leave LOST.",
        read_only=False,
        int_range=(1, 10000),
    ),
)

# Tracker fields that only change numbers in the search, so they may change between frames.
RUNTIME_TRACKER_FIELDS = frozenset({"penalty_k", "window_influence", "lr", "context_amount", "lost_window_influence"})
# Set from the lost/recover thresholds instead (module docstring).
DERIVED_TRACKER_FIELDS = frozenset({"confidence_low", "confidence_high"})

_TRACKER_DESCRIPTIONS = {
    "penalty_k": "Penalty on scale and aspect-ratio changes between frames.",
    "window_influence": "Weight of the cosine window (preference for small motion) against the score.",
    "lr": "Size update rate: how fast the box size follows the network's estimate.",
    "instance_size": "Search crop side in pixels (network input; fixed per model).",
    "base_size": "pysot's BASE_SIZE, added to the score-map size (8 for r50/mobilev2, 0 for alex).",
    "exemplar_size": "Template crop side in pixels (network input).",
    "context_amount": "Context added around the target when cropping, as a fraction of (w + h).",
    "anchor_stride": "Anchor stride in search-crop pixels.",
    "anchor_ratios": "Anchor aspect ratios.",
    "anchor_scales": "Anchor scales.",
    "lost_instance_size": "Long-term tracker: search crop side while the target is lost.",
    "lost_window_influence": "Long-term tracker: cosine-window weight while the target is lost.",
    "lost_search": (
        "Long-term tracker: how a lost target is searched for. tiles: lost_tiles_per_frame normal-size "
        "searches per frame in one batch, over tiles covering the image; wide: pysot's single "
        "lost_instance_size crop per frame (about 8x a normal step on a CPU)."
    ),
    "lost_tiles_per_frame": (
        "Long-term tracker with lost_search tiles: tiles searched per lost frame, in one batched network "
        "pass. More re-acquire a returning target sooner; each adds a normal-size crop to a lost frame's cost."
    ),
    "presence_weights": (
        "Presence model (bias, logit_score, peak_ratio, spread, colour_similarity, pattern_similarity): "
        "the confidence that the box is on the target, which LOST/TRACKING and the wide search follow; "
        "[0, 1, 0, 0, 0, 0] = the raw score (four values: the first four, no appearance terms). "
        "Fit with python -m siamrpnpp_ros.eval.presence on validation data."
    ),
}
_TRACKER_RANGES: dict[str, tuple[float, float]] = {
    "penalty_k": (0.0, 10.0),
    "window_influence": (0.0, 1.0),
    "lr": (0.0, 1.0),
    "context_amount": (0.0, 10.0),
    "lost_window_influence": (0.0, 1.0),
    "instance_size": (1, 4096),
    "base_size": (0, 256),
    "exemplar_size": (1, 1024),
    "anchor_stride": (1, 256),
    "lost_instance_size": (1, 8192),
    "lost_tiles_per_frame": (1, 64),
}


def tracker_specs(model: str) -> tuple[_Spec, ...]:
    """``tracker.*`` parameter specs, defaulting to ``model``'s pysot preset."""
    preset = preset_for(model)
    specs = []
    for field in tracker_field_names():
        if field in DERIVED_TRACKER_FIELDS:
            continue
        default = getattr(preset, field)
        if isinstance(default, tuple):
            default = [float(v) for v in default]
        bounds = _TRACKER_RANGES.get(field)
        specs.append(
            _Spec(
                f"tracker.{field}",
                default,
                _TRACKER_DESCRIPTIONS.get(field, f"Tracker setting {field}."),
                read_only=field not in RUNTIME_TRACKER_FIELDS,
                float_range=bounds if isinstance(default, float) and bounds else None,
                int_range=(int(bounds[0]), int(bounds[1])) if isinstance(default, int) and bounds else None,
            )
        )
    return tuple(specs)


def declare_node_parameters(node: Any, reconfigurable: bool = False) -> NodeSettings:
    """Declare every parameter on ``node`` and return the validated settings.

    Raises ``rclpy.exceptions.ParameterException`` (wrong type, out of range) or ValueError
    (a rule across fields, an unknown model or QoS name) with a message naming the parameter.

    ``reconfigurable`` (the managed node): the parameters that need a restart in the plain node
    are declared writable instead of read-only, since there a cleanup and a configure are the
    restart; the node refuses changes to them while configured (``needs_configure``). ``model``
    stays read-only either way: it chose the defaults of every ``tracker.*`` parameter. A
    parameter declared already (by an earlier configure) is read, not declared again, so a
    configure after a failed or cleaned-up one sees the values set in between.
    """
    model = _declare(node, MODEL_SPEC, writable=False)
    if not is_model_name(model):
        raise ValueError(f"parameter model must be {THIN_NAME_HELP}; got {model!r}")
    values: dict[str, Any] = {"model": model_config(model).name}
    for spec in (*NODE_SPECS, *tracker_specs(model)):
        values[spec.name] = _declare(node, spec, writable=reconfigurable)
    return settings_from_values(values)


def _declare(node: Any, spec: _Spec, writable: bool) -> Any:
    """The value of ``spec``'s parameter on ``node``, declaring it first if it is not yet."""
    if node.has_parameter(spec.name):
        value = node.get_parameter(spec.name).value
    else:
        descriptor = spec.descriptor()
        if writable:
            descriptor.read_only = False
        value = node.declare_parameter(spec.name, spec.default, descriptor).value
    if isinstance(value, (list, tuple)) or type(value).__name__ == "array":
        value = [float(v) for v in value]
    return value


def needs_configure(name: str) -> bool:
    """True for a parameter that takes effect only when the model is loaded again (read-only in
    the plain node; in the managed node, changeable only while unconfigured).
    """
    if name == MODEL_SPEC.name:
        return True
    if name.startswith("tracker."):
        field = name[len("tracker.") :]
        return field not in RUNTIME_TRACKER_FIELDS and field not in DERIVED_TRACKER_FIELDS
    return any(spec.name == name and spec.read_only for spec in NODE_SPECS)


def settings_from_values(values: dict[str, Any]) -> NodeSettings:
    """Build and validate ``NodeSettings`` from a ``{parameter name: value}`` mapping."""
    if values["image_qos"] not in IMAGE_QOS_CHOICES:
        raise ValueError(
            f"parameter image_qos must be one of {', '.join(IMAGE_QOS_CHOICES)}, got {values['image_qos']!r}"
        )
    if values["backend"] not in BACKENDS:
        raise ValueError(f"parameter backend must be one of {', '.join(BACKENDS)}, got {values['backend']!r}")
    if values["fp16"] and values["backend"] != "torch":
        raise ValueError(
            f"parameter fp16 applies to backend torch only; set fp16:=false for backend {values['backend']}"
        )
    device = str(values["device"]).strip().lower()
    if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ValueError(f"parameter device must be auto, cpu, cuda or cuda:N, got {values['device']!r}")
    try:
        policy = LostPolicy(
            lost_score_threshold=float(values["lost_score_threshold"]),
            lost_frames=int(values["lost_frames"]),
            recover_score_threshold=float(values["recover_score_threshold"]),
            recover_frames=int(values["recover_frames"]),
        )
    except ValueError as error:
        raise ValueError(f"invalid lost/recover parameters: {error}") from None
    try:
        budget = parse_lost_search_budget(values["lost_search_budget_ms"], "lost_search_budget_ms")
    except ValueError as error:
        raise ValueError(f"parameter {error}") from None
    tracker_values = {name[len("tracker.") :]: value for name, value in values.items() if name.startswith("tracker.")}
    try:
        tracker = preset_for(values["model"]).replace(**tracker_values)
    except (ValueError, TypeError) as error:
        raise ValueError(f"invalid tracker.* parameters: {error}") from None
    # Every plain field converted to its type (the model, QoS and backend names are validated
    # strings already), the device as normalised above.
    plain: dict[str, Any] = {name: kind(values[name]) for name, kind in _PLAIN_FIELDS.items()}
    plain["device"] = device
    return NodeSettings(**plain, policy=policy, tracker=tracker, lost_search_budget_ms=budget)


def settings_values(settings: NodeSettings) -> dict[str, Any]:
    """The inverse of ``settings_from_values``: ``{parameter name: value}``."""
    values = {
        field.name: getattr(settings, field.name)
        for field in dataclasses.fields(settings)
        if field.name not in ("policy", "tracker")
    }
    values.update(dataclasses.asdict(settings.policy))
    for field in tracker_field_names():
        if field not in DERIVED_TRACKER_FIELDS:
            values[f"tracker.{field}"] = getattr(settings.tracker, field)
    return values


def apply_changes(settings: NodeSettings, changes: Iterable[Any]) -> NodeSettings:
    """Settings with ``changes`` (rclpy ``Parameter`` objects) applied; ValueError with a reason if invalid.

    Read-only parameters and ranges are enforced by rclpy from the descriptors before this
    runs; this checks the rules across fields.
    """
    values = settings_values(settings)
    for parameter in changes:
        if parameter.name not in values:
            continue
        value = parameter.value
        if isinstance(value, (list, tuple)) or type(value).__name__ == "array":
            value = [float(v) for v in value]
        values[parameter.name] = value
    return settings_from_values(values)


def build_tracker_for(settings: NodeSettings) -> Any:
    """The tracker the node runs for ``settings`` (long-term thresholds aligned with the
    lost/recover policy), built by ``tracking.factory.build_tracker``.
    """
    config = align_long_term_thresholds(settings.tracker, settings.policy) if settings.long_term else settings.tracker
    return build_tracker(
        settings.model,
        settings.weights_path,
        device=select_device(settings.device),
        fp16=settings.fp16,
        config=config,
        long_term=settings.long_term,
        backend=settings.backend,
        fuse_bn=settings.fuse_bn,
        threads=settings.threads or None,
        onnx_cache_dir=settings.onnx_cache_dir or None,
    )
