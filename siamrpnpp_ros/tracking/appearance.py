"""Appearance: whether the tracker's box still looks like the target that was selected.

A Siamese network scores whatever fills its window against the template it learnt to
match, and a small network scores a lamp-post sign or a patch of wall about as high as the
target (README, "Default model"). A direct comparison of the box's pixels with the
selection's tells those apart more often, at a cost of about 0.2 ms a frame on this
project's 2-core CPU:

``colour_similarity``
    Bhattacharyya coefficient of the hue-saturation histograms (``HUE_BINS`` x
    ``SATURATION_BINS``) of the box's pixels and of the selection's: 1 for the same colour
    distribution, 0 for disjoint ones; or that of the histograms of the boxes' middles
    (``CENTRE_FRACTION``) when it is higher. Pose, shape and a few pixels of misalignment
    hardly change it; a grey target against a grey background is where it says least.
``pattern_similarity``
    Normalised cross-correlation of ``THUMBNAIL_SIDE``-pixel grey thumbnails of the two
    boxes: 1 for the same brightness pattern, near 0 for unrelated ones, negative for an
    inverted one. It sees shape where colour cannot, and changes with pose.

A box whose pixels hardly vary (``MIN_TEXTURE``) looks like nothing, unless the selection
did too: see ``similarity``.

The reference is the selection's box on the selection's frame and is never updated: a
reference that followed the box would follow its drift too.

Computed from pixels rather than from the network's features so that it works the same for
every back-end (PyTorch, fused, ONNX Runtime), whose contract is template kernels in and
``cls``/``loc`` out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

# 5 degrees of hue and 16 saturation steps: fine enough that a look-alike whose colours differ
# by a few tens of percent per channel no longer shares most of its bins with the target (16 x 8
# bins did not tell them apart; README, "Default model").
HUE_BINS = 36
SATURATION_BINS = 16
# The box's rim is where the background is: a round target leaves a fifth of its box to it, and
# one that moved onto differently coloured ground lost enough colour similarity there to be
# called absent in full view. The middle 70 % of the width and height does not see that ground,
# but compared alone it lost small targets in dark clothes, whose surroundings had kept them
# similar. Taking the better of the two comparisons raised the long-term validation F-score from
# 0.688 to 0.707 (README, "Default model").
CENTRE_FRACTION = 0.7
THUMBNAIL_SIDE = 24
# Grey levels (0-255): a box whose pixels' standard deviation is below this shows no object: a
# covered lens, a frame that a camera fills with one value when its signal drops, a blown-out
# sky. Its histogram says little: a uniform grey lands in the bin that grey, black and dark
# pixels share, which a target in dark clothing fills (colour similarity 0.49 to vtest.avi's
# pedestrian). So it is treated as a box outside the frame. Camera noise keeps real footage
# above it.
MIN_TEXTURE = 2.0
#: Boxes with less than this many pixels inside the frame on either side have no appearance.
MIN_SIDE_PIXELS = 2
# Width of the frame copy that ``colour_match_map`` works on: a 60 px target in 640x480 still
# covers 15 of its pixels, and the map costs a fraction of a millisecond.
COLOUR_MAP_WIDTH = 160


@dataclass(frozen=True)
class AppearanceDescriptor:
    """What a box looks like: ``histogram`` and ``centre_histogram`` (``HUE_BINS *
    SATURATION_BINS``,) of the whole box and of its middle (``centre_region``), each summing to
    1, ``thumbnail`` (``THUMBNAIL_SIDE``, ``THUMBNAIL_SIDE``) grey, zero-mean, unit-norm (all
    zero for a uniform box), and ``textured``: whether the box's grey levels vary by
    ``MIN_TEXTURE`` or more.
    """

    histogram: np.ndarray
    centre_histogram: np.ndarray
    thumbnail: np.ndarray
    textured: bool


def box_pixels(frame: np.ndarray, box: Sequence[float]) -> np.ndarray | None:
    """The pixels of top-left ``(x, y, w, h)`` ``box`` inside ``frame``; None when less than
    ``MIN_SIDE_PIXELS`` on a side lie inside.
    """
    x, y, w, h = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return None
    height, width = frame.shape[:2]
    x0, y0 = max(0, math.floor(x)), max(0, math.floor(y))
    x1, y1 = min(width, math.ceil(x + w)), min(height, math.ceil(y + h))
    if x1 - x0 < MIN_SIDE_PIXELS or y1 - y0 < MIN_SIDE_PIXELS:
        return None
    return frame[y0:y1, x0:x1]


def centre_region(pixels: np.ndarray) -> np.ndarray:
    """The middle ``CENTRE_FRACTION`` of ``pixels``' height and width (at least one pixel)."""
    height, width = pixels.shape[:2]
    top = int(round(height * (1.0 - CENTRE_FRACTION) / 2.0))
    left = int(round(width * (1.0 - CENTRE_FRACTION) / 2.0))
    return pixels[top : max(top + 1, height - top), left : max(left + 1, width - left)]


