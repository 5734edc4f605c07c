"""Long-term tracking measures: VOT-LT precision, recall and F-score, absence reporting,
re-acquisition delay, and success on the frames where the target is present.

Inputs per sequence: the ground truth (N, 4) ``xywh`` with NaN rows where the target is
absent (:mod:`.longterm_builder` writes them so, as VOT-LT and LaSOT do), the tracker's
boxes (N, 4), its *confidence* per frame (0..1, how sure it is that the box is on the
target) and whether it reports the target *present* per frame. A tracker that reports
neither counts as confidence 1 and present on every frame. Frame 0 is the initialisation
(the ground-truth box is given to the tracker) and is left out of every measure below
except the success AUC, which keeps OTB's convention.

Definitions (``IoU``: intersection over union of the tracker's and the ground-truth box,
0 on absent frames and for missing boxes):

* **Tracking precision** at a confidence threshold ``tau``: the mean IoU over the frames
  where the tracker's confidence is ``>= tau`` (absent frames count IoU 0). A sequence
  where no frame reaches ``tau`` has no precision at ``tau`` and is left out of the mean
  over sequences there.
* **Tracking recall** at ``tau``: the mean over the frames where the target is present of
  the IoU, counted 0 where the confidence is ``< tau``.
* **F-score** at ``tau``: ``2 Pr Re / (Pr + Re)`` (0 when both are 0), where ``Pr`` and
  ``Re`` are the means over sequences (each sequence weighs the same). Reported: the
  maximum over ``tau`` (**F max**), with the ``tau`` that gives it and ``Pr``, ``Re``
  there. The thresholds tried are the distinct confidences the tracker gave (frames 1..,
  all sequences; at most ``MAX_THRESHOLDS``, then evenly spaced quantiles of them), so
  the maximum is exact for up to that many distinct values.
* **Absent frames reported absent**: of all frames where the target is absent (all
  sequences pooled), the share the tracker reported absent. **Present frames reported
  absent**: of all frames where it is present, the share the tracker reported absent
  (false alarms of absence).
* **Re-acquisition delay**: for every return of the target (the first present frame ``r``
  after a run of absent frames), the number of frames from ``r`` to the first frame
  ``t >= r`` where the tracker reports the target present *and* its box overlaps the
  ground truth (IoU > 0): ``t - r`` (0 when it has it on the very frame it returns).
  Where that never happens before the sequence ends, the delay is the remaining length
  ``N - r`` (frames ``r .. N-1``), and the return counts as *not re-acquired*. Searching
  continues across later absences. Reported: the mean and median over all returns of all
  sequences, and the number not re-acquired.
* **Success AUC (present frames)**: OTB's success AUC (:mod:`.metrics`) over the frames
  where the target is present (absent frames are left out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .metrics import SequenceScore, TrackerSummary, _as_boxes, overlap_ratio, score_sequence, valid_groundtruth

MAX_THRESHOLDS = 1000


def present_frames(groundtruth: np.ndarray) -> np.ndarray:
    """Mask of frames where the target is present (a finite box with positive size)."""
    return valid_groundtruth(groundtruth)


def reacquisition_delays(present: np.ndarray, reported_present: np.ndarray, iou: np.ndarray) -> list[tuple[int, bool]]:
    """``(delay, re-acquired)`` for every return of the target (see the module docstring)."""
    present = np.asarray(present, dtype=bool)
    found = np.asarray(reported_present, dtype=bool) & (np.asarray(iou) > 0)
    count = len(present)
    returns = [t for t in range(1, count) if present[t] and not present[t - 1]]
    delays = []
    for start in returns:
        hits = np.flatnonzero(found[start:])
        delays.append((int(hits[0]), True) if len(hits) else (count - start, False))
    return delays


@dataclass(frozen=True)
class LongTermSequenceScore:
    """Per-frame material of one tracker on one sequence, frames 1.. (frame 0 is the init).

    ``iou``: IoU with the ground truth (0 where absent); ``confidence``: the tracker's;
    ``present``: the ground truth has the target; ``reported_present``: the tracker says so.
    ``delays``: ``(delay, re-acquired)`` per return; ``success``: OTB scores on the present
    frames (frame 0 included); ``seconds``: tracking time (NaN when unknown).
    """

    name: str
    iou: np.ndarray
    confidence: np.ndarray
    present: np.ndarray
    reported_present: np.ndarray
    delays: tuple[tuple[int, bool], ...]
    success: SequenceScore
    seconds: float = float("nan")

    @property
    def frames(self) -> int:
        """Frames scored by the long-term measures (all but frame 0)."""
        return len(self.iou)

    def precision_recall(self, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tracking precision (NaN where no frame reaches the threshold) and recall at each threshold."""
        predicted = self.confidence[None, :] >= np.asarray(thresholds, dtype=np.float64)[:, None]
        credited = np.where(predicted, self.iou[None, :], 0.0)
        counts = predicted.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(counts > 0, credited.sum(axis=1) / np.maximum(counts, 1), np.nan)
        present = int(self.present.sum())
        recall = credited[:, self.present].sum(axis=1) / present if present else np.full(len(thresholds), np.nan)
        return precision, recall


