"""Long-term sequences: the target disappears for 1-3 s and comes back, with exact ground truth.

Built like the short-term ``object`` sequences of :mod:`.builder` (a crop of one photo,
rectangle or ellipse, moves over another photo), but each sequence holds one or two
*absences*, each of one kind:

``exit``
    The target walks out of the frame, stays out, and walks back in, through the same
    or another edge (so possibly somewhere else).
``occluder``
    A large opaque crop of a third photo stands in the scene; the target goes behind it,
    stays fully covered, and comes out again.
``pan``
    The camera pans away (the target leaves the view with the scene), holds, and pans
    back; the target has moved on meanwhile.

With ``lookalike_prob`` an absence also brings a *look-alike*: a recoloured copy of the
target (as the short-term ``distractors`` attribute makes) that is in view while the
target is away (it walks in and out through the frame edges; after a pan it stands in
the part of the scene the camera pans to). Milder short-term challenges (``scale``,
``rotation``, ``motion_blur``, ``illumination``) may be enabled per sequence.

Frame rate and durations: the sequences stand for video at ``fps`` frames per second
(default 30): an absence lasts ``absence_seconds`` (default 1-3 s, i.e. 30-90 frames at
30 fps), and a sequence (default 300 frames = 10 s) holds 1 or 2 absences with at least
1.5 s of tracking before the first, 1.5 s between two and 1 s after the last.

Absent frames and ground truth: the *visible fraction* of the target in a frame is the
part of its full area (anti-aliased coverage mask, motion blur excluded) that lies inside
the frame and is not behind the occluder. A frame with a visible fraction below
``visibility_threshold`` (default 0.1: less than 10 % of the target visible) is *absent*:
its ``groundtruth.txt`` line is ``nan,nan,nan,nan`` (as VOT-LT and LaSOT write it). Every
other frame is present, partly visible ones included, with the box of the target's full
geometric extent clipped to the frame, in the convention of :mod:`.builder`. Absences are
measured on the rendered geometry, not taken from the plan: ``benchmark.json`` lists each
maximal run of absent frames with its ``start`` and ``end`` (0-based frame numbers, both
absent, inclusive), its ``kind`` and whether a look-alike was shown, and each sequence
folder holds ``visibility.txt`` (the visible fraction per frame, 3 decimals). A plan whose
measured absences do not match it (an absence out of the 1-3 s range, the target fully
hidden by the occluder at an unplanned moment, or not fully visible in frame 0) is drawn
again from the next random stream, so every written absence is one of the planned ones.

Reproducible: sequence ``index`` is drawn from ``numpy.random.default_rng([seed, index,
attempt])`` (``attempt`` 0, 1, ... as above); the same seed gives the same frames, ground
truth and manifest.

CLI (held-out photos: the default pool, Debian's opencv-doc, else scikit-image's)::

    python -m siamrpnpp_ros.eval.builder --long-term --out data/lt_test --sequences 20 --seed 0
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from siamrpnpp_ros.material import compositor
from siamrpnpp_ros.material.photos import PHOTO_SPLITS, PhotoPool, pool_for

LONG_TERM_VERSION = 1
ABSENCE_KINDS = ("exit", "occluder", "pan")
LONG_TERM_ATTRIBUTES = ("scale", "rotation", "motion_blur", "illumination")
#: Seconds of tracking before the first absence, between two, and after the last (minimum).
LEAD_SECONDS, GAP_SECONDS, TAIL_SECONDS = 1.5, 1.5, 1.0
#: Seconds the target (or the camera) takes to leave and to come back.
RAMP_SECONDS = (0.4, 0.8)
MAX_ATTEMPTS = 60
INIT_VISIBILITY = 0.95  # the target must be (almost) wholly visible in frame 0


@dataclass(frozen=True)
class LongTermConfig:
    """What to generate (see the module docstring). Sizes in pixels.

    Attributes:
        sequences, frames: how many sequences, frames per sequence.
        fps: the frame rate the durations refer to.
        width, height, seed, target_size, noise_sigma, image_format, jpeg_quality,
        photo_split, name_prefix: as in :class:`.builder.BuilderConfig`.
        absence_kinds: kinds to draw each absence from (``exit``, ``occluder``, ``pan``).
        absences: (min, max) absences per sequence (fewer when the frames cannot hold them).
        absence_seconds: (min, max) duration of one absence, seconds.
        lookalike_prob: chance that an absence brings a look-alike into view.
        visibility_threshold: a frame is absent when less than this fraction of the target
            is visible.
        attributes: short-term challenges that may be enabled, each with ``attribute_prob``.
    """

    sequences: int = 20
    frames: int = 300
    fps: float = 30.0
    width: int = 480
    height: int = 360
    seed: int = 0
    absence_kinds: tuple[str, ...] = ABSENCE_KINDS
    absences: tuple[int, int] = (1, 2)
    absence_seconds: tuple[float, float] = (1.0, 3.0)
    lookalike_prob: float = 0.5
    visibility_threshold: float = 0.1
    attributes: tuple[str, ...] = LONG_TERM_ATTRIBUTES
    attribute_prob: float = 0.5
    target_size: tuple[float, float] = (0.12, 0.24)
    noise_sigma: float = 2.0
    image_format: str = "jpg"
    jpeg_quality: int = 92
    photo_split: str = "all"
    name_prefix: str = "lt"

    def __post_init__(self) -> None:
        object.__setattr__(self, "absence_kinds", tuple(self.absence_kinds))
        object.__setattr__(self, "attributes", tuple(self.attributes))
        object.__setattr__(self, "absences", tuple(int(v) for v in self.absences))
        object.__setattr__(self, "absence_seconds", tuple(float(v) for v in self.absence_seconds))
        object.__setattr__(self, "target_size", tuple(float(v) for v in self.target_size))
        problems = []
        if self.sequences < 1:
            problems.append("need sequences >= 1")
        if self.width < 64 or self.height < 64:
            problems.append("frames must be at least 64x64")
        if not self.fps > 0:
            problems.append("fps must be positive")
        unknown = [k for k in self.absence_kinds if k not in ABSENCE_KINDS]
        unknown += [a for a in self.attributes if a not in LONG_TERM_ATTRIBUTES]
        if unknown or not self.absence_kinds:
            problems.append(
                f"unknown or empty absence kinds/attributes {unknown}; kinds: {ABSENCE_KINDS}, "
                f"attributes: {LONG_TERM_ATTRIBUTES}"
            )
        low, high = self.absences
        if not 1 <= low <= high:
            problems.append(f"absences must satisfy 1 <= min <= max, got {self.absences}")
        shortest, longest = self.absence_seconds
        if not 0 < shortest <= longest:
            problems.append(f"absence_seconds must satisfy 0 < min <= max, got {self.absence_seconds}")
        elif round(longest * self.fps) - round(shortest * self.fps) < round(0.5 * self.fps):
            problems.append("absence_seconds must span at least 0.5 s (room for the leaving and returning frames)")
        if not 0 < self.visibility_threshold < 1:
            problems.append("visibility_threshold must be in (0, 1)")
        if not 0 <= self.lookalike_prob <= 1 or not 0 <= self.attribute_prob <= 1:
            problems.append("lookalike_prob and attribute_prob must be in [0, 1]")
        size_low, size_high = self.target_size
        if not 0.02 <= size_low <= size_high <= 0.35:
            problems.append(f"target_size must satisfy 0.02 <= min <= max <= 0.35, got {self.target_size}")
        problems += compositor.output_problems(self.image_format, self.photo_split, PHOTO_SPLITS)
        if not problems and self.frames < self.min_frames:
            problems.append(
                f"{self.frames} frames cannot hold one absence at {self.fps:g} fps; need >= {self.min_frames}"
            )
        if problems:
            raise ValueError("invalid long-term benchmark config: " + "; ".join(problems))

    def seconds_to_frames(self, seconds: float) -> int:
        """``seconds`` at the config's ``fps``, rounded to whole frames."""
        return round(seconds * self.fps)

    @property
    def min_frames(self) -> int:
        """Frames needed for one absence of the shortest duration with its ramps and margins."""
        return self.seconds_to_frames(LEAD_SECONDS + TAIL_SECONDS + self.absence_seconds[0] + 2 * RAMP_SECONDS[1]) + 2


