"""One-pass evaluation (OPE) metrics, as OTB / pysot-toolkit define them.

Boxes are ``(x, y, w, h)`` rows, top-left, pixels; a box's centre is
``x + (w - 1) / 2`` (pysot-toolkit's ``convert_bb_to_center``).

* **Success** curve: share of frames whose IoU with the ground truth is
  *greater than* each threshold in ``SUCCESS_THRESHOLDS`` (0, 0.05, ..., 1);
  **AUC** is the curve's mean (the area under the success plot).
* **Precision** curve: share of frames whose centre error (Euclidean, pixels) is
  *at most* each threshold in ``PRECISION_THRESHOLDS`` (0..50 px); reported at
  20 px.
* **Normalised precision**: centre error measured in units of the ground-truth
  size (``dx / w_gt``, ``dy / h_gt``), thresholds 0..0.5; reported at 0.2 as
  pysot-toolkit does (index 20 of the curve).

IoU uses continuous areas (``w * h``, no +1), as pysot-toolkit's ``overlap_ratio``.
Frames whose ground truth is missing (NaN, or width/height <= 0) are left out
of every metric; a missing or NaN prediction counts as a failure (IoU 0,
infinite error). Dataset scores are means over sequences (each sequence weighs
the same), as in OTB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORM_PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0
PRECISION_AT = 20.0  # pixels
NORM_PRECISION_AT = 0.2  # ground-truth sizes


def _as_boxes(boxes: np.ndarray) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] < 4:
        raise ValueError(f"boxes must be an (N, 4) array of x, y, w, h, got shape {array.shape}")
    return array[:, :4]


def valid_groundtruth(groundtruth: np.ndarray) -> np.ndarray:
    """Mask of frames with a usable ground truth (finite, positive width and height)."""
    gt = _as_boxes(groundtruth)
    valid: np.ndarray = np.all(np.isfinite(gt), axis=1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)
    return valid


def overlap_ratio(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of matching rows of two (N, 4) ``xywh`` arrays; NaN rows give 0."""
    a, b = _as_boxes(boxes_a), _as_boxes(boxes_b)
    left = np.maximum(a[:, 0], b[:, 0])
    right = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    top = np.maximum(a[:, 1], b[:, 1])
    bottom = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    intersection = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    union = (
        np.clip(a[:, 2], 0, None) * np.clip(a[:, 3], 0, None)
        + np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None)
        - intersection
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = intersection / union
    # Clipped: float rounding of x + w - x can push identical boxes a hair above 1.
    clipped: np.ndarray = np.clip(np.nan_to_num(np.where(union > 0, iou, 0.0), nan=0.0), 0.0, 1.0)
    return clipped


def box_centers(boxes: np.ndarray) -> np.ndarray:
    """(N, 2) centres ``x + (w - 1)/2, y + (h - 1)/2``."""
    b = _as_boxes(boxes)
    return np.stack([b[:, 0] + (b[:, 2] - 1) / 2, b[:, 1] + (b[:, 3] - 1) / 2], axis=1)


