"""The compositor of the synthetic sequences: moving photo patches over a photo, exactly.

Both benchmark builders (``eval/builder.py``, ``eval/longterm_builder.py``) draw their frames
with it, and training's augmentation takes its motion blur and its target patches from it,
so it imports nothing else of the package.

Coordinates: frame pixels, pixel centres at integers; a patch of ``w`` x ``h`` pixels covers
``[-0.5, w-0.5] x [-0.5, h-0.5]`` in its own pixels and is placed by a 2x3 affine (source px
-> frame px). Boxes are ``x, y, w, h`` (top-left; the box covers pixels ``x .. x+w-1``).
Images are HxWx3 BGR, float32 while composing, uint8 when developed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Optional, Protocol

import cv2
import numpy as np

NOISE_PAD = 64  # extra rows/columns of the per-sequence noise field, for random offsets
#: Below this speed (frame px per frame) a moving target is drawn without motion blur.
BLUR_MIN_SPEED = 2.0


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


def motion_blur_kernel(length: int, angle_degrees: float) -> np.ndarray:
    """Normalised line kernel of ``length`` pixels (odd) at ``angle_degrees`` (0 = horizontal)."""
    length = max(1, int(length) | 1)
    kernel: np.ndarray = np.zeros((length, length), dtype=np.float32)
    kernel[length // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle_degrees, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length), flags=cv2.INTER_LINEAR)
    total = kernel.sum()
    if total <= 0:  # pragma: no cover - a 1-pixel kernel cannot vanish, kept for safety
        kernel[length // 2, length // 2] = 1.0
        total = 1.0
    normalised: np.ndarray = kernel / total
    return normalised


def random_patch_box(
    image: np.ndarray,
    rng: np.random.Generator,
    side_range: tuple[float, float] = (0.12, 0.45),
    max_aspect: float = 2.5,
    min_std: float = 14.0,
    attempts: int = 12,
) -> np.ndarray:
    """A random ``xywh`` box on ``image`` to serve as the target of a self-supervised pair.

    Side ``sqrt(w*h)`` is drawn in ``side_range`` times the shorter image side, aspect
    ``w/h`` log-uniform in ``[1/max_aspect, max_aspect]``. Patches whose grey-level
    standard deviation is below ``min_std`` (flat sky, walls: nothing to track) are
    redrawn up to ``attempts`` times; the most textured candidate wins otherwise.
    """
    height, width = image.shape[:2]
    short = min(height, width)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    best_box, best_std = None, -1.0
    for _ in range(max(1, attempts)):
        side = rng.uniform(*side_range) * short
        aspect = math.exp(rng.uniform(-math.log(max_aspect), math.log(max_aspect)))
        w = int(np.clip(round(side * math.sqrt(aspect)), 8, width))
        h = int(np.clip(round(side / math.sqrt(aspect)), 8, height))
        x = int(rng.integers(0, width - w + 1))
        y = int(rng.integers(0, height - h + 1))
        std = float(gray[y : y + h, x : x + w].std())
        if std > best_std:
            best_box, best_std = np.array([x, y, w, h], dtype=np.float64), std
        if std >= min_std:
            break
    assert best_box is not None
    return best_box


def textured_region(
    image: np.ndarray, rng: np.random.Generator, side_range: tuple[float, float], max_aspect: float
) -> np.ndarray:
    """An ``xywh`` region of ``image`` with texture to track (:func:`random_patch_box` with the
    builders' settings: grey-level standard deviation at least 20, up to 20 draws).
    """
    return random_patch_box(image, rng, side_range=side_range, max_aspect=max_aspect, min_std=20.0, attempts=20)


def velocity_blur(vx: float, vy: float) -> Optional[np.ndarray]:
    """The motion-blur kernel of a move by ``(vx, vy)`` frame px in one frame: a line 0.8 times
    as long (odd), along the motion; None below :data:`BLUR_MIN_SPEED`.
    """
    speed = math.hypot(vx, vy)
    if speed <= BLUR_MIN_SPEED:
        return None
    return motion_blur_kernel(round(speed * 0.8) | 1, math.degrees(math.atan2(vy, vx)))


def cut_target(source: np.ndarray, rng: np.random.Generator, size: tuple[int, int]) -> tuple[Layer, np.ndarray]:
    """A target cut out of the photo ``source``: a textured region (``xywh`` in ``source``,
    returned too) resized to ``size`` = (w, h) pixels, as a rectangle or (2 in 5) an ellipse.
    """
    region = textured_region(source, rng, (0.2, 0.6), 2.0)
    x, y, w, h = (int(v) for v in region)
    patch = cv2.resize(source[y : y + h, x : x + w], size, interpolation=cv2.INTER_AREA)
    shape = "ellipse" if rng.random() < 0.4 else "rect"
    return Layer(patch, shape), region


def background_view(background: np.ndarray, affine: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The frame of ``size`` = (W, H) that sees ``background`` through ``affine`` (photo px ->
    frame px), float32, edges mirrored.
    """
    view: np.ndarray = cv2.warpAffine(
        background, affine, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    ).astype(np.float32)
    return view


def sequence_indices(count: int, progress: bool) -> Iterable[int]:
    """``range(count)``, with a tqdm progress bar when ``progress``."""
    indices: Iterable[int] = range(count)
    if progress:
        from tqdm import tqdm  # only when a bar is asked for

        indices = tqdm(indices, desc="sequences", dynamic_ncols=True)
    return indices


def output_problems(image_format: str, photo_split: str, photo_splits: Iterable[str]) -> list[str]:
    """What is wrong with a builder config's frame format and photo split (empty when fine)."""
    problems = []
    if image_format not in ("jpg", "png"):
        problems.append(f"image_format must be jpg or png, got {image_format!r}")
    splits = tuple(photo_splits)
    if photo_split not in splits:
        problems.append(f"photo_split must be one of {splits}")
    return problems


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


class Layer:
    """A moving patch: appearance, coverage mask and per-frame placement."""

    def __init__(self, patch: np.ndarray, shape: str) -> None:
        self.patch = patch.astype(np.float32)
        self.shape = shape
        self.mask = shape_mask(patch.shape[0], patch.shape[1], shape)
        self.size = (patch.shape[1], patch.shape[0])
        self.anchor = ((patch.shape[1] - 1) / 2, (patch.shape[0] - 1) / 2)

    def paint(self, canvas: np.ndarray, affine: np.ndarray, blur_kernel: Optional[np.ndarray] = None) -> None:
        """:func:`composite` this layer onto ``canvas`` (float32, in place), placed by ``affine``."""
        composite(canvas, self.patch, self.mask, affine, blur_kernel)


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