@dataclass
class Absence:
    """One run of absent frames: ``start`` .. ``end`` inclusive (0-based), ``frames`` long."""

    start: int
    end: int
    frames: int
    kind: str
    lookalike: bool


@dataclass
class LongTermSequencePlan:
    """Per-sequence metadata written to the manifest."""

    name: str
    kind: str
    attributes: list[str]
    background: str
    target_source: str
    frames: int
    absences: list[Absence]
    extra_photos: list[str] = field(default_factory=list)
    target_region: list[float] = field(default_factory=list)
    attempt: int = 0


@dataclass
class _Event:
    """A planned absence: the leave ramp ``begin .. hold_start``, the hold ``hold_start ..
    hold_end`` and the return ramp ``hold_end .. finish`` (frame numbers).
    """

    kind: str
    begin: int
    hold_start: int
    hold_end: int
    finish: int
    lookalike: bool


def _ease(u: np.ndarray | float) -> np.ndarray:
    return (1 - np.cos(np.pi * np.clip(u, 0.0, 1.0))) / 2


def _plan_events(rng: np.random.Generator, config: LongTermConfig) -> list[_Event]:
    """Kinds and frame windows of the absences, fitted into ``config.frames``."""
    F = config.frames
    count = int(rng.integers(config.absences[0], config.absences[1] + 1))
    kinds = [config.absence_kinds[int(rng.integers(len(config.absence_kinds)))] for _ in range(count)]
    ramps = [
        (config.seconds_to_frames(rng.uniform(*RAMP_SECONDS)), config.seconds_to_frames(rng.uniform(*RAMP_SECONDS)))
        for _ in range(count)
    ]
    ramps = [(max(2, a), max(2, b)) for a, b in ramps]
    # The hold is the planned absence; the ramps add a few barely visible frames, hence the margin.
    shortest = config.seconds_to_frames(config.absence_seconds[0])
    longest = max(shortest, config.seconds_to_frames(config.absence_seconds[1]) - config.seconds_to_frames(0.35))
    holds = [int(rng.integers(shortest, longest + 1)) for _ in range(count)]
    lookalikes = [bool(rng.random() < config.lookalike_prob) for _ in range(count)]
    lead, gap, tail = (config.seconds_to_frames(s) for s in (LEAD_SECONDS, GAP_SECONDS, TAIL_SECONDS))
    while True:
        needed = lead + tail + gap * (len(holds) - 1) + sum(a + h + b for (a, b), h in zip(ramps, holds, strict=True))
        if needed <= F:
            break
        if any(h > shortest for h in holds):
            holds = [max(shortest, h - max(1, (needed - F) // len(holds) + 1)) for h in holds]
        elif len(holds) > 1:
            kinds, ramps, holds, lookalikes = kinds[:-1], ramps[:-1], holds[:-1], lookalikes[:-1]
        else:
            raise ValueError(f"{F} frames cannot hold one absence; need >= {config.min_frames}")
    spare = rng.dirichlet(np.ones(len(holds) + 1)) * (F - needed)
    events: list[_Event] = []
    t = lead + int(spare[0])
    for i, kind in enumerate(kinds):
        ramp_in, ramp_out = ramps[i]
        begin = t
        hold_start = begin + ramp_in
        hold_end = hold_start + holds[i] - 1
        finish = hold_end + ramp_out
        events.append(_Event(kind, begin, hold_start, hold_end, finish, lookalikes[i]))
        t = finish + 1 + gap + int(spare[i + 1])
    return events


def _outside_point(edge: int, along: float, reach: float, width: int, height: int) -> np.ndarray:
    """A centre from which a target of radius ``reach`` lies wholly outside the frame beyond
    ``edge`` (0 left, 1 right, 2 top, 3 bottom), at position ``along`` on that edge.
    """
    pad = reach + 3.0
    if edge == 0:
        return np.array([-0.5 - pad, along])
    if edge == 1:
        return np.array([width - 0.5 + pad, along])
    if edge == 2:
        return np.array([along, -0.5 - pad])
    return np.array([along, height - 0.5 + pad])


def _random_edge_point(rng: np.random.Generator, reach: float, width: int, height: int) -> np.ndarray:
    edge = int(rng.integers(4))
    along = rng.uniform(0.15, 0.85) * (height if edge < 2 else width)
    return _outside_point(edge, along, reach, width, height)


def _nearest_edge_point(position: np.ndarray, reach: float, width: int, height: int) -> np.ndarray:
    x, y = float(position[0]), float(position[1])
    distances = [x, width - x, y, height - y]
    edge = int(np.argmin(distances))
    return _outside_point(edge, y if edge < 2 else x, reach, width, height)


def _blend_in(path: np.ndarray, event: _Event, away: np.ndarray, back: np.ndarray) -> None:
    """Ease ``path`` (F, 2) from itself to ``away`` over the leave ramp, hold ``away`` (then
    ``back`` on the last hold frame) and ease from ``back`` to itself over the return ramp.
    """
    begin, start, end, finish = event.begin, event.hold_start, event.hold_end, event.finish
    for t in range(begin, start):
        w = float(_ease((t - begin) / (start - begin)))
        path[t] = (1 - w) * path[t] + w * away
    for t in range(start, end):
        path[t] = away
    for t in range(end, finish + 1):
        w = float(_ease((t - end) / (finish - end)))
        path[t] = (1 - w) * back + w * path[t]


def _visible_fraction(
    target: compositor.Layer,
    affines: list[np.ndarray],
    scales: np.ndarray,
    occluder: tuple[compositor.Layer, list[np.ndarray]] | None,
    width: int,
    height: int,
) -> np.ndarray:
    """Per frame: the share of the target's full area inside the frame and not behind the occluder."""
    area = float(target.mask.sum())
    visible = np.zeros(len(affines))
    for t, affine in enumerate(affines):
        coverage = np.asarray(
            cv2.warpAffine(
                target.mask,
                affine,
                (width, height),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            ),
            dtype=np.float32,
        )
        if occluder is not None:
            layer, placements = occluder
            alpha = cv2.warpAffine(
                layer.mask,
                placements[t],
                (width, height),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
            coverage *= 1.0 - np.clip(alpha, 0.0, 1.0)
        visible[t] = float(coverage.sum()) / (area * scales[t] ** 2)
    return np.clip(visible, 0.0, 1.0)


def _place_occluder(
    rng: np.random.Generator,
    base: np.ndarray,
    events: list[_Event],
    size: tuple[int, int],
    reach: float,
    width: int,
    height: int,
    candidates: int = 16,
) -> np.ndarray:
    """A centre for the occluder that stays clear of the target in frame 0 and hides it as
    rarely as possible outside the planned absences (the best of ``candidates`` draws).
    """
    half = np.array(size, dtype=np.float64) / 2
    free = np.ones(len(base), dtype=bool)
    for event in events:
        free[event.begin : event.finish + 1] = False
    best, best_cost = None, math.inf
    for _ in range(candidates):
        centre = np.array([rng.uniform(half[0], width - half[0]), rng.uniform(half[1], height - half[1])])
        gap = np.abs(base - centre)
        # Centre of the target well inside the occluder: (nearly) hidden.
        hidden = np.all(gap < half - 0.3 * reach, axis=1) & free
        cost = float(hidden.sum()) + (1000.0 if np.all(gap[0] < half + reach) else 0.0)
        if cost < best_cost:
            best, best_cost = centre, cost
    assert best is not None
    return best


def absent_runs(absent: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in ``absent`` as ``(start, end)`` inclusive frame numbers."""
    runs = []
    start = None
    for t, flag in enumerate(np.asarray(absent, dtype=bool)):
        if flag and start is None:
            start = t
        elif not flag and start is not None:
            runs.append((start, t - 1))
            start = None
    if start is not None:
        runs.append((start, len(absent) - 1))
    return runs


class _Rejected(Exception):
    """The drawn plan does not give the absences it planned; draw again."""


def render_long_term_sequence(
    pool: PhotoPool, config: LongTermConfig, index: int, draw_target: bool = True
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, LongTermSequencePlan]:
    """Frames (HxWx3 uint8 BGR), ground truth (F, 4) ``xywh`` with NaN rows on absent frames,
    the visible fraction per frame, and the metadata of sequence ``index``.

    ``draw_target=False`` renders the same frames without the target (for tests: the
    difference shows where its pixels are).
    """
    for attempt in range(MAX_ATTEMPTS):
        try:
            return _render(pool, config, index, attempt, draw_target)
        except _Rejected:
            continue
    raise RuntimeError(
        f"long-term sequence {index}: no valid plan in {MAX_ATTEMPTS} attempts; "
        "use longer --frames, a wider --absence-seconds range or a smaller --target-size"
    )


def _render(
    pool: PhotoPool, config: LongTermConfig, index: int, attempt: int, draw_target: bool
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, LongTermSequencePlan]:
    rng = np.random.default_rng([config.seed, index, attempt])
    W, H, F = config.width, config.height, config.frames
    short = min(W, H)
    attributes = [a for a in config.attributes if rng.random() < config.attribute_prob]
    events = _plan_events(rng, config)
    photo_ids = rng.permutation(len(pool))
    background_photo = pool.photos[int(photo_ids[0])]
    object_photo = pool.photos[int(photo_ids[1 % len(pool)])]

    # Target: size, shape, scale and angle paths (milder than short-term: the long-term
    # challenge is the absence).
    if "scale" in attributes:
        log_scale = compositor.smooth_path(rng, F, math.log(0.75), math.log(1.33), rng.uniform(40, 80))
        scale_path = np.exp(log_scale - log_scale[0])
    else:
        scale_path = np.ones(F)
    if "rotation" in attributes:
        angle_path = compositor.smooth_path(rng, F, -25.0, 25.0, rng.uniform(40, 80))
        angle_path -= angle_path[0]
    else:
        angle_path = np.zeros(F)
    side = rng.uniform(*config.target_size) * short
    aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    target_w = max(12, round(side * math.sqrt(aspect)))
    target_h = max(12, round(side / math.sqrt(aspect)))
    reach = 0.5 * math.hypot(target_w, target_h) * float(scale_path.max())  # covers any rotation
    target, region = compositor.cut_target(object_photo.load(), rng, (target_w, target_h))
    shape = target.shape

    # Where the target would be with the camera at rest: a smooth path that keeps it in view.
    margin_x, margin_y = min(reach, W * 0.45), min(reach, H * 0.45)
    knot_every = rng.uniform(25, 50)
    base = np.stack(
        [
            compositor.smooth_path(rng, F, margin_x, W - margin_x, knot_every),
            compositor.smooth_path(rng, F, margin_y, H - margin_y, knot_every),
        ],
        axis=1,
    )
    position = base.copy()  # scene coordinates (= frame coordinates while the camera is at rest)
    camera = np.zeros((F, 2))  # camera offset: frame = scene - camera

    occluder: tuple[compositor.Layer, list[np.ndarray]] | None = None
    occluder_source = ""
    occluder_centre = np.zeros(2)
    if any(e.kind == "occluder" for e in events):
        photo = pool.photos[int(photo_ids[2 % len(pool)])]
        occluder_source = photo.name
        occluder_image = photo.load()
        ox, oy, ow_src, oh_src = (int(v) for v in compositor.textured_region(occluder_image, rng, (0.2, 0.6), 2.0))
        ow = int(min(2 * reach * rng.uniform(1.2, 1.5), 0.9 * W))
        oh = int(min(2 * reach * rng.uniform(1.2, 1.5), 0.9 * H))
        look = cv2.resize(occluder_image[oy : oy + oh_src, ox : ox + ow_src], (ow, oh), interpolation=cv2.INTER_AREA)
        occluder_layer = compositor.Layer(look, "rect")
        occluder_centre = _place_occluder(rng, base, events, (ow, oh), reach, W, H)
        occluder = (occluder_layer, [])
    lookalike_layers: list[tuple[compositor.Layer, np.ndarray]] = []  # appearance, scene path (F, 2)

    def lookalike_look() -> compositor.Layer:
        gains = rng.uniform(0.8, 1.2, size=3).astype(np.float32)
        return compositor.Layer(np.clip(target.patch * gains, 0, 255), target.shape)

    for event in events:
        hold = slice(event.hold_start, event.hold_end + 1)
        if event.kind == "exit":
            away = (
                _nearest_edge_point(position[event.begin], reach, W, H)
                if rng.random() < 0.7
                else _random_edge_point(rng, reach, W, H)
            )
            back = _random_edge_point(rng, reach, W, H)
            _blend_in(position, event, away, back)
        elif event.kind == "occluder":
            assert occluder is not None
            layer = occluder[0]
            half = np.array([layer.size[0] / 2 - reach - 1.0, layer.size[1] / 2 - reach - 1.0])
            if np.any(half < 0):
                raise _Rejected  # cannot hide this target completely
            away = occluder_centre + rng.uniform(-1, 1, 2) * half
            back = occluder_centre + rng.uniform(-1, 1, 2) * half
            _blend_in(position, event, away, back)
            # Walk from ``away`` to ``back`` behind the occluder, instead of jumping.
            steps = np.linspace(0.0, 1.0, event.hold_end - event.hold_start + 1)[:, None]
            position[hold] = away * (1 - steps) + back * steps
        else:  # pan: the camera turns away along one axis so that the target leaves the view
            axis = 0 if rng.random() < 0.65 else 1
            extent = (W, H)[axis]
            held = base[hold, axis]
            toward_low = float(held.max()) + reach + 3.0  # camera moves +: the scene slides to -
            toward_high = extent - float(held.min()) + reach + 3.0
            distance = min(toward_low, toward_high) + rng.uniform(0.0, 0.3) * extent
            sign = 1.0 if toward_low <= toward_high else -1.0
            offset = np.zeros(2)
            offset[axis] = sign * distance
            for t in range(event.begin, event.finish + 1):
                if t < event.hold_start:
                    turned = float(_ease((t - event.begin) / (event.hold_start - event.begin)))
                elif t <= event.hold_end:
                    turned = 1.0
                else:
                    turned = 1.0 - float(_ease((t - event.hold_end) / (event.finish - event.hold_end)))
                camera[t] = turned * offset
        if event.lookalike:
            if event.kind == "pan":
                # It stands in the part of the scene the camera turns to.
                spot = np.array([rng.uniform(margin_x, W - margin_x), rng.uniform(margin_y, H - margin_y)])
                path = np.tile(spot + camera[event.hold_start], (F, 1))
            else:
                # It walks in shortly after the target is gone and out around when it returns.
                path = np.stack(
                    [
                        compositor.smooth_path(rng, F, margin_x, W - margin_x, rng.uniform(20, 40)),
                        compositor.smooth_path(rng, F, margin_y, H - margin_y, rng.uniform(20, 40)),
                    ],
                    axis=1,
                )
                enter = event.hold_start + config.seconds_to_frames(rng.uniform(0.0, 0.3))
                leave = event.hold_end + config.seconds_to_frames(rng.uniform(-0.2, 1.0))
                ramp_in = max(2, config.seconds_to_frames(rng.uniform(0.4, 0.7)))
                ramp_out = max(2, config.seconds_to_frames(rng.uniform(0.4, 0.7)))
                walk = _Event("walk", enter - ramp_in, enter, leave, min(leave + ramp_out, F - 1), True)
                outside_in = _random_edge_point(rng, 1.2 * reach, W, H)  # its size factor is <= 1.15
                outside_out = _random_edge_point(rng, 1.2 * reach, W, H)
                # Outside the frame before and after its visit: reverse the blend of a target exit.
                inside = path.copy()
                path[:] = outside_in
                for t in range(max(walk.begin, 0), F):
                    if t < walk.hold_start:
                        v = float(_ease((t - walk.begin) / (walk.hold_start - walk.begin)))
                        path[t] = (1 - v) * outside_in + v * inside[t]
                    elif t <= walk.hold_end:
                        path[t] = inside[t]
                    elif t <= walk.finish and walk.finish > walk.hold_end:
                        v = float(_ease((t - walk.hold_end) / (walk.finish - walk.hold_end)))
                        path[t] = (1 - v) * inside[t] + v * outside_out
                    else:
                        path[t] = outside_out
            lookalike_layers.append((lookalike_look(), path))

    frame_position = position - camera
    target_affines = [
        compositor.similarity(frame_position[t], angle_path[t], scale_path[t], scale_path[t], target.anchor)
        for t in range(F)
    ]
    if occluder is not None:
        occluder = (
            occluder[0],
            [compositor.similarity(occluder_centre - camera[t], 0.0, 1.0, 1.0, occluder[0].anchor) for t in range(F)],
        )
    visible = _visible_fraction(target, target_affines, scale_path, occluder, W, H)
    absent = visible < config.visibility_threshold
    _check_absences(absent, visible, events, config)

    # Background: the photo scaled to cover the frame at every camera offset.
    background = background_photo.load()
    bh, bw = background.shape[:2]
    low, high = np.minimum(camera.min(axis=0), 0.0), np.maximum(camera.max(axis=0), 0.0)
    span = high - low
    cover = max((W + span[0]) / bw, (H + span[1]) / bh) * rng.uniform(1.0, 1.15)
    slack = np.array([bw * cover - W - span[0], bh * cover - H - span[1]])
    origin = -low + rng.uniform(0.0, 1.0, 2) * np.maximum(slack, 0.0)
    background_affines = [
        np.array([[cover, 0, -(origin[0] + camera[t, 0])], [0, cover, -(origin[1] + camera[t, 1])]]) for t in range(F)
    ]
    lookalikes = []
    for layer, path in lookalike_layers:
        size_factor = rng.uniform(0.85, 1.15)
        angle0 = rng.uniform(-15, 15)
        lookalikes.append(
            (
                layer,
                [
                    compositor.similarity(
                        path[t] - camera[t],
                        angle0 + angle_path[t],
                        size_factor * scale_path[t],
                        size_factor * scale_path[t],
                        layer.anchor,
                    )
                    for t in range(F)
                ],
            )
        )

    exposure = compositor.Exposure(
        rng, F, W, H, "illumination" in attributes, config.noise_sigma, (0.55, 1.3), (40, 90), (60, 120), (0.15, 0.35)
    )

    frames: list[np.ndarray] = []
    groundtruth = np.full((F, 4), np.nan)
    for t in range(F):
        canvas = compositor.background_view(background, background_affines[t], (W, H))
        for layer, placements in lookalikes:
            layer.paint(canvas, placements[t])
        kernel = None
        if "motion_blur" in attributes and t > 0:
            kernel = compositor.velocity_blur(*(frame_position[t] - frame_position[t - 1]))
        if draw_target:
            target.paint(canvas, target_affines[t], kernel)
        if occluder is not None:
            occluder[0].paint(canvas, occluder[1][t])
        frames.append(exposure.develop(canvas, t, rng))
        if not absent[t]:
            groundtruth[t] = compositor.extent_to_xywh(
                compositor.extent_box(target.shape, target.size, target_affines[t]), W, H
            )

    runs = absent_runs(absent)
    plan = LongTermSequencePlan(
        name=f"{config.name_prefix}{index:03d}",
        kind=f"object-{shape}",
        attributes=attributes,
        background=background_photo.name,
        target_source=object_photo.name,
        frames=F,
        absences=[
            Absence(start, end, end - start + 1, event.kind, event.lookalike)
            for (start, end), event in zip(runs, events, strict=True)
        ],
        extra_photos=[occluder_source] if occluder_source else [],
        target_region=[float(v) for v in region],
        attempt=attempt,
    )
    return frames, groundtruth, visible, plan


def _check_absences(absent: np.ndarray, visible: np.ndarray, events: list[_Event], config: LongTermConfig) -> None:
    """Reject a plan unless its absent runs are exactly the planned absences, each 1-3 s long."""
    if visible[0] < INIT_VISIBILITY:
        raise _Rejected
    runs = absent_runs(absent)
    if len(runs) != len(events):
        raise _Rejected
    shortest = config.seconds_to_frames(config.absence_seconds[0])
    longest = config.seconds_to_frames(config.absence_seconds[1])
    for (start, end), event in zip(runs, events, strict=True):
        if not (event.begin <= start <= event.hold_start and event.hold_end <= end <= event.finish):
            raise _Rejected
        if not shortest <= end - start + 1 <= longest:
            raise _Rejected


def build_long_term_benchmark(
    out_dir: str | os.PathLike[str],
    config: LongTermConfig,
    pool: PhotoPool | None = None,
    progress: bool = False,
) -> dict:
    """Generate ``config.sequences`` long-term sequences into ``out_dir``; returns the manifest
    (also written as ``benchmark.json``). ``pool`` defaults to :func:`~siamrpnpp_ros.material.photos.find_photos`
    (the held-out test photos); pass another pool for validation sets.
    """
    pool = pool_for(pool, config.photo_split)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    plans: list[LongTermSequencePlan] = []
    for index in compositor.sequence_indices(config.sequences, progress):
        frames, groundtruth, visible, plan = render_long_term_sequence(pool, config, index)
        compositor.write_sequence(folder / plan.name, frames, groundtruth, config)
        (folder / plan.name / "visibility.txt").write_text(
            "\n".join(f"{v:.3f}" for v in visible) + "\n", encoding="utf-8"
        )
        plans.append(plan)
    absences = [a for p in plans for a in p.absences]
    manifest = {
        "generator": "siamrpnpp_ros.eval.longterm_builder",
        "version": LONG_TERM_VERSION,
        "long_term": True,
        "fps": config.fps,
        "visibility_threshold": config.visibility_threshold,
        "absent_rule": (
            f"a frame is absent (ground truth nan,nan,nan,nan) when less than {config.visibility_threshold:g} of the "
            "target's area is visible (inside the frame and not behind the occluder)"
        ),
        "absence_fields": "start, end: first and last absent frame (0-based, inclusive); frames = end - start + 1",
        "config": asdict(config),
        "photos": pool.origin,
        "box_convention": "x,y,w,h top-left pixels; the box covers pixels x..x+w-1 (centre x+(w-1)/2)",
        "totals": {
            "frames": sum(p.frames for p in plans),
            "absent_frames": sum(a.frames for a in absences),
            "absences": {kind: sum(a.kind == kind for a in absences) for kind in ABSENCE_KINDS},
            "with_lookalike": sum(a.lookalike for a in absences),
        },
        "sequences": [asdict(p) for p in plans],
    }
    (folder / "benchmark.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest
