"""Build OTB-format tracking sequences with exact ground truth from real photos.

Each sequence moves a target over a real photo and records where it is, so the
ground truth is exact by construction, not annotated by hand. Two kinds:

``object``
    A crop of one photo (rectangle or ellipse) moves over another photo used as the
    background: smooth random trajectory, optional camera pan of the background.
``window``
    The target is a region of the background photo itself and the *camera* moves:
    pan, zoom (scale change) and roll (rotation) keep it in view, like a hand-held
    camera following an object in a scene.

Challenge attributes, enabled per sequence at random (recorded in the manifest):
``scale`` change, in-plane ``rotation``, ``fast_motion``, ``motion_blur`` (along
the target's velocity), ``occlusion`` (crops of other photos cross in front of
the target), ``distractors`` (recoloured copies of the target's appearance move
nearby), ``illumination`` (global gain and a moving shading ramp), and
``camera_motion`` (background pan, object kind).

Ground truth: ``groundtruth.txt`` holds ``x,y,w,h`` per frame (3 decimals), the
axis-aligned box of the target's full geometric extent (occluded parts
included, motion blur excluded), clipped to the frame, in the tracker's
convention: the box covers pixels ``x .. x+w-1`` (centre ``x + (w-1)/2``).
Everything is drawn from ``numpy.random.default_rng([seed, index])``: the same
seed gives the same frames, boxes and manifest.

Layout written::

    OUT/benchmark.json             seed, sizes, photo source, per-sequence attributes
    OUT/seq000/img/0001.jpg ...    frames
    OUT/seq000/groundtruth.txt

CLI::

    python -m siamrpnpp_ros.eval.builder --out bench --sequences 20 --frames 150 --seed 0

``--long-term`` builds long-term sequences instead (the target is absent for 1-3 s at a
time, ground truth ``nan`` there; see :mod:`.longterm_builder`)::

    python -m siamrpnpp_ros.eval.builder --long-term --out lt_bench --sequences 20 --seed 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Protocol

import cv2
import numpy as np

from siamrpnpp_ros.material.photos import PHOTO_SPLITS, PhotoPool, find_photos

if TYPE_CHECKING:
    from .longterm_builder import LongTermConfig

GENERATOR_VERSION = 1
ATTRIBUTES = (
    "scale",
    "rotation",
    "fast_motion",
    "motion_blur",
    "occlusion",
    "distractors",
    "illumination",
    "camera_motion",
)
KINDS = ("object", "window")
NOISE_PAD = 64  # extra rows/columns of the per-sequence noise field, for random offsets


@dataclass(frozen=True)
class BuilderConfig:
    """What to generate. Sizes in pixels; ``target_size`` as a fraction of the frame's shorter side.

    Attributes:
        sequences, frames: how many sequences, frames per sequence.
        width, height: frame size.
        seed: master seed.
        kinds: sequence kinds to draw from (``object``, ``window``).
        attributes: attributes that may be enabled; each is enabled with ``attribute_prob``.
        target_size: (min, max) of the target's initial side ``sqrt(w*h)``.
        noise_sigma: Gaussian sensor noise (grey levels).
        image_format: ``jpg`` (quality ``jpeg_quality``) or ``png`` (lossless).
        photo_split: use ``all`` photos, or only the ``train`` / ``test`` split.
        name_prefix: sequence folder names are ``<prefix><index:03d>``.
    """

    sequences: int = 20
    frames: int = 150
    width: int = 480
    height: int = 360
    seed: int = 0
    kinds: tuple[str, ...] = KINDS
    attributes: tuple[str, ...] = ATTRIBUTES
    attribute_prob: float = 0.5
    target_size: tuple[float, float] = (0.12, 0.28)
    noise_sigma: float = 2.0
    image_format: str = "jpg"
    jpeg_quality: int = 92
    photo_split: str = "all"
    name_prefix: str = "seq"

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", tuple(self.kinds))
        object.__setattr__(self, "attributes", tuple(self.attributes))
        object.__setattr__(self, "target_size", tuple(float(v) for v in self.target_size))
        problems = []
        if self.sequences < 1 or self.frames < 2:
            problems.append("need sequences >= 1 and frames >= 2")
        if self.width < 64 or self.height < 64:
            problems.append("frames must be at least 64x64")
        unknown = [k for k in self.kinds if k not in KINDS] + [a for a in self.attributes if a not in ATTRIBUTES]
        if unknown or not self.kinds:
            problems.append(f"unknown or empty kinds/attributes {unknown}; kinds: {KINDS}, attributes: {ATTRIBUTES}")
        low, high = self.target_size
        if not 0.02 <= low <= high <= 0.5:
            problems.append(f"target_size must satisfy 0.02 <= min <= max <= 0.5, got {self.target_size}")
        if self.image_format not in ("jpg", "png"):
            problems.append(f"image_format must be jpg or png, got {self.image_format!r}")
        if self.photo_split not in PHOTO_SPLITS:
            problems.append(f"photo_split must be one of {PHOTO_SPLITS}")
        if not 0 <= self.attribute_prob <= 1:
            problems.append("attribute_prob must be in [0, 1]")
        if problems:
            raise ValueError("invalid benchmark config: " + "; ".join(problems))


@dataclass
class SequencePlan:
    """Per-sequence metadata written to the manifest."""

    name: str
    kind: str
    attributes: list[str]
    background: str
    target_source: str
    frames: int
    extra_photos: list[str] = field(default_factory=list)
    #: ``x, y, w, h`` of the target's appearance in ``target_source`` (source pixels).
    target_region: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------- helpers
def smooth_path(rng: np.random.Generator, frames: int, low: float, high: float, knot_every: float) -> np.ndarray:
    """A smooth random curve over ``frames`` frames with values in ``[low, high]``.

    Random knots every ``knot_every`` frames (jittered), joined by cosine easing,
    so speed varies and there are no kinks.
    """
    knot_count = max(2, int(math.ceil(frames / max(knot_every, 1.0))) + 1)
    positions = np.linspace(0, frames - 1, knot_count)
    values = rng.uniform(low, high, size=knot_count)
    t = np.arange(frames, dtype=np.float64)
    segment = np.clip(np.searchsorted(positions, t, side="right") - 1, 0, knot_count - 2)
    start, end = positions[segment], positions[segment + 1]
    local = np.where(end > start, (t - start) / np.maximum(end - start, 1e-9), 0.0)
    eased = (1 - np.cos(np.pi * local)) / 2
    return values[segment] * (1 - eased) + values[segment + 1] * eased


def similarity(
    center: Sequence[float],
    angle_degrees: float,
    scale_x: float,
    scale_y: float,
    anchor: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """2x3 affine: move ``anchor`` (source px) to ``center`` (frame px), scaled then rotated."""
    theta = math.radians(angle_degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    linear = np.array([[cos, -sin], [sin, cos]]) @ np.diag([scale_x, scale_y])
    offset = np.asarray(center, dtype=np.float64) - linear @ np.asarray(anchor, dtype=np.float64)
    return np.hstack([linear, offset[:, None]])


def shape_mask(height: int, width: int, shape: str, supersample: int = 4) -> np.ndarray:
    """Anti-aliased float32 coverage mask (0..1) filling the ``width`` x ``height`` patch.

    ``rect``: all ones. ``ellipse``: the inscribed ellipse, semi-axes ``width/2``, ``height/2``.
    """
    if shape == "rect":
        return np.ones((height, width), np.float32)
    big = np.zeros((height * supersample, width * supersample), np.uint8)
    centre = ((width * supersample - 1) / 2, (height * supersample - 1) / 2)
    axes = (width * supersample / 2, height * supersample / 2)
    cv2.ellipse(big, (centre, (axes[0] * 2, axes[1] * 2), 0.0), 255, -1, lineType=cv2.LINE_AA)
    return cv2.resize(big, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def extent_box(shape: str, patch_size: tuple[int, int], affine: np.ndarray) -> tuple[float, float, float, float]:
    """Continuous extent ``(u0, v0, u1, v1)`` (frame px, pixel centres at integers) of a patch
    of ``patch_size`` = (w, h) pixels placed by ``affine``.

    The patch covers ``[-0.5, w-0.5] x [-0.5, h-0.5]`` in its own pixels; for an ellipse the
    exact bounds of the transformed ellipse are used, for a rectangle its corners.
    """
    width, height = patch_size
    linear = affine[:, :2]
    if shape == "ellipse":
        centre = affine @ np.array([(width - 1) / 2, (height - 1) / 2, 1.0])
        # Image of the unit circle under linear @ diag(w/2, h/2): half-extents are row norms.
        axes = linear @ np.diag([width / 2, height / 2])
        half = np.linalg.norm(axes, axis=1)
        return (centre[0] - half[0], centre[1] - half[1], centre[0] + half[0], centre[1] + half[1])
    corners = np.array(
        [[-0.5, -0.5, 1], [width - 0.5, -0.5, 1], [-0.5, height - 0.5, 1], [width - 0.5, height - 0.5, 1]]
    )
    moved = corners @ affine.T
    return (moved[:, 0].min(), moved[:, 1].min(), moved[:, 0].max(), moved[:, 1].max())


def extent_to_xywh(extent: tuple[float, float, float, float], width: int, height: int) -> np.ndarray:
    """Clip a continuous extent to the frame and convert to the ``xywh`` pixel convention.

    A shape spanning ``[u0, u1]`` covers pixel centres ``u0+0.5 .. u1-0.5``: ``x = u0 + 0.5``,
    ``w = u1 - u0`` (so ``x + (w-1)/2`` is its centre). NaNs when wholly outside.
    """
    u0, v0, u1, v1 = extent
    u0, u1 = max(u0, -0.5), min(u1, width - 0.5)
    v0, v1 = max(v0, -0.5), min(v1, height - 0.5)
    if u1 <= u0 or v1 <= v0:
        return np.full(4, np.nan)
    return np.array([u0 + 0.5, v0 + 0.5, u1 - u0, v1 - v0])


def composite(
    canvas: np.ndarray,
    patch: np.ndarray,
    mask: np.ndarray,
    affine: np.ndarray,
    blur_kernel: Optional[np.ndarray] = None,
) -> None:
    """Paint ``patch`` (h x w x 3 float32) with coverage ``mask`` onto ``canvas`` (float32, in place).

    Only the region the patch lands on is warped. ``blur_kernel`` (e.g. motion blur) smears
    colour and coverage together (premultiplied), so edges blur into the background.
    """
    height, width = canvas.shape[:2]
    ph, pw = mask.shape
    margin = 0 if blur_kernel is None else blur_kernel.shape[0]
    corners = np.array([[-1, -1, 1], [pw, -1, 1], [-1, ph, 1], [pw, ph, 1]], dtype=np.float64) @ affine.T
    x0 = max(int(math.floor(corners[:, 0].min())) - margin - 1, 0)
    y0 = max(int(math.floor(corners[:, 1].min())) - margin - 1, 0)
    x1 = min(int(math.ceil(corners[:, 0].max())) + margin + 2, width)
    y1 = min(int(math.ceil(corners[:, 1].max())) + margin + 2, height)
    if x1 <= x0 or y1 <= y0:
        return
    local = affine.copy()
    local[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    premultiplied = np.dstack([patch * mask[..., None], mask])
    warped = cv2.warpAffine(
        premultiplied, local, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    if blur_kernel is not None:
        warped = cv2.filter2D(warped, -1, blur_kernel, borderType=cv2.BORDER_CONSTANT)
    alpha = np.clip(warped[..., 3:4], 0.0, 1.0)
    region = canvas[y0:y1, x0:x1]
    region *= 1.0 - alpha
    region += warped[..., :3]


def motion_kernel(length: int, angle_degrees: float) -> np.ndarray:
    """Normalised line kernel (odd ``length`` px) along ``angle_degrees``."""
    from siamrpnpp_ros.training.augment import motion_blur_kernel

    return motion_blur_kernel(length, angle_degrees)


def _textured_region(
    image: np.ndarray, rng: np.random.Generator, side_range: tuple[float, float], max_aspect: float
) -> np.ndarray:
    from siamrpnpp_ros.training.augment import random_patch_box

    return random_patch_box(image, rng, side_range=side_range, max_aspect=max_aspect, min_std=20.0, attempts=20)


class Exposure:
    """The lighting and sensor noise of one sequence: drawn once from ``rng``, applied per frame.

    ``illumination``: a global gain (``gain_range``, knots every ``gain_knots`` frames) times a
    shading ramp turning through the frame (knots every ``angle_knots`` frames, strength drawn
    in ``strength_range``). ``noise_sigma``: Gaussian sensor noise, grey levels; each frame takes
    a random window of one noise field, fresh-looking noise for the price of a slice.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        frames: int,
        width: int,
        height: int,
        illumination: bool,
        noise_sigma: float,
        gain_range: tuple[float, float],
        gain_knots: tuple[float, float],
        angle_knots: tuple[float, float],
        strength_range: tuple[float, float],
    ) -> None:
        self.illumination = illumination
        if illumination:
            self.gain_path = smooth_path(rng, frames, gain_range[0], gain_range[1], rng.uniform(*gain_knots))
            self.ramp_angle = smooth_path(rng, frames, 0, 2 * math.pi, rng.uniform(*angle_knots))
            self.ramp_strength = rng.uniform(*strength_range)
        short = min(width, height)
        grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)
        self.grid_x = (grid_x - width / 2) / short
        self.grid_y = (grid_y - height / 2) / short
        self.size = (width, height)
        self.noise_field: Optional[np.ndarray] = None
        if noise_sigma > 0:
            noise = rng.standard_normal(size=(height + NOISE_PAD, width + NOISE_PAD, 3), dtype=np.float32)
            self.noise_field = noise * np.float32(noise_sigma)

    def develop(self, canvas: np.ndarray, t: int, rng: np.random.Generator) -> np.ndarray:
        """Frame ``t`` as HxWx3 uint8: ``canvas`` (float32, changed in place) lit and noised."""
        if self.illumination:
            ramp = self.grid_x * np.float32(self.ramp_strength * math.cos(self.ramp_angle[t]))
            ramp += self.grid_y * np.float32(self.ramp_strength * math.sin(self.ramp_angle[t]))
            ramp += np.float32(1.0)
            ramp *= np.float32(self.gain_path[t])
            canvas *= ramp[..., None]
        if self.noise_field is not None:
            width, height = self.size
            oy, ox = int(rng.integers(NOISE_PAD + 1)), int(rng.integers(NOISE_PAD + 1))
            canvas += self.noise_field[oy : oy + height, ox : ox + width]
        # Rounds and saturates to 0..255. cv2.add takes a scalar src2; its stubs do not say so.
        return cv2.add(canvas, 0.0, dtype=cv2.CV_8U)  # type: ignore[call-overload,no-any-return]


