"""Training crops and augmentation (pysot's ``Augmentation`` done on full frames).

A training crop is the square window the tracker would cut around the target,
rescaled so that the target's context-padded side ``s_z = sqrt((w+p)(h+p))``,
``p = context_amount * (w + h)``, spans ``exemplar_size`` output pixels (the
template is ``exemplar_size`` = 127 px, the search crop ``search_size`` = 255
px at the same scale). Then, as in pysot:

* **scale**: the window is widened/narrowed by ``1 + U(-scale, scale)`` per axis,
  so the target appears smaller/larger;
* **shift**: the target is displaced from the crop centre by ``U(-shift, shift)``
  output pixels per axis. This is SiamRPN++'s *spatial-aware sampling*:
  ``shift = 0`` reproduces the always-centred baseline that teaches a padded
  deep network a centre bias; the paper uses 64 for the search crop. Unlike
  pysot (which shifts in 511-patch pixels before the scale change and clips at
  the patch border), the offset here is exactly within ``shift`` output pixels;
* **colour** (PCA lighting), **blur** (motion or Gaussian), **flip**, **gray**
  (pair-level, applied to template and search alike).

Crops are float32 HxWx3, BGR, 0..255 (the models' input convention); parts of
the window outside the frame are filled with the frame's mean colour, as the
tracker pads. Boxes returned are ``(cx, cy, w, h)`` in crop pixels, with pixel
``(0, 0)``'s centre at the origin, so the crop centre is ``((n-1)/2, (n-1)/2)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Shared with the benchmark builders' compositor; random_patch_box (the target box of a
# self-supervised pair) is part of this module's API too.
from siamrpnpp_ros.material.compositor import motion_blur_kernel
from siamrpnpp_ros.material.compositor import random_patch_box as random_patch_box

# AlexNet's PCA colour augmentation constants (ImageNet RGB pixel covariance, values 0..1):
# eigenvalues and unit eigenvectors (columns). Scaled to 0..255 below.
_PCA_EIGENVALUES = np.array([0.2175, 0.0188, 0.0045])
_PCA_EIGENVECTORS = np.array(
    [
        [-0.5675, 0.7192, 0.4009],
        [-0.5808, -0.0045, -0.8140],
        [-0.5836, -0.6948, 0.4203],
    ]
)
_PCA_ALPHA_STD = 0.1


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation of one branch (template or search).

    Attributes:
        shift: maximum displacement of the target from the crop centre, output pixels per
            axis (uniform in ``[-shift, shift]``). 0 keeps the target exactly centred.
        scale: maximum relative change of the window side per axis (factor in
            ``[1 - scale, 1 + scale]``).
        blur: probability of blurring the crop.
        color: probability of the PCA lighting offset.
        flip: probability of a horizontal flip.
    """

    shift: float = 0.0
    scale: float = 0.0
    blur: float = 0.0
    color: float = 0.0
    flip: float = 0.0

    def __post_init__(self) -> None:
        if self.shift < 0 or not 0 <= self.scale < 1:
            raise ValueError(f"need shift >= 0 and 0 <= scale < 1, got shift={self.shift}, scale={self.scale}")
        for name in ("blur", "color", "flip"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")


#: pysot's siamrpn_r50 settings (DATASET.TEMPLATE / DATASET.SEARCH).
TEMPLATE_AUGMENT = AugmentConfig(shift=4, scale=0.05, blur=0.0, color=1.0, flip=0.0)
SEARCH_AUGMENT = AugmentConfig(shift=64, scale=0.18, blur=0.2, color=1.0, flip=0.0)


@dataclass(frozen=True)
class TrainingCrop:
    """A crop and where the target is in it.

    ``image``: (n, n, 3) float32 BGR 0..255. ``box``: ``(cx, cy, w, h)`` crop pixels, absolute
    (crop centre at ``(n-1)/2``). ``offset``: target centre minus crop centre, pixels.
    """

    image: np.ndarray
    box: np.ndarray

    @property
    def size(self) -> int:
        """The crop's side ``n`` in pixels."""
        return int(self.image.shape[0])

    @property
    def offset(self) -> np.ndarray:
        """Target centre minus crop centre ``(dx, dy)``, crop pixels."""
        return self.box[:2] - (self.size - 1) / 2

    @property
    def relative_box(self) -> np.ndarray:
        """``box`` with the centre relative to the crop centre (the anchors' frame)."""
        return np.array([*self.offset, self.box[2], self.box[3]], dtype=np.float64)


def context_side(width: float, height: float, context_amount: float = 0.5) -> float:
    """The tracker's context-padded target side ``sqrt((w+p)(h+p))``, ``p = amount*(w+h)`` (frame pixels)."""
    pad = context_amount * (width + height)
    return math.sqrt((width + pad) * (height + pad))


def _uniform(rng: np.random.Generator, limit: float) -> float:
    return float(rng.uniform(-limit, limit)) if limit > 0 else 0.0


def training_crop(
    frame: np.ndarray,
    target: np.ndarray,
    output_size: int,
    augment: AugmentConfig,
    rng: np.random.Generator,
    exemplar_size: int = 127,
    context_amount: float = 0.5,
    gray: bool = False,
    pad_color: np.ndarray | None = None,
) -> TrainingCrop:
    """Cut one augmented training crop around ``target``.

    Args:
        frame: HxWx3 uint8 BGR image.
        target: ``(cx, cy, w, h)`` in frame pixels (centre ``x + (w-1)/2`` of an ``xywh`` box).
        output_size: crop side in pixels (127 template, 255 search).
        augment: shift/scale/blur/colour/flip settings.
        rng: random source (all randomness comes from it).
        exemplar_size: side the context-padded target maps to (fixes the scale).
        context_amount: the tracker's context amount (0.5).
        gray: convert to gray (and back to 3 channels) first.
        pad_color: BGR fill outside the frame; defaults to the frame's mean colour.
    """
    cx, cy, w, h = (float(v) for v in target)
    if not (w > 0 and h > 0):
        raise ValueError(f"target must have positive size, got w={w}, h={h}")
    base_scale = exemplar_size / context_side(w, h, context_amount)  # crop px per frame px
    scale_x = base_scale / (1.0 + _uniform(rng, augment.scale))
    scale_y = base_scale / (1.0 + _uniform(rng, augment.scale))
    offset_x = _uniform(rng, augment.shift)
    offset_y = _uniform(rng, augment.shift)
    centre_out = (output_size - 1) / 2
    # Frame point (cx, cy) lands at the crop centre plus the offset.
    mapping = np.array(
        [
            [scale_x, 0.0, centre_out + offset_x - scale_x * cx],
            [0.0, scale_y, centre_out + offset_y - scale_y * cy],
        ]
    )
    if pad_color is None:
        pad_color = np.asarray(cv2.mean(frame)[:3])  # the frame's mean colour, like the tracker pads
    source = frame
    if gray:
        source = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        pad_color = np.full(3, float(np.mean(pad_color)))
    crop = cv2.warpAffine(
        source,
        mapping,
        (output_size, output_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=tuple(float(v) for v in pad_color),
    ).astype(np.float32)
    box = np.array([centre_out + offset_x, centre_out + offset_y, w * scale_x, h * scale_y], dtype=np.float64)

    if augment.color > 0 and rng.random() < augment.color:
        crop = pca_lighting(crop, rng)
    if augment.blur > 0 and rng.random() < augment.blur:
        crop = random_blur(crop, rng)
    if augment.flip > 0 and rng.random() < augment.flip:
        crop = np.ascontiguousarray(crop[:, ::-1])
        box[0] = (output_size - 1) - box[0]
    np.clip(crop, 0.0, 255.0, out=crop)
    return TrainingCrop(crop, box)


def pca_lighting(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """AlexNet-style PCA lighting: add one random RGB offset (a few grey levels) to every pixel."""
    alpha = rng.normal(0.0, _PCA_ALPHA_STD, size=3)
    offset_rgb = _PCA_EIGENVECTORS @ (alpha * _PCA_EIGENVALUES) * 255.0
    lit: np.ndarray = image + offset_rgb[::-1].astype(np.float32)  # RGB -> BGR
    return lit


def random_blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Motion blur (random direction, 5..21 px) or Gaussian blur (sigma 0.5..2.5), 50/50."""
    if rng.random() < 0.5:
        length = int(rng.integers(2, 11)) * 2 + 1
        kernel = motion_blur_kernel(length, float(rng.uniform(0, 180)))
        return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)
    sigma = float(rng.uniform(0.5, 2.5))
    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


# ---------------------------------------------------------------- self-supervised views
def augmented_view(
    image: np.ndarray,
    box: np.ndarray,
    rng: np.random.Generator,
    max_rotation_degrees: float = 12.0,
    scale_range: tuple[float, float] = (0.75, 1.3),
    max_aspect_change: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:
    """Another "frame" of a still image: rotated, rescaled and relit around the ``xywh`` ``box``.

    Returns ``(view, view_box)``: the warped image (same size, borders reflected so no
    artificial edges appear) and the axis-aligned ``xywh`` box around the warped patch
    corners. Used as the search image of a self-supervised pair, the template being the
    untouched image.
    """
    height, width = image.shape[:2]
    x, y, w, h = (float(v) for v in box)
    centre = (x + (w - 1) / 2, y + (h - 1) / 2)
    scale = math.exp(rng.uniform(math.log(scale_range[0]), math.log(scale_range[1])))
    stretch = 1.0 + rng.uniform(-max_aspect_change, max_aspect_change)
    angle = rng.uniform(-max_rotation_degrees, max_rotation_degrees)
    rotation = cv2.getRotationMatrix2D(centre, angle, 1.0)
    # Anisotropic scale about the centre, after the rotation.
    matrix = np.array([[scale * stretch, 0.0], [0.0, scale / stretch]]) @ rotation[:, :2]
    offset = np.array(centre) - matrix @ np.array(centre)
    affine = np.hstack([matrix, offset[:, None]])
    view = cv2.warpAffine(image, affine, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    corners = np.array([[x, y], [x + w - 1, y], [x, y + h - 1], [x + w - 1, y + h - 1]])
    moved = corners @ matrix.T + offset
    low, high = moved.min(axis=0), moved.max(axis=0)
    view_box = np.array([low[0], low[1], high[0] - low[0] + 1, high[1] - low[1] + 1])

    # Photometric change: contrast, brightness, per-channel gain, sensor noise.
    contrast = rng.uniform(0.75, 1.25)
    brightness = rng.uniform(-30, 30)
    gains = rng.uniform(0.9, 1.1, size=3)
    relit = view.astype(np.float32) * (contrast * gains).astype(np.float32) + np.float32(brightness)
    noise_sigma = rng.uniform(0.0, 4.0)
    if noise_sigma > 0.5:
        relit += rng.normal(0.0, noise_sigma, size=relit.shape).astype(np.float32)
    view = np.clip(relit, 0, 255).astype(np.uint8)
    return view, view_box
