"""SiamRPN++ short-term tracker reproducing pysot's ``SiamRPNTracker`` step for step.

Box conventions used throughout:

* Boxes passed in and returned are top-left ``(x, y, w, h)`` in frame pixels (floats), 0-based.
* The internal state is a centre ``(cx, cy)`` and size ``(w, h)`` in frame pixels.
* pysot converts the *init* box to a centre with ``x + (w - 1) / 2`` but returns tracked boxes
  as ``cx - w / 2``; both are reproduced as is, so a box round-trips with a half-pixel shift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import appearance
from .anchors import cosine_window, generate_anchors
from .config import TrackerConfig
from .crop import channel_average, padding_color, square_crop_tensor
from .presence import PresenceFeatures, presence_features, presence_from_features

if TYPE_CHECKING:
    from siamrpnpp_ros.models import SiamRPN

# pysot's clip keeps tracked boxes at least this many pixels wide and high.
MIN_TRACKED_SIDE = 10


@dataclass(frozen=True)
class TrackResult:
    """Outcome of one ``track()`` call.

    ``box``: top-left ``(x, y, w, h)`` in frame pixels (``x = cx - w/2``), may extend past the frame.
    ``score``: raw foreground probability (0..1) of the chosen anchor, before penalties and window.
    ``center``: ``(cx, cy)`` of ``box`` in frame pixels.
    ``search_wide``: this frame was searched with the long-term tracker's widened crop.
    ``lost``: after this frame the (long-term) tracker treats the target as lost, i.e. it held
    its state and the next search is wide; always False for the short-term tracker.
    ``presence``: confidence in [0, 1] that ``box`` is on the target (``tracking/presence.py``);
    equal to ``score`` unless the config carries calibrated presence weights.
    ``features``: the score-map measurements presence was computed from.
    """

    box: tuple[float, float, float, float]
    score: float
    center: tuple[float, float]
    presence: float
    search_wide: bool = False
    lost: bool = False
    features: PresenceFeatures | None = None


@dataclass(frozen=True)
class _Candidate:
    """Best proposal of one search, before the state update (frame pixels, float64)."""

    offset_x: float  # displacement of the target centre from the current centre
    offset_y: float
    width: float
    height: float
    lr: float  # size update rate: penalty * score * config.lr
    score: float
    presence: float
    features: PresenceFeatures


@dataclass(frozen=True)
class SearchRequest:
    """One target's search on one frame, made by ``prepare_search`` before the network runs.

    ``frame``: the validated HxWx3 uint8 BGR frame. ``crop``: the (N, 3, I, I) search input on
    the tracker's device (0..255 BGR), ``instance_size`` its side I in pixels; N is 1 except
    for the long-term tracker's lost-target tiles. ``centers``: each crop's centre ``(cx, cy)``
    in frame pixels (the state's centre except for tiles). ``window_influence``: weight of the
    cosine window for this search. ``search_wide``: a search for a lost target (the long-term
    tracker's wide crop or its tiles). The network's outputs for ``crop`` go back to the same
    tracker's ``finish_search``, which is how several targets share one batched network pass.
    """

    frame: np.ndarray
    crop: torch.Tensor
    instance_size: int
    window_influence: float
    search_wide: bool
    centers: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.centers or len(self.centers) != self.crop.shape[0]:
            raise ValueError(f"{len(self.centers)} crop centres for {self.crop.shape[0]} search crops")

    @property
    def crop_count(self) -> int:
        """How many crops the search has (the network's batch for it)."""
        return len(self.centers)

    def single_crops(self) -> tuple[SearchRequest, ...]:
        """This search as one request per crop, in order (views of ``crop``, no copies)."""
        if self.crop_count == 1:
            return (self,)
        return tuple(
            SearchRequest(
                self.frame,
                self.crop[i : i + 1],
                self.instance_size,
                self.window_influence,
                self.search_wide,
                (center,),
            )
            for i, center in enumerate(self.centers)
        )


def validate_frame(frame: object) -> np.ndarray:
    """Check that ``frame`` is an HxWx3 uint8 (BGR) image and return it; ValueError otherwise."""
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be an HxWx3 uint8 numpy array, got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"frame must be an HxWx3 uint8 BGR image, got array of shape {tuple(frame.shape)} dtype {frame.dtype}"
        )
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"frame must not be empty, got shape {tuple(frame.shape)}")
    return frame


def validate_init_box(box: Sequence[float], frame_width: int, frame_height: int) -> tuple[float, float, float, float]:
    """Check a top-left ``(x, y, w, h)`` pixel box for initialisation; return it as floats.

    The box must be finite, have positive width and height and overlap the
    ``frame_width`` x ``frame_height`` image; partly outside is allowed (pysot pads), wholly
    outside is not. Raises ValueError saying which rule failed.
    """
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError):
        raise ValueError(f"init box must be 4 numbers x, y, w, h, got {box!r}") from None
    if len(values) != 4:
        raise ValueError(f"init box must be 4 numbers x, y, w, h, got {len(values)}: {box!r}")
    x, y, w, h = values
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"init box must be finite, got {values}")
    if w <= 0 or h <= 0:
        raise ValueError(f"init box must have positive width and height, got w={w:g}, h={h:g}")
    if x >= frame_width or y >= frame_height or x + w <= 0 or y + h <= 0:
        raise ValueError(
            f"init box (x={x:g}, y={y:g}, w={w:g}, h={h:g}) lies wholly outside the {frame_width}x{frame_height} image"
        )
    return x, y, w, h