def long_term_score(
    name: str,
    groundtruth: np.ndarray,
    boxes: np.ndarray,
    confidence: np.ndarray | None = None,
    present: np.ndarray | None = None,
    seconds: float = float("nan"),
) -> LongTermSequenceScore:
    """Score one run: ``confidence`` and ``present`` per frame (None: 1 and True everywhere)."""
    gt, predictions = _as_boxes(groundtruth), _as_boxes(boxes)
    count = len(gt)
    if len(predictions) != count:
        raise ValueError(f"{len(predictions)} predicted boxes for {count} ground-truth frames")
    confidence = np.ones(count) if confidence is None else np.asarray(confidence, dtype=np.float64).reshape(-1)
    reported = np.ones(count, dtype=bool) if present is None else np.asarray(present, dtype=bool).reshape(-1)
    if len(confidence) != count or len(reported) != count:
        raise ValueError(f"confidence and presence need {count} values, got {len(confidence)} and {len(reported)}")
    confidence = np.nan_to_num(confidence, nan=0.0)
    visible = present_frames(gt)
    iou = np.where(visible, overlap_ratio(np.nan_to_num(gt), predictions), 0.0)
    return LongTermSequenceScore(
        name=name,
        iou=iou[1:],
        confidence=confidence[1:],
        present=visible[1:],
        reported_present=reported[1:],
        delays=tuple(reacquisition_delays(visible, reported, iou)),
        success=score_sequence(name, gt, predictions, seconds),
        seconds=float(seconds),
    )


def confidence_thresholds(scores: tuple[LongTermSequenceScore, ...], limit: int = MAX_THRESHOLDS) -> np.ndarray:
    """The thresholds tried for F max: the distinct confidences (at most ``limit``, ascending)."""
    values = np.unique(np.concatenate([s.confidence for s in scores])) if scores else np.zeros(0)
    if len(values) > limit:
        values = np.unique(np.quantile(values, np.linspace(0.0, 1.0, limit)))
    return values if len(values) else np.array([1.0])


