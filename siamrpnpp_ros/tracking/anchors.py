"""Anchor boxes and the cosine (Hanning) window over the score map, laid out as pysot flattens them.

Flattened index of anchor ``a`` at score-map row ``i``, column ``j``: ``a*S*S + i*S + j``
(``S`` = score size). This is the order in which ``cls``/``loc`` head outputs are flattened.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def anchor_shapes(stride: int, ratios: Sequence[float], scales: Sequence[float]) -> np.ndarray:
    """Anchor (width, height) pairs in search-crop pixels, shape (A, 2), float32.

    For each ratio r (outer loop) and scale s (inner loop): base width ``int(sqrt(stride**2 / r))``,
    base height ``int(base_width * r)``, both times s. The integer truncation is pysot's and
    decides the exact anchor sizes, e.g. (104, 32) for r = 0.33 at stride 8, scale 8.
    """
    area = stride * stride
    shapes = []
    for ratio in ratios:
        base_w = int(math.sqrt(area * 1.0 / ratio))
        base_h = int(base_w * ratio)
        for scale in scales:
            shapes.append((base_w * scale, base_h * scale))
    return np.asarray(shapes, dtype=np.float32).reshape(-1, 2)


def generate_anchors(score_size: int, stride: int, ratios: Sequence[float], scales: Sequence[float]) -> np.ndarray:
    """All anchors of a ``score_size`` x ``score_size`` map, shape (A*S*S, 4), float32.

    Columns are centre x, centre y, width, height in search-crop pixels, with the centre
    relative to the crop centre: cell (i, j) sits at ``(-(S//2)*stride + stride*j,
    -(S//2)*stride + stride*i)``. Rows follow the flattening order ``a*S*S + i*S + j``.
    """
    if score_size < 1:
        raise ValueError(f"score_size must be >= 1, got {score_size}")
    shapes = anchor_shapes(stride, ratios, scales)
    anchor_count = shapes.shape[0]
    offsets = (np.arange(score_size) - score_size // 2) * stride
    centre_x = np.broadcast_to(offsets[None, :], (score_size, score_size)).reshape(-1)
    centre_y = np.broadcast_to(offsets[:, None], (score_size, score_size)).reshape(-1)
    anchors = np.empty((anchor_count, score_size * score_size, 4), dtype=np.float32)
    anchors[:, :, 0] = centre_x.astype(np.float32)[None, :]
    anchors[:, :, 1] = centre_y.astype(np.float32)[None, :]
    anchors[:, :, 2] = shapes[:, 0:1]
    anchors[:, :, 3] = shapes[:, 1:2]
    return anchors.reshape(-1, 4)


def cosine_window(score_size: int, anchor_count: int) -> np.ndarray:
    """Outer product of two ``np.hanning(score_size)``, flattened and tiled per anchor, float64.

    Shape (A*S*S,), same order as ``generate_anchors``. ``np.hanning`` has zero end points,
    so the border cells get no window bonus at all.
    """
    hanning = np.hanning(score_size)
    return np.tile(np.outer(hanning, hanning).reshape(-1), anchor_count)
