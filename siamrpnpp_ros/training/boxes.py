"""Box conversions and IoU shared by the training pipeline.

Three box forms appear in training, always as float arrays in the last axis:

* ``xywh``: top-left corner and size, as in ``groundtruth.txt`` and the tracker's
  init box. The box covers pixels ``x .. x+w-1``, so its centre is
  ``x + (w - 1) / 2`` (the tracker's init convention, kept here so a training
  target sits where the tracker will look for it).
* ``center`` (``cx, cy, w, h``): centre and size, used for crop-space targets and
  anchors.
* ``corner`` (``x1, y1, x2, y2``): ``cx -/+ w/2``; continuous extents used only for
  IoU, as pysot computes anchor overlaps.
"""

from __future__ import annotations

import numpy as np


def xywh_to_center(box: np.ndarray) -> np.ndarray:
    """``(x, y, w, h)`` (pixels, covering ``x..x+w-1``) -> ``(cx, cy, w, h)``, centre ``x + (w-1)/2``."""
    box = np.asarray(box, dtype=np.float64)
    out: np.ndarray = box.copy()
    out[..., 0] = box[..., 0] + (box[..., 2] - 1) / 2
    out[..., 1] = box[..., 1] + (box[..., 3] - 1) / 2
    return out


def center_to_xywh(box: np.ndarray) -> np.ndarray:
    """Inverse of :func:`xywh_to_center`."""
    box = np.asarray(box, dtype=np.float64)
    out: np.ndarray = box.copy()
    out[..., 0] = box[..., 0] - (box[..., 2] - 1) / 2
    out[..., 1] = box[..., 1] - (box[..., 3] - 1) / 2
    return out


def center_to_corner(box: np.ndarray) -> np.ndarray:
    """``(cx, cy, w, h)`` -> ``(cx - w/2, cy - h/2, cx + w/2, cy + h/2)``."""
    box = np.asarray(box, dtype=np.float64)
    half_w = box[..., 2] / 2
    half_h = box[..., 3] / 2
    return np.stack([box[..., 0] - half_w, box[..., 1] - half_h, box[..., 0] + half_w, box[..., 1] + half_h], axis=-1)


def corner_iou(boxes: np.ndarray, target: np.ndarray) -> np.ndarray:
    """IoU of each ``corner`` box in ``boxes`` (..., 4) with one ``corner`` box ``target`` (4,).

    Continuous areas (``(x2 - x1) * (y2 - y1)``, no +1), as pysot's anchor IoU.
    Degenerate boxes give IoU 0 rather than NaN.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    inter_w = np.clip(np.minimum(boxes[..., 2], target[2]) - np.maximum(boxes[..., 0], target[0]), 0, None)
    inter_h = np.clip(np.minimum(boxes[..., 3], target[3]) - np.maximum(boxes[..., 1], target[1]), 0, None)
    inter = inter_w * inter_h
    area_boxes = np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)
    area_target = max(target[2] - target[0], 0.0) * max(target[3] - target[1], 0.0)
    union = area_boxes + area_target - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return iou


def valid_xywh(boxes: np.ndarray) -> np.ndarray:
    """Boolean mask of rows with finite values and positive width and height."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    valid: np.ndarray = np.all(np.isfinite(boxes), axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    return valid