class SiamRPNTracker:
    """Single-target SiamRPN++ tracker (pysot's ``SiamRPNTracker``, numerically the same).

    ``model`` is a ``siamrpnpp_ros.models.SiamRPN`` (``template(z) -> kernels``,
    ``model(x, kernels) -> (cls, loc)``) or anything with that contract (``FusedSiamRPN``,
    ``backends.OnnxRuntimeModel``); an ``nn.Module`` is moved to ``device``, put in eval mode and,
    with ``fp16``, converted to half precision in place. fp16 needs a CUDA device: half-precision
    convolutions on CPU are slow or missing, so it is refused there. Give fp16 a network with
    BatchNorm folded (``build_tracker(fp16=True)`` does; see its body). Head outputs are always
    decoded in float32/float64 NumPy like pysot.
    """

    def __init__(
        self,
        model: SiamRPN | torch.nn.Module | Any,
        config: TrackerConfig,
        device: torch.device | str = "cpu",
        fp16: bool = False,
    ) -> None:
        self.device = torch.device(device)
        if fp16 and self.device.type != "cuda":
            raise ValueError(f"fp16 needs a CUDA device, got device {self.device}")
        self.config = config
        self.fp16 = bool(fp16)
        self.input_dtype = torch.float16 if self.fp16 else torch.float32
        if isinstance(model, torch.nn.Module):
            model = model.to(self.device)
            if self.fp16:
                model = model.half()
            model = model.eval()
        else:
            # A non-PyTorch back-end (e.g. backends.OnnxRuntimeModel) says where it wants its
            # inputs; crops are made there and it manages its own precision.
            if self.fp16:
                raise ValueError(f"fp16 applies to PyTorch models only, not {type(model).__name__}")
            self.device = torch.device(getattr(model, "device", "cpu"))
        # A SiamRPN, a FusedSiamRPN or a non-PyTorch back-end: used through ``template`` and a call.
        self.model: Any = model
        self._anchor_cache: dict[int, np.ndarray] = {}
        self._window_cache: dict[int, np.ndarray] = {}
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget the target; ``track`` needs a new ``init`` afterwards."""
        self._template_kernels: tuple[torch.Tensor, ...] | None = None
        self._center: tuple[float, float] = (0.0, 0.0)
        self._size: tuple[float, float] = (0.0, 0.0)
        self._pad_color: np.ndarray | None = None
        self._appearance: appearance.AppearanceDescriptor | None = None

    @property
    def is_initialized(self) -> bool:
        """True once ``init`` has run (and ``reset`` has not been called since)."""
        return self._template_kernels is not None

    @property
    def template_kernels(self) -> tuple[torch.Tensor, ...] | None:
        """The target's cached RPN kernels (``model.template`` of the init crop), None before ``init``."""
        return self._template_kernels

    @property
    def center(self) -> tuple[float, float]:
        """Current target centre ``(cx, cy)`` in frame pixels (the tracker state)."""
        return self._center

    @property
    def size(self) -> tuple[float, float]:
        """Current target size ``(w, h)`` in frame pixels (the tracker state)."""
        return self._size

    def set_state(self, center: Sequence[float], size: Sequence[float]) -> None:
        """Move the target's state to ``center`` ``(cx, cy)`` and ``size`` ``(w, h)``, frame pixels,
        keeping the template: the next ``track`` searches around it.

        For replaying a reference run step by step (the parity tests start every frame from
        pysot's state, so one step's error cannot carry into the next) and for benchmarks that
        must search the same places whatever the network answers. Needs ``init`` first.
        """
        if not self.is_initialized:
            raise RuntimeError("set_state() called before init(); initialise the tracker with a box first")
        cx, cy = (float(v) for v in center)
        width, height = (float(v) for v in size)
        if not all(math.isfinite(v) for v in (cx, cy, width, height)) or width <= 0 or height <= 0:
            raise ValueError(f"state centre ({cx:g}, {cy:g}) size ({width:g}, {height:g}) must be finite, sizes > 0")
        self._center = (cx, cy)
        self._size = (width, height)

    # ------------------------------------------------------------- init/track
    def init(self, frame: np.ndarray, box: Sequence[float]) -> None:
        """Start tracking the target in ``box`` on ``frame``.

        ``frame``: HxWx3 uint8 BGR. ``box``: top-left ``(x, y, w, h)`` in pixels, 0-based, the
        box covering pixels x .. x+w-1 (pysot's convention: centre = ``x + (w - 1) / 2``).
        The mean colour of this frame pads every later crop, as in pysot.
        """
        template_crop, center, size, pad_color = self._prepare_template(frame, box)
        with torch.inference_mode():
            kernels = self.model.template(template_crop)
        self._template_kernels = tuple(kernels) if isinstance(kernels, (list, tuple)) else (kernels,)
        self._center = center
        self._size = size
        # pysot pads every later crop with the first frame's mean colour, not the current one's.
        self._pad_color = pad_color
        # What the selection looked like: presence compares every proposal's box with it.
        self._appearance = appearance.describe(frame, box)

    def template_crop(self, frame: np.ndarray, box: Sequence[float]) -> torch.Tensor:
        """The exemplar input for ``box`` on ``frame``, as ``init`` computes it (state unchanged).

        ``frame``: HxWx3 uint8 BGR; ``box``: top-left ``(x, y, w, h)`` pixels (centre
        ``x + (w - 1) / 2``). Returns a (1, 3, E, E) tensor on the tracker's device, 0..255 BGR.
        Raises ValueError for a bad frame or box.
        """
        return self._prepare_template(frame, box)[0]

    def _prepare_template(
        self, frame: np.ndarray, box: Sequence[float]
    ) -> tuple[torch.Tensor, tuple[float, float], tuple[float, float], np.ndarray]:
        """(template crop, centre, size, padding colour) for an init box; validates both inputs."""
        frame = validate_frame(frame)
        height, width = frame.shape[:2]
        x, y, w, h = validate_init_box(box, width, height)
        center = (x + (w - 1) / 2, y + (h - 1) / 2)
        context = self.config.context_amount * (w + h)
        # pysot rounds the template side with Python's round (ties to even) at init only.
        template_side = round(math.sqrt((w + context) * (h + context)))
        if template_side < 1:
            raise ValueError(f"init box w={w:g}, h={h:g} is too small: its template crop is under one pixel")
        pad_color = padding_color(channel_average(frame))
        crop = square_crop_tensor(
            frame, center, template_side, self.config.exemplar_size, pad_color, self.device, self.input_dtype
        )
        return crop, center, (w, h), pad_color

    def search_crop(
        self, frame: np.ndarray, instance_size: int | None = None, center: tuple[float, float] | None = None
    ) -> torch.Tensor:
        """The search input around the current state on ``frame`` (state unchanged).

        ``instance_size`` (pixels, default ``config.instance_size``) is the output side; the crop
        covers ``instance_size / exemplar_size`` times the context-padded target in frame pixels,
        centred on ``center`` (frame pixels, default the state's centre).
        Returns a (1, 3, I, I) tensor on the tracker's device, 0..255 BGR.
        """
        frame = self._check_tracking_frame(frame)
        size = self.config.instance_size if instance_size is None else int(instance_size)
        _, search_side = self._search_geometry(size)
        assert self._pad_color is not None
        return square_crop_tensor(
            frame,
            self._center if center is None else center,
            round(search_side),
            size,
            self._pad_color,
            self.device,
            self.input_dtype,
        )

    def _search_geometry(self, instance_size: int) -> tuple[float, float]:
        """(scale in crop pixels per frame pixel, search window side in frame pixels)."""
        cfg = self.config
        w, h = self._size
        context = cfg.context_amount * (w + h)
        template_side = math.sqrt((w + context) * (h + context))  # not rounded here, unlike init
        return cfg.exemplar_size / template_side, template_side * (instance_size / cfg.exemplar_size)

    def track(self, frame: np.ndarray) -> TrackResult:
        """Locate the target in ``frame`` (HxWx3 uint8 BGR) and update the state.

        Returns the box as top-left ``(x, y, w, h)`` pixels, centre ``cx - w/2`` convention.
        The same as ``finish_search(request, *network(request.crop))`` for
        ``request = prepare_search(frame)``, which is how a multi-target tracker batches it.
        """
        request = self.prepare_search(frame)
        cls, loc = self._run_model(request.crop)
        return self.finish_search(request, cls, loc)

    def prepare_search(self, frame: np.ndarray) -> SearchRequest:
        """The next search on ``frame`` (HxWx3 uint8 BGR): its crop around the current state and
        its settings. The state is unchanged until ``finish_search``.
        """
        frame = self._check_tracking_frame(frame)
        instance_size, window_influence, search_wide = self._search_settings()
        centers = self._search_centers(frame)
        crops = [self.search_crop(frame, instance_size, center) for center in centers]
        crop = crops[0] if len(crops) == 1 else torch.cat(crops, dim=0)
        return SearchRequest(frame, crop, instance_size, window_influence, search_wide, centers)

    def finish_search(self, request: SearchRequest, cls: torch.Tensor, loc: torch.Tensor) -> TrackResult:
        """Decode the network's raw ``cls (1, 2A, S, S)`` / ``loc (1, 4A, S, S)`` outputs (float32,
        CPU) for ``request.crop`` and update the state; returns what ``track`` returns.
        """
        return self._update(request, self._decode(cls, loc, request))

    def _search_settings(self) -> tuple[int, float, bool]:
        """(search crop side in pixels, window influence, wide search) of the next search."""
        return self.config.instance_size, self.config.window_influence, False

    def _search_centers(self, frame: np.ndarray) -> tuple[tuple[float, float], ...]:
        """Centres ``(cx, cy)`` in frame pixels of the next search's crops on ``frame``: the state's."""
        return (self._center,)

    def _update(self, request: SearchRequest, candidate: _Candidate) -> TrackResult:
        """The short-term update of pysot from the best proposal; returns the clipped box."""
        frame = request.frame
        lr = candidate.lr
        cx = self._center[0] + candidate.offset_x
        cy = self._center[1] + candidate.offset_y
        # The centre jumps to the proposal; only the size is smoothed (pysot's update).
        width = self._size[0] * (1 - lr) + candidate.width * lr
        height = self._size[1] * (1 - lr) + candidate.height * lr
        cx, cy, width, height = clip_state(cx, cy, width, height, frame.shape[1], frame.shape[0])
        self._center = (cx, cy)
        self._size = (width, height)
        return TrackResult(
            box=(cx - width / 2, cy - height / 2, width, height),
            score=candidate.score,
            center=(cx, cy),
            presence=candidate.presence,
            features=candidate.features,
        )

    # ---------------------------------------------------------------- helpers
    def _check_tracking_frame(self, frame: np.ndarray) -> np.ndarray:
        if not self.is_initialized:
            raise RuntimeError("track() called before init(); initialise the tracker with a box first")
        return validate_frame(frame)

    def anchors(self, score_size: int) -> np.ndarray:
        """Anchors (cx, cy, w, h) for a score map of side ``score_size``, cached (see anchors.py)."""
        anchors = self._anchor_cache.get(score_size)
        if anchors is None:
            cfg = self.config
            anchors = generate_anchors(score_size, cfg.anchor_stride, cfg.anchor_ratios, cfg.anchor_scales)
            anchors.setflags(write=False)
            self._anchor_cache[score_size] = anchors
        return anchors

    def window(self, score_size: int) -> np.ndarray:
        """Cosine window for a score map of side ``score_size``, cached (see anchors.py)."""
        window = self._window_cache.get(score_size)
        if window is None:
            window = cosine_window(score_size, self.config.anchor_count)
            window.setflags(write=False)
            self._window_cache[score_size] = window
        return window

    def _run_model(
        self, search_crop: torch.Tensor, kernels: Sequence[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network on ``search_crop`` (B, 3, I, I) with ``kernels`` (batch B or 1; default: this
        target's) -> raw ``cls``, ``loc`` as float32 CPU tensors.
        """
        if kernels is None:
            assert self._template_kernels is not None
            kernels = self._template_kernels
        batch = search_crop.shape[0]
        if batch > 1:
            # One target's kernels for several crops (lost-target tiles): every back-end gets a
            # kernel per crop (ONNX graphs have a fixed batch; PyTorch would broadcast).
            kernels = tuple(k if k.shape[0] == batch else k.expand(batch, *k.shape[1:]) for k in kernels)
        with torch.inference_mode():
            cls, loc = self.model(search_crop, tuple(kernels))
        # Decoding happens on the CPU in float32 whatever the network ran in.
        return cls.detach().to("cpu", torch.float32), loc.detach().to("cpu", torch.float32)

    def _decode(self, cls: torch.Tensor, loc: torch.Tensor, request: SearchRequest) -> _Candidate:
        """Pick the best anchor from the head outputs of ``request``'s search crop (offsets from
        the current centre and sizes in frame pixels) and judge its presence.

        Dtypes follow what pysot computes under NumPy 2: anchors and decoded boxes in float32,
        penalties, window blend and the chosen box in float64. Spelling the casts out keeps the
        result identical under NumPy 1.x's different promotion rules.
        """
        cfg = self.config
        instance_size = request.instance_size
        window_influence = request.window_influence
        w, h = self._size
        scale, _ = self._search_geometry(instance_size)

        score_size = cfg.score_size(instance_size)
        anchor_count = cfg.anchor_count
        expected_cls = (1, 2 * anchor_count, score_size, score_size)
        expected_loc = (1, 4 * anchor_count, score_size, score_size)
        if tuple(cls.shape) != expected_cls or tuple(loc.shape) != expected_loc:
            raise RuntimeError(
                f"model outputs cls {tuple(cls.shape)} / loc {tuple(loc.shape)} for a {instance_size}px search "
                f"crop, but the tracker config expects {expected_cls} / {expected_loc}; "
                "the tracker config does not fit this model"
            )

        # Row a of the first half is background of anchor a, row a of the second half foreground.
        score_map = torch.softmax(cls.reshape(2, -1).t(), dim=1)[:, 1].numpy()
        deltas = loc.reshape(4, -1).numpy()
        anchors = self.anchors(score_size)
        anchor_w = anchors[:, 2]
        anchor_h = anchors[:, 3]
        pred_w = np.exp(deltas[2]) * anchor_w
        pred_h = np.exp(deltas[3]) * anchor_h

        pred_extent = _padded_extent(pred_w, pred_h).astype(np.float64)
        target_extent = _padded_extent_scalar(w * scale, h * scale)
        scale_change = _symmetric_ratio(pred_extent / target_extent)
        aspect_change = _symmetric_ratio((w / h) / (pred_w / pred_h).astype(np.float64))
        penalty = np.exp(-(aspect_change * scale_change - 1) * cfg.penalty_k)
        penalized_score = penalty * score_map.astype(np.float64)
        penalized_score = penalized_score * (1 - window_influence) + self.window(score_size) * window_influence
        best = int(np.argmax(penalized_score))

        # Only the chosen anchor's centre needs decoding.
        pred_cx = deltas[0, best] * anchor_w[best] + anchors[best, 0]
        pred_cy = deltas[1, best] * anchor_h[best] + anchors[best, 1]
        best_score = np.float64(score_map[best])
        offset_x = float(np.float64(pred_cx) / scale)
        offset_y = float(np.float64(pred_cy) / scale)
        width = float(np.float64(pred_w[best]) / scale)
        height = float(np.float64(pred_h[best]) / scale)
        search_cx, search_cy = request.centers[0]
        proposal = (search_cx + offset_x - width / 2, search_cy + offset_y - height / 2, width, height)
        looks = appearance.similarity(self._appearance, appearance.describe(request.frame, proposal))
        features = presence_features(score_map, anchor_count, best, looks)
        return _Candidate(
            offset_x=offset_x,
            offset_y=offset_y,
            width=width,
            height=height,
            lr=float(penalty[best] * best_score * cfg.lr),
            score=float(best_score),
            presence=presence_from_features(features, float(best_score), cfg.presence_weights),
            features=features,
        )


def _padded_extent(width: np.ndarray, height: np.ndarray) -> np.ndarray:
    # sqrt((w + p)(h + p)), p = (w + h)/2: the context-padded side pysot compares sizes with.
    pad = (width + height) * 0.5
    extent: np.ndarray = np.sqrt((width + pad) * (height + pad))
    return extent


def _padded_extent_scalar(width: float, height: float) -> float:
    pad = (width + height) * 0.5
    return math.sqrt((width + pad) * (height + pad))


def _symmetric_ratio(ratio: np.ndarray) -> np.ndarray:
    # max(r, 1/r): a change by a factor k costs the same as a change by 1/k.
    symmetric: np.ndarray = np.maximum(ratio, 1.0 / ratio)
    return symmetric


def clip_state(
    cx: float, cy: float, width: float, height: float, frame_width: int, frame_height: int
) -> tuple[float, float, float, float]:
    """The clip of a centre/size state as pysot does it, all in frame pixels.

    Centre to ``[0, W]`` x ``[0, H]`` (W, H = frame size, not W-1), size to ``[10, W]`` x ``[10, H]``.
    """
    cx = max(0.0, min(cx, float(frame_width)))
    cy = max(0.0, min(cy, float(frame_height)))
    width = max(float(MIN_TRACKED_SIDE), min(width, float(frame_width)))
    height = max(float(MIN_TRACKED_SIDE), min(height, float(frame_height)))
    return cx, cy, width, height