# ---------------------------------------------------------------------- one sequence
class _Layer:
    """A moving patch: appearance, coverage mask and per-frame placement."""

    def __init__(self, patch: np.ndarray, shape: str) -> None:
        self.patch = patch.astype(np.float32)
        self.shape = shape
        self.mask = shape_mask(patch.shape[0], patch.shape[1], shape)
        self.size = (patch.shape[1], patch.shape[0])
        self.anchor = ((patch.shape[1] - 1) / 2, (patch.shape[0] - 1) / 2)


def render_sequence(
    pool: PhotoPool, config: BuilderConfig, index: int
) -> tuple[list[np.ndarray], np.ndarray, SequencePlan]:
    """Frames (HxWx3 uint8 BGR), ground truth (F, 4) ``xywh`` and metadata of sequence ``index``."""
    rng = np.random.default_rng([config.seed, index])
    W, H, F = config.width, config.height, config.frames
    short = min(W, H)
    kind = config.kinds[int(rng.integers(len(config.kinds)))]
    attributes = [a for a in config.attributes if rng.random() < config.attribute_prob]
    if kind == "window" and "camera_motion" in attributes:
        attributes.remove("camera_motion")  # the window kind always moves the camera
    photo_ids = rng.permutation(len(pool))
    background_photo = pool.photos[int(photo_ids[0])]
    background = background_photo.load()
    bh, bw = background.shape[:2]

    # Target size path (scale change) and angle path (rotation), relative to the first frame.
    if "scale" in attributes:
        log_scale = smooth_path(rng, F, math.log(0.6), math.log(1.6), rng.uniform(30, 60))
        log_scale -= log_scale[0]
        scale_path = np.exp(np.clip(log_scale, math.log(0.5), math.log(2.0)))
    else:
        scale_path = np.ones(F)
    if "rotation" in attributes:
        angle_path = smooth_path(rng, F, -35.0, 35.0, rng.uniform(30, 60))
        angle_path -= angle_path[0]
    else:
        angle_path = np.zeros(F)

    side = rng.uniform(*config.target_size) * short
    aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    target_w = max(12, int(round(side * math.sqrt(aspect))))
    target_h = max(12, int(round(side / math.sqrt(aspect))))

    # Target centre path in the frame: keep most of the target inside.
    reach = 0.5 * math.hypot(target_w, target_h) * float(scale_path.max()) * 0.8
    margin_x, margin_y = min(reach, W * 0.45), min(reach, H * 0.45)
    knot_every = rng.uniform(6, 12) if "fast_motion" in attributes else rng.uniform(25, 50)
    centre_x = smooth_path(rng, F, margin_x, W - margin_x, knot_every)
    centre_y = smooth_path(rng, F, margin_y, H - margin_y, knot_every)

    target_source = background_photo.name
    extra: list[str] = []
    shape = "rect"
    zoom0 = 1.0  # frame px per source px of the target's appearance
    if kind == "object":
        object_photo = pool.photos[int(photo_ids[1 % len(pool)])]
        target_source = object_photo.name
        source = object_photo.load()
        region = _textured_region(source, rng, (0.2, 0.6), 2.0)
        x, y, w, h = (int(v) for v in region)
        patch = cv2.resize(source[y : y + h, x : x + w], (target_w, target_h), interpolation=cv2.INTER_AREA)
        shape = "ellipse" if rng.random() < 0.4 else "rect"
        target = _Layer(patch, shape)
        # Background camera: the photo scaled to cover the frame (with slack to pan over).
        cover = max(W / bw, H / bh) * (1.3 if "camera_motion" in attributes else 1.0)
        slack_x, slack_y = bw * cover - W, bh * cover - H
        if "camera_motion" in attributes:
            pan_x = smooth_path(rng, F, 0, slack_x, rng.uniform(30, 60))
            pan_y = smooth_path(rng, F, 0, slack_y, rng.uniform(30, 60))
        else:
            pan_x, pan_y = np.full(F, slack_x / 2), np.full(F, slack_y / 2)
        background_affines = [np.array([[cover, 0, -pan_x[t]], [0, cover, -pan_y[t]]]) for t in range(F)]
        target_affines = [
            similarity((centre_x[t], centre_y[t]), angle_path[t], scale_path[t], scale_path[t], target.anchor)
            for t in range(F)
        ]
    else:
        # Window: a region of the background photo is the target and the camera follows it.
        # The camera must never see past the photo's edges (no invented pixels): the zoom is
        # at least what makes the rolled frame fit inside the photo at every frame.
        radians = np.radians(angle_path)
        cos_a, sin_a = np.abs(np.cos(radians)), np.abs(np.sin(radians))
        fit = np.maximum((W * cos_a + H * sin_a) / bw, (W * sin_a + H * cos_a) / bh)
        zoom0 = float(np.max(fit / scale_path)) * rng.uniform(1.25, 2.0)  # slack to pan
        zoom_path = zoom0 * scale_path
        photo_side = min(side / zoom0, 0.9 * min(bw, bh))
        fraction = photo_side / min(bw, bh)
        region = _textured_region(background, rng, (fraction * 0.9, min(fraction * 1.1, 0.95)), 2.0)
        rx, ry, rw, rh = (float(v) for v in region)
        anchor = np.array([rx + (rw - 1) / 2, ry + (rh - 1) / 2])
        frame_centre = np.array([(W - 1) / 2, (H - 1) / 2])
        target_affines = []
        for t in range(F):
            rotation = similarity((0.0, 0.0), angle_path[t], zoom_path[t], zoom_path[t], (0.0, 0.0))[:, :2]
            # Photo point seen at the frame centre when the target sits at the desired spot ...
            desired = np.array([centre_x[t], centre_y[t]])
            seen = anchor + np.linalg.solve(rotation, frame_centre - desired)
            # ... moved so the frame's footprint stays inside the photo, then the target's
            # frame position follows from it.
            half_x = (W * cos_a[t] + H * sin_a[t]) / (2 * zoom_path[t])
            half_y = (W * sin_a[t] + H * cos_a[t]) / (2 * zoom_path[t])
            seen = np.clip(seen, (half_x - 0.5, half_y - 0.5), (bw - 0.5 - half_x, bh - 0.5 - half_y))
            centre_x[t], centre_y[t] = frame_centre + rotation @ (anchor - seen)
            target_affines.append(
                similarity((centre_x[t], centre_y[t]), angle_path[t], zoom_path[t], zoom_path[t], anchor)
            )
        background_affines = target_affines
        target_w, target_h = int(round(rw)), int(round(rh))
        patch = background[int(ry) : int(ry) + target_h, int(rx) : int(rx) + target_w]
        target = _Layer(patch, "rect")  # appearance for distractors; its anchor is its own centre

    # Distractors: recoloured copies of the target's look, on their own paths (drawn under it).
    distractors: list[tuple[_Layer, list[np.ndarray]]] = []
    if "distractors" in attributes:
        for _ in range(int(rng.integers(1, 3))):
            gains = rng.uniform(0.8, 1.2, size=3).astype(np.float32)
            look = np.clip(target.patch * gains, 0, 255)
            layer = _Layer(look, target.shape)
            size_factor = rng.uniform(0.8, 1.2)
            dx = smooth_path(rng, F, margin_x, W - margin_x, rng.uniform(20, 50))
            dy = smooth_path(rng, F, margin_y, H - margin_y, rng.uniform(20, 50))
            angle0 = rng.uniform(-20, 20)
            scale0 = (zoom0 if kind == "window" else 1.0) * size_factor
            placements = [
                similarity(
                    (dx[t], dy[t]), angle0 + angle_path[t], scale0 * scale_path[t], scale0 * scale_path[t], layer.anchor
                )
                for t in range(F)
            ]
            distractors.append((layer, placements))

    # Occluders: crops of other photos crossing in front of the target.
    occluders: list[tuple[_Layer, list[np.ndarray]]] = []
    if "occlusion" in attributes:
        for k in range(int(rng.integers(1, 3))):
            photo = pool.photos[int(photo_ids[(2 + k) % len(pool)])]
            extra.append(photo.name)
            source = photo.load()
            occluder_region = _textured_region(source, rng, (0.15, 0.5), 2.5)
            x, y, w, h = (int(v) for v in occluder_region)
            occluder_side = (
                math.sqrt(target_w * target_h) * (zoom0 if kind == "window" else 1.0) * rng.uniform(0.6, 1.3)
            )
            occluder_aspect = math.exp(rng.uniform(math.log(0.4), math.log(2.5)))
            ow = max(8, int(occluder_side * math.sqrt(occluder_aspect)))
            oh = max(8, int(occluder_side / math.sqrt(occluder_aspect)))
            layer = _Layer(cv2.resize(source[y : y + h, x : x + w], (ow, oh), interpolation=cv2.INTER_AREA), "rect")
            meet = int(rng.integers(int(0.15 * F), max(int(0.15 * F) + 1, int(0.85 * F))))
            duration = rng.uniform(15, 40)
            direction = rng.uniform(0, 2 * math.pi)
            speed = (math.hypot(ow, oh) + side) / duration
            vx, vy = speed * math.cos(direction), speed * math.sin(direction)
            placements = [
                similarity(
                    (centre_x[meet] + vx * (t - meet), centre_y[meet] + vy * (t - meet)), 0.0, 1.0, 1.0, layer.anchor
                )
                for t in range(F)
            ]
            occluders.append((layer, placements))

    exposure = Exposure(
        rng, F, W, H, "illumination" in attributes, config.noise_sigma, (0.45, 1.35), (25, 60), (40, 80), (0.15, 0.4)
    )
    frames: list[np.ndarray] = []
    groundtruth = np.zeros((F, 4), dtype=np.float64)
    for t in range(F):
        canvas: np.ndarray = cv2.warpAffine(
            background, background_affines[t], (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        ).astype(np.float32)
        for layer, placements in distractors:
            composite(canvas, layer.patch, layer.mask, placements[t])
        if kind == "object":
            kernel = None
            if "motion_blur" in attributes and t > 0:
                vx, vy = centre_x[t] - centre_x[t - 1], centre_y[t] - centre_y[t - 1]
                speed = math.hypot(vx, vy)
                if speed > 2.0:
                    kernel = motion_kernel(int(round(speed * 0.8)) | 1, math.degrees(math.atan2(vy, vx)))
            composite(canvas, target.patch, target.mask, target_affines[t], kernel)
        elif "motion_blur" in attributes and t > 0:
            # The whole view moves with the camera: blur the frame along the target's motion.
            vx, vy = centre_x[t] - centre_x[t - 1], centre_y[t] - centre_y[t - 1]
            speed = math.hypot(vx, vy)
            if speed > 2.0:
                kernel = motion_kernel(int(round(speed * 0.8)) | 1, math.degrees(math.atan2(vy, vx)))
                canvas = cv2.filter2D(canvas, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
        for layer, placements in occluders:
            composite(canvas, layer.patch, layer.mask, placements[t])
        frames.append(exposure.develop(canvas, t, rng))

        if kind == "object":
            extent = extent_box(target.shape, target.size, target_affines[t])
        else:
            # The photo region [rx-0.5, rx+rw-0.5] x [ry-0.5, ry+rh-0.5] through the camera: the
            # unit square [-0.5, 0.5]^2 mapped onto it, then into the frame.
            region_frame = np.array([[rw, 0, rx + (rw - 1) / 2], [0, rh, ry + (rh - 1) / 2], [0, 0, 1]])
            extent = extent_box("rect", (1, 1), target_affines[t] @ region_frame)
        groundtruth[t] = extent_to_xywh(extent, W, H)

    plan = SequencePlan(
        name=f"{config.name_prefix}{index:03d}",
        kind=kind if kind == "window" else f"object-{shape}",
        attributes=attributes,
        background=background_photo.name,
        target_source=target_source,
        frames=F,
        extra_photos=extra,
        target_region=[float(v) for v in region],
    )
    return frames, groundtruth, plan


# ---------------------------------------------------------------------- whole benchmark
class ImageSettings(Protocol):
    """How frames are written (``BuilderConfig`` and ``LongTermConfig`` both have it)."""

    @property
    def image_format(self) -> str:
        """Image file format of the frames, ``jpg`` or ``png``."""
        ...

    @property
    def jpeg_quality(self) -> int:
        """JPEG quality when the format is ``jpg``."""
        ...


def write_sequence(folder: Path, frames: list[np.ndarray], groundtruth: np.ndarray, config: ImageSettings) -> None:
    """Write frames as ``img/0001.<ext>`` and ``groundtruth.txt`` (``x,y,w,h``, 3 decimals)."""
    image_dir = folder / "img"
    image_dir.mkdir(parents=True, exist_ok=True)
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality]
        if config.image_format == "jpg"
        else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    )
    for number, frame in enumerate(frames, start=1):
        path = image_dir / f"{number:04d}.{config.image_format}"
        if not cv2.imwrite(str(path), frame, params):
            raise OSError(f"cannot write {path}")
    lines = [",".join("nan" if not np.isfinite(v) else f"{v:.3f}" for v in row) for row in groundtruth]
    (folder / "groundtruth.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_benchmark(
    out_dir: str | os.PathLike[str],
    config: BuilderConfig,
    pool: Optional[PhotoPool] = None,
    progress: bool = False,
) -> dict:
    """Generate ``config.sequences`` sequences into ``out_dir``; returns the manifest (also
    written as ``benchmark.json``). ``pool`` defaults to :func:`~.photos.find_photos`.
    """
    pool = (pool or find_photos()).select(config.photo_split)
    if len(pool) < 1:
        raise ValueError("the photo pool is empty")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    plans: list[SequencePlan] = []
    indices = range(config.sequences)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="sequences", dynamic_ncols=True)
    for index in indices:
        frames, groundtruth, plan = render_sequence(pool, config, index)
        write_sequence(folder / plan.name, frames, groundtruth, config)
        plans.append(plan)
    manifest = {
        "generator": "siamrpnpp_ros.eval.builder",
        "version": GENERATOR_VERSION,
        "config": asdict(config),
        "photos": pool.origin,
        "box_convention": "x,y,w,h top-left pixels; the box covers pixels x..x+w-1 (centre x+(w-1)/2)",
        "sequences": [asdict(p) for p in plans],
    }
    (folder / "benchmark.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 480x360, got {text!r}") from None
    return width, height


def build_parser() -> argparse.ArgumentParser:
    """The builder's argument parser (short-term, or long-term with ``--long-term``)."""
    from .longterm_builder import ABSENCE_KINDS, LONG_TERM_ATTRIBUTES

    parser = argparse.ArgumentParser(
        prog="python -m siamrpnpp_ros.eval.builder",
        description="Build OTB-format tracking sequences with exact ground truth from real photos.",
    )
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per sequence)")
    parser.add_argument("--sequences", type=int, default=20, help="number of sequences (default 20)")
    parser.add_argument(
        "--frames", type=int, default=None, help="frames per sequence (default 150; 300 with --long-term)"
    )
    parser.add_argument("--seed", type=int, default=0, help="master seed (same seed, same benchmark)")
    parser.add_argument("--size", type=_size, default=(480, 360), help="frame size WIDTHxHEIGHT (default 480x360)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="sequence kinds to mix")
    parser.add_argument(
        "--attributes",
        nargs="*",
        choices=ATTRIBUTES,
        default=None,
        help="challenges that may be enabled (each with --attribute-prob; default: all; with "
        f"--long-term only {', '.join(LONG_TERM_ATTRIBUTES)})",
    )
    parser.add_argument("--attribute-prob", type=float, default=0.5, help="chance of each attribute per sequence")
    parser.add_argument(
        "--target-size",
        type=float,
        nargs=2,
        default=None,
        metavar=("MIN", "MAX"),
        help="initial target side as a fraction of the frame's shorter side "
        "(default 0.12 0.28; 0.12 0.24 with --long-term)",
    )
    parser.add_argument("--noise", type=float, default=2.0, help="sensor noise sigma, grey levels")
    parser.add_argument("--format", choices=("jpg", "png"), default="jpg", help="frame file format")
    parser.add_argument("--photos", nargs="+", default=(), help="photo folders (default: opencv-doc, scikit-image)")
    parser.add_argument(
        "--photo-split",
        choices=PHOTO_SPLITS,
        default="all",
        help="use only the train or test photos (disjoint; train a model on one, evaluate on the other)",
    )
    parser.add_argument("--prefix", default=None, help="sequence folder name prefix (default seq; lt with --long-term)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    long_term = parser.add_argument_group(
        "long-term sequences", "the target leaves the view for a while (ground truth nan,nan,nan,nan there)"
    )
    long_term.add_argument("--long-term", action="store_true", help="build long-term sequences (object kind only)")
    long_term.add_argument("--fps", type=float, default=30.0, help="frame rate the durations refer to (default 30)")
    long_term.add_argument(
        "--absence-kinds",
        nargs="+",
        choices=ABSENCE_KINDS,
        default=list(ABSENCE_KINDS),
        help="how the target disappears: leaves the frame, goes behind a large occluder, "
        "or the camera pans away (default: all)",
    )
    long_term.add_argument(
        "--absences",
        type=int,
        nargs=2,
        default=(1, 2),
        metavar=("MIN", "MAX"),
        help="absences per sequence (default 1 2)",
    )
    long_term.add_argument(
        "--absence-seconds",
        type=float,
        nargs=2,
        default=(1.0, 3.0),
        metavar=("MIN", "MAX"),
        help="duration of one absence in seconds (default 1 3)",
    )
    long_term.add_argument(
        "--lookalike-prob",
        type=float,
        default=0.5,
        help="chance that a look-alike is in view while the target is away (default 0.5)",
    )
    long_term.add_argument(
        "--visibility-threshold",
        type=float,
        default=0.1,
        help="a frame is absent when less than this share of the target is visible (default 0.1)",
    )
    return parser


def _long_term_config(args: argparse.Namespace) -> LongTermConfig:
    from .longterm_builder import LONG_TERM_ATTRIBUTES, LongTermConfig

    attributes = LONG_TERM_ATTRIBUTES if args.attributes is None else tuple(args.attributes)
    unsupported = [a for a in attributes if a not in LONG_TERM_ATTRIBUTES]
    if unsupported:
        raise ValueError(
            f"--long-term supports the attributes {', '.join(LONG_TERM_ATTRIBUTES)}, not {', '.join(unsupported)}"
        )
    return LongTermConfig(
        sequences=args.sequences,
        frames=300 if args.frames is None else args.frames,
        fps=args.fps,
        width=args.size[0],
        height=args.size[1],
        seed=args.seed,
        absence_kinds=tuple(args.absence_kinds),
        absences=tuple(args.absences),
        absence_seconds=tuple(args.absence_seconds),
        lookalike_prob=args.lookalike_prob,
        visibility_threshold=args.visibility_threshold,
        attributes=attributes,
        attribute_prob=args.attribute_prob,
        target_size=(0.12, 0.24) if args.target_size is None else tuple(args.target_size),
        noise_sigma=args.noise,
        image_format=args.format,
        photo_split=args.photo_split,
        name_prefix="lt" if args.prefix is None else args.prefix,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Build the benchmark described by ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.long_term:
            from .longterm_builder import build_long_term_benchmark

            long_term_config = _long_term_config(args)
        else:
            config = BuilderConfig(
                sequences=args.sequences,
                frames=150 if args.frames is None else args.frames,
                width=args.size[0],
                height=args.size[1],
                seed=args.seed,
                kinds=tuple(args.kinds),
                attributes=ATTRIBUTES if args.attributes is None else tuple(args.attributes),
                attribute_prob=args.attribute_prob,
                target_size=(0.12, 0.28) if args.target_size is None else tuple(args.target_size),
                noise_sigma=args.noise,
                image_format=args.format,
                photo_split=args.photo_split,
                name_prefix="seq" if args.prefix is None else args.prefix,
            )
        pool = find_photos(args.photos)
        if pool.origin.startswith("generated"):
            print(
                "warning: no real photos found (install opencv-doc or scikit-image); using generated textures",
                file=sys.stderr,
            )
        if args.long_term:
            manifest = build_long_term_benchmark(args.out, long_term_config, pool, progress=not args.no_progress)
        else:
            manifest = build_benchmark(args.out, config, pool, progress=not args.no_progress)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    frames = sum(s["frames"] for s in manifest["sequences"])
    print(f"wrote {len(manifest['sequences'])} sequences ({frames} frames) to {args.out} from {manifest['photos']}")
    if args.long_term:
        totals = manifest["totals"]
        kinds = ", ".join(f"{count} {kind}" for kind, count in totals["absences"].items())
        print(
            f"absences: {kinds} ({totals['with_lookalike']} with a look-alike), {totals['absent_frames']} absent "
            f"frames at {manifest['fps']:g} fps"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