def hue_saturation_histogram(hsv: np.ndarray) -> np.ndarray:
    """The share of ``hsv``'s pixels (HxWx3 uint8, OpenCV's HSV) in each ``HUE_BINS`` x
    ``SATURATION_BINS`` bin, flat.
    """
    counts = cv2.calcHist([hsv], [0, 1], None, [HUE_BINS, SATURATION_BINS], [0, 180, 0, 256]).ravel()
    return counts.astype(np.float64) / max(float(counts.sum()), 1.0)


def describe(frame: np.ndarray, box: Sequence[float]) -> AppearanceDescriptor | None:
    """The descriptor of ``box`` on ``frame`` (HxWx3 uint8 BGR); None for a box (almost) outside it."""
    pixels = box_pixels(frame, box)
    if pixels is None:
        return None
    hsv = cv2.cvtColor(pixels, cv2.COLOR_BGR2HSV)  # once: the middle is a view of it
    grey = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
    thumbnail = cv2.resize(grey, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), interpolation=cv2.INTER_AREA).astype(np.float64)
    thumbnail -= thumbnail.mean()
    norm = float(np.linalg.norm(thumbnail))
    thumbnail = thumbnail / norm if norm > 1e-9 else np.zeros_like(thumbnail)
    return AppearanceDescriptor(
        histogram=hue_saturation_histogram(hsv),
        centre_histogram=hue_saturation_histogram(centre_region(hsv)),
        thumbnail=thumbnail,
        textured=float(grey.std()) >= MIN_TEXTURE,
    )


def similarity(reference: AppearanceDescriptor | None, current: AppearanceDescriptor | None) -> tuple[float, float]:
    """``(colour_similarity, pattern_similarity)`` of two descriptors; ``(0, 0)`` when either is
    missing (a box outside the frame looks like nothing) or when ``current`` is untextured and
    ``reference`` is not (a blank view does not show a target that had texture).
    """
    if reference is None or current is None or (reference.textured and not current.textured):
        return 0.0, 0.0
    colour = max(
        float(np.sqrt(reference.histogram * current.histogram).sum()),
        float(np.sqrt(reference.centre_histogram * current.centre_histogram).sum()),
    )
    pattern = float((reference.thumbnail * current.thumbnail).sum())
    return min(colour, 1.0), pattern


def colour_match_map(
    frame: np.ndarray, reference: AppearanceDescriptor, box_size: tuple[float, float]
) -> tuple[np.ndarray, float]:
    """How much each place of ``frame`` looks like ``reference``'s colours, averaged over a box
    of the target's size ``box_size`` (w, h in frame pixels): ``(map, frame pixels per map
    pixel)``, values in [0, 1], on a copy of the frame ``COLOUR_MAP_WIDTH`` pixels wide.

    Histogram ratio back-projection: each pixel gets min(1, reference share / frame share) of
    its hue-saturation bin, so colours that fill the whole frame weigh little and the
    target's own colours stand out where they gather. With the tile scores of a lost frame it
    took 0.9 ms (median, 640x480, 20 tiles, on the 2-core CPU at load average 4).
    """
    height, width = frame.shape[:2]
    shrink = max(1.0, width / COLOUR_MAP_WIDTH)
    size = (max(1, round(width / shrink)), max(1, round(height / shrink)))
    hsv = cv2.cvtColor(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2HSV)
    ratio = np.minimum(reference.histogram / np.maximum(hue_saturation_histogram(hsv), 1e-12), 1.0)
    ratio[reference.histogram <= 0] = 0.0
    ratio_table = ratio.reshape(HUE_BINS, SATURATION_BINS).astype(np.float32)
    projected = cv2.calcBackProject([hsv], [0, 1], ratio_table, [0, 180, 0, 256], 1.0).astype(np.float32)
    kernel = (max(1, round(box_size[0] / shrink)), max(1, round(box_size[1] / shrink)))
    return cv2.boxFilter(projected, -1, kernel, normalize=True, borderType=cv2.BORDER_CONSTANT), shrink