def center_errors(groundtruth: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Euclidean centre distance per frame, pixels (inf where the prediction is NaN)."""
    distance = np.linalg.norm(box_centers(groundtruth) - box_centers(predictions), axis=1)
    return np.where(np.isfinite(distance), distance, np.inf)


def normalized_center_errors(groundtruth: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Centre distance with x in units of the ground-truth width and y of its height."""
    gt = _as_boxes(groundtruth)
    delta = (box_centers(predictions) - box_centers(gt)) / np.maximum(gt[:, 2:4], 1e-16)
    distance = np.linalg.norm(delta, axis=1)
    return np.where(np.isfinite(distance), distance, np.inf)


def _check_lengths(groundtruth: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt, pred = _as_boxes(groundtruth), _as_boxes(predictions)
    if len(gt) != len(pred):
        raise ValueError(f"{len(pred)} predicted boxes for {len(gt)} ground-truth frames")
    mask = valid_groundtruth(gt)
    return gt[mask], pred[mask]


def _share_passing(
    groundtruth: np.ndarray,
    predictions: np.ndarray,
    thresholds: np.ndarray,
    per_frame: Callable[[np.ndarray, np.ndarray], np.ndarray],
    passes: np.ufunc,
) -> np.ndarray:
    """Share of valid frames whose ``per_frame`` value ``passes`` each threshold (zeros when
    no frame is valid): the one recipe of the success and precision curves.
    """
    gt, pred = _check_lengths(groundtruth, predictions)
    if len(gt) == 0:
        return np.zeros(len(thresholds))
    values = per_frame(gt, pred)
    curve: np.ndarray = passes(values[None, :], np.asarray(thresholds)[:, None]).mean(axis=1)
    return curve


def success_curve(
    groundtruth: np.ndarray, predictions: np.ndarray, thresholds: np.ndarray = SUCCESS_THRESHOLDS
) -> np.ndarray:
    """Share of valid frames with IoU > each threshold (zeros when no frame is valid)."""
    return _share_passing(groundtruth, predictions, thresholds, overlap_ratio, np.greater)


def precision_curve(
    groundtruth: np.ndarray, predictions: np.ndarray, thresholds: np.ndarray = PRECISION_THRESHOLDS
) -> np.ndarray:
    """Share of valid frames with centre error <= each threshold (pixels)."""
    return _share_passing(groundtruth, predictions, thresholds, center_errors, np.less_equal)


def normalized_precision_curve(
    groundtruth: np.ndarray, predictions: np.ndarray, thresholds: np.ndarray = NORM_PRECISION_THRESHOLDS
) -> np.ndarray:
    """Share of valid frames with normalised centre error <= each threshold."""
    return _share_passing(groundtruth, predictions, thresholds, normalized_center_errors, np.less_equal)


def area_under_curve(curve: np.ndarray) -> float:
    """Success AUC: the mean of the success curve over its evenly spaced thresholds."""
    return float(np.mean(curve))


def value_at(curve: np.ndarray, thresholds: np.ndarray, at: float) -> float:
    """The curve's value at threshold ``at`` (which must be one of ``thresholds``)."""
    index = int(np.argmin(np.abs(np.asarray(thresholds) - at)))
    if not np.isclose(thresholds[index], at):
        raise ValueError(f"{at} is not one of the thresholds")
    return float(curve[index])


class _CurveSummaries:
    """The single numbers read off the ``success``, ``precision`` and ``norm_precision``
    curves, for one sequence or the mean over a dataset (the AUC of the mean curve is the
    mean of the per-sequence AUCs).
    """

    if TYPE_CHECKING:
        # Provided by the subclasses, as dataclass fields (SequenceScore) or properties
        # (TrackerSummary); declared read-only here so that both may.
        @property
        def success(self) -> np.ndarray: ...
        @property
        def precision(self) -> np.ndarray: ...
        @property
        def norm_precision(self) -> np.ndarray: ...

    @property
    def auc(self) -> float:
        return area_under_curve(self.success)

    @property
    def precision_20(self) -> float:
        return value_at(self.precision, PRECISION_THRESHOLDS, PRECISION_AT)

    @property
    def norm_precision_02(self) -> float:
        return value_at(self.norm_precision, NORM_PRECISION_THRESHOLDS, NORM_PRECISION_AT)


@dataclass(frozen=True)
class SequenceScore(_CurveSummaries):
    """Metrics of one tracker on one sequence.

    ``frames``: frames with a valid ground truth (the ones scored). ``seconds``: tracking
    time of all ``tracked_frames`` (init included, decoding excluded), NaN when unknown.
    """

    name: str
    frames: int
    success: np.ndarray
    precision: np.ndarray
    norm_precision: np.ndarray
    tracked_frames: int = 0
    seconds: float = float("nan")

    @property
    def fps(self) -> float:
        """Tracking speed on this sequence, frames per second (NaN when not timed)."""
        if not np.isfinite(self.seconds) or self.seconds <= 0:
            return float("nan")
        return self.tracked_frames / self.seconds


def score_sequence(
    name: str, groundtruth: np.ndarray, predictions: np.ndarray, seconds: float = float("nan")
) -> SequenceScore:
    """All OPE curves of one sequence; ``seconds``: time spent tracking its frames."""
    return SequenceScore(
        name,
        int(valid_groundtruth(groundtruth).sum()),
        success_curve(groundtruth, predictions),
        precision_curve(groundtruth, predictions),
        normalized_precision_curve(groundtruth, predictions),
        len(_as_boxes(predictions)),
        float(seconds),
    )


def _mean_curve(curves: list[np.ndarray], thresholds: np.ndarray) -> np.ndarray:
    """The mean of per-sequence ``curves`` over ``thresholds`` (zeros when there are none)."""
    if not curves:
        return np.zeros(len(thresholds))
    mean: np.ndarray = np.mean(curves, axis=0)
    return mean


@dataclass(frozen=True)
class TrackerSummary(_CurveSummaries):
    """A tracker's OPE result over a dataset: per-sequence scores and their means.

    ``fps`` is all tracked frames over all tracking time (timed sequences only).
    """

    tracker: str
    sequences: tuple[SequenceScore, ...] = field(default_factory=tuple)

    @property
    def success(self) -> np.ndarray:
        """Mean success curve over the sequences (zeros without sequences)."""
        return _mean_curve([s.success for s in self.sequences], SUCCESS_THRESHOLDS)

    @property
    def precision(self) -> np.ndarray:
        """Mean precision curve over the sequences (zeros without sequences)."""
        return _mean_curve([s.precision for s in self.sequences], PRECISION_THRESHOLDS)

    @property
    def norm_precision(self) -> np.ndarray:
        """Mean normalised precision curve over the sequences (zeros without sequences)."""
        return _mean_curve([s.norm_precision for s in self.sequences], NORM_PRECISION_THRESHOLDS)

    @property
    def frames(self) -> int:
        """Frames scored, all sequences."""
        return int(sum(s.frames for s in self.sequences))

    @property
    def fps(self) -> float:
        """All tracked frames over all tracking time, frames per second (timed sequences only; NaN without any)."""
        timed = [s for s in self.sequences if np.isfinite(s.seconds) and s.seconds > 0]
        if not timed:
            return float("nan")
        return sum(s.tracked_frames for s in timed) / sum(s.seconds for s in timed)