def _column_means(rows: list[np.ndarray], width: int) -> np.ndarray:
    """Mean of each column over the rows where it is not NaN (NaN where none is)."""
    if not rows:
        return np.full(width, np.nan)
    table = np.array(rows, dtype=np.float64)
    defined = ~np.isnan(table)
    counts = defined.sum(axis=0)
    sums = np.where(defined, table, 0.0).sum(axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


@dataclass(frozen=True)
class LongTermSummary:
    """A tracker's long-term results over a benchmark (see the module docstring)."""

    tracker: str
    sequences: tuple[LongTermSequenceScore, ...] = field(default_factory=tuple)

    @cached_property
    def thresholds(self) -> np.ndarray:
        """The confidence thresholds the curves are evaluated at (see :func:`confidence_thresholds`)."""
        return confidence_thresholds(self.sequences)

    @cached_property
    def _curves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pairs = [s.precision_recall(self.thresholds) for s in self.sequences]
        precision = _column_means([p for p, _ in pairs], len(self.thresholds))
        recall = _column_means([r for _, r in pairs], len(self.thresholds))
        total = precision + recall
        with np.errstate(invalid="ignore", divide="ignore"):
            f_score = np.where(total > 0, 2 * precision * recall / total, 0.0)
        return precision, recall, np.where(np.isnan(total), np.nan, f_score)

    @property
    def precision_curve(self) -> np.ndarray:
        """Tracking precision at each of :attr:`thresholds` (NaN where no frame reaches it)."""
        return self._curves[0]

    @property
    def recall_curve(self) -> np.ndarray:
        """Tracking recall at each of :attr:`thresholds`."""
        return self._curves[1]

    @property
    def f_curve(self) -> np.ndarray:
        """F-score of :attr:`precision_curve` and :attr:`recall_curve` at each threshold (NaN where undefined)."""
        return self._curves[2]

    @cached_property
    def _best(self) -> int:
        curve = self.f_curve
        return int(np.nanargmax(curve)) if np.isfinite(curve).any() else -1

    def _at_best(self, values: np.ndarray) -> float:
        """``values`` (one per confidence threshold) at the threshold of F max; NaN without one."""
        return float(values[self._best]) if self._best >= 0 else float("nan")

    @property
    def f_score(self) -> float:
        """F max: the best F-score over the confidence thresholds."""
        return self._at_best(self.f_curve)

    @property
    def precision(self) -> float:
        """Tracking precision at the threshold of F max."""
        return self._at_best(self.precision_curve)

    @property
    def recall(self) -> float:
        """Tracking recall at the threshold of F max."""
        return self._at_best(self.recall_curve)

    @property
    def threshold(self) -> float:
        """The confidence threshold of F max (the lowest of equally good ones)."""
        return self._at_best(self.thresholds)

    @property
    def absent_frames(self) -> int:
        """Frames with the target absent, all sequences."""
        return int(sum((~s.present).sum() for s in self.sequences))

    @property
    def present_frames(self) -> int:
        """Frames with the target present, all sequences."""
        return int(sum(s.present.sum() for s in self.sequences))

    @property
    def absent_reported_absent(self) -> float:
        """Share of the absent frames (all sequences pooled) the tracker reported absent."""
        hits = sum(int((~s.present & ~s.reported_present).sum()) for s in self.sequences)
        return _ratio(hits, self.absent_frames)

    @property
    def present_reported_absent(self) -> float:
        """Share of the present frames (all sequences pooled) the tracker reported absent."""
        misses = sum(int((s.present & ~s.reported_present).sum()) for s in self.sequences)
        return _ratio(misses, self.present_frames)

    @property
    def delays(self) -> list[tuple[int, bool]]:
        """``(delay, re-acquired)`` for every return of the target, all sequences."""
        return [d for s in self.sequences for d in s.delays]

    @property
    def returns(self) -> int:
        """How often the target came back (all sequences)."""
        return len(self.delays)

    @property
    def not_reacquired(self) -> int:
        """Returns of the target that the tracker never re-acquired."""
        return sum(1 for _, found in self.delays if not found)

    @property
    def mean_delay(self) -> float:
        """Mean re-acquisition delay in frames (never re-acquired: the remaining length)."""
        return float(np.mean([d for d, _ in self.delays])) if self.delays else float("nan")

    @property
    def median_delay(self) -> float:
        """Median re-acquisition delay in frames (never re-acquired: the remaining length); NaN without returns."""
        return float(np.median([d for d, _ in self.delays])) if self.delays else float("nan")

    @cached_property
    def success(self) -> TrackerSummary:
        """OTB success / precision over the present frames."""
        return TrackerSummary(self.tracker, tuple(s.success for s in self.sequences))

    @property
    def auc(self) -> float:
        """Success AUC on the frames where the target is present."""
        return self.success.auc

    @property
    def fps(self) -> float:
        """Tracking speed over all sequences, frames per second (see ``TrackerSummary.fps``)."""
        return self.success.fps

    @property
    def frames(self) -> int:
        """Frames scored by the long-term measures (all but each sequence's frame 0)."""
        return int(sum(s.frames for s in self.sequences))


def seconds(frames: float, fps: float | None) -> float:
    """``frames`` at ``fps`` in seconds (NaN without a frame rate)."""
    return frames / fps if fps and math.isfinite(frames) else float("nan")
