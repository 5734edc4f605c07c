"""Anchor target assignment for SiamRPN++ training (pysot's ``AnchorTarget``).

Every anchor of the ``S x S`` score map of a search crop gets a class label
(1 positive, 0 negative, -1 ignored) and regression deltas toward the target
box. The deltas are the exact inverse of the tracker's decode in
``tracking/tracker.py``::

    cx = dx * anchor_w + anchor_cx      dx = (target_cx - anchor_cx) / anchor_w
    cy = dy * anchor_h + anchor_cy      dy = (target_cy - anchor_cy) / anchor_h
    w  = exp(dw) * anchor_w             dw = log(target_w / anchor_w)
    h  = exp(dh) * anchor_h             dh = log(target_h / anchor_h)

Anchor and target centres are in search-crop pixels relative to the crop
centre ``((I - 1) / 2, (I - 1) / 2)`` (the anchors of
:func:`siamrpnpp_ros.tracking.generate_anchors`); sizes are crop pixels.

Label layouts match the head outputs: ``cls`` (A, S, S) pairs with logits
channel ``a`` (background) and ``A + a`` (foreground); ``delta`` (4, A, S, S)
pairs with loc channel ``k*A + a``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from siamrpnpp_ros.tracking.anchors import generate_anchors

from .boxes import center_to_corner, corner_iou

# Labels in the cls target.
POSITIVE = 1
NEGATIVE = 0
IGNORE = -1


@dataclass(frozen=True)
class AnchorTargetConfig:
    """pysot's ``TRAIN`` thresholds and sampling counts.

    Attributes:
        positive_iou: anchors with IoU strictly above this are positive (pysot ``THR_HIGH`` 0.6).
        negative_iou: anchors with IoU strictly below this are negative (``THR_LOW`` 0.3).
        max_positives: at most this many positives are kept per pair (``POS_NUM`` 16).
        total_samples: positives + negatives kept per pair (``TOTAL_NUM`` 64), so up to
            ``total_samples - kept positives`` negatives.
        max_negatives_negative_pair: negatives kept on a negative pair (``NEG_NUM`` 16),
            drawn from the ``negative_window`` x ``negative_window`` cells around the
            distractor's centre (pysot: 7).
        negative_window: side in score-map cells of that window.
    """

    positive_iou: float = 0.6
    negative_iou: float = 0.3
    max_positives: int = 16
    total_samples: int = 64
    max_negatives_negative_pair: int = 16
    negative_window: int = 7

    def __post_init__(self) -> None:
        if not 0.0 <= self.negative_iou <= self.positive_iou <= 1.0:
            raise ValueError(
                f"need 0 <= negative_iou <= positive_iou <= 1, got {self.negative_iou}, {self.positive_iou}"
            )
        if self.max_positives < 0 or self.total_samples < self.max_positives:
            raise ValueError("need 0 <= max_positives <= total_samples")
        if self.max_negatives_negative_pair < 0 or self.negative_window < 1:
            raise ValueError("max_negatives_negative_pair must be >= 0 and negative_window >= 1")


@dataclass(frozen=True)
class AnchorTargets:
    """Targets of one search crop.

    ``cls`` (A, S, S) int64 in {1, 0, -1}; ``delta`` (4, A, S, S) float32 (dx, dy, dw, dh);
    ``delta_weight`` (A, S, S) float32, ``1 / num_positives`` on positives, 0 elsewhere
    (so the L1 loss is a mean over positives); ``overlap`` (A, S, S) float32 IoU with the
    target (zeros for a negative pair).
    """

    cls: np.ndarray
    delta: np.ndarray
    delta_weight: np.ndarray
    overlap: np.ndarray

    @property
    def num_positives(self) -> int:
        """Anchors labelled positive."""
        return int((self.cls == POSITIVE).sum())

    @property
    def num_negatives(self) -> int:
        """Anchors labelled negative."""
        return int((self.cls == NEGATIVE).sum())


def encode_deltas(anchors: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Regression targets of ``anchors`` (N, 4) ``(cx, cy, w, h)`` toward one ``target`` (4,) ``(cx, cy, w, h)``.

    Returns (4, N) float32 rows dx, dy, dw, dh; the tracker's decode inverts it.
    """
    anchors = np.asarray(anchors, dtype=np.float64)
    tcx, tcy, tw, th = (float(v) for v in target)
    delta = np.empty((4, anchors.shape[0]), dtype=np.float64)
    delta[0] = (tcx - anchors[:, 0]) / anchors[:, 2]
    delta[1] = (tcy - anchors[:, 1]) / anchors[:, 3]
    delta[2] = np.log(tw / anchors[:, 2])
    delta[3] = np.log(th / anchors[:, 3])
    return delta.astype(np.float32)


def decode_deltas(anchors: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """The tracker's decode: (4, N) deltas + (N, 4) anchors -> (N, 4) boxes ``(cx, cy, w, h)``."""
    anchors = np.asarray(anchors, dtype=np.float64)
    delta = np.asarray(delta, dtype=np.float64)
    return np.stack(
        [
            delta[0] * anchors[:, 2] + anchors[:, 0],
            delta[1] * anchors[:, 3] + anchors[:, 1],
            np.exp(delta[2]) * anchors[:, 2],
            np.exp(delta[3]) * anchors[:, 3],
        ],
        axis=1,
    )


class AnchorTargetAssigner:
    """Labels the anchors of one search-crop geometry.

    Args:
        score_size: side ``S`` of the score map the model outputs for the training
            search crop (e.g. 25 for r50 at 255 px, 17 for alex at 255 px).
        stride: anchor stride in crop pixels (8).
        ratios, scales: anchor shapes as in ``TrackerConfig``.
        config: thresholds and counts.
    """

    def __init__(
        self,
        score_size: int,
        stride: int = 8,
        ratios: tuple[float, ...] = (0.33, 0.5, 1.0, 2.0, 3.0),
        scales: tuple[float, ...] = (8.0,),
        config: AnchorTargetConfig | None = None,
    ) -> None:
        self.score_size = int(score_size)
        self.stride = int(stride)
        self.config = config or AnchorTargetConfig()
        # (A*S*S, 4) cx, cy, w, h relative to the crop centre; row order a*S*S + i*S + j.
        self.anchors = generate_anchors(self.score_size, self.stride, ratios, scales).astype(np.float64)
        self.anchor_count = len(ratios) * len(scales)
        self._anchor_corners = center_to_corner(self.anchors)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(A, S, S)``."""
        return (self.anchor_count, self.score_size, self.score_size)

    def __call__(self, target: np.ndarray, rng: np.random.Generator, negative: bool = False) -> AnchorTargets:
        """Targets for a search crop whose (distractor, if ``negative``) box is ``target``.

        Args:
            target: ``(cx, cy, w, h)`` in crop pixels, centre relative to the crop centre.
            rng: source of the random subsampling (keeps runs reproducible).
            negative: the pair is negative (template and search show different
                objects): only negatives are labelled, near the distractor, as pysot
                does to teach the head to reject similar-looking objects.
        """
        cfg = self.config
        shape = self.shape
        cls = np.full(shape, IGNORE, dtype=np.int64)
        delta = np.zeros((4,) + shape, dtype=np.float32)
        delta_weight = np.zeros(shape, dtype=np.float32)
        target = np.asarray(target, dtype=np.float64)

        if negative:
            # The cell under the distractor's centre. pysot uses ceil(x / stride + 0.5), which
            # lands one cell right/below of the centre for a centred distractor; rounding
            # keeps the window centred on it.
            half = self.score_size // 2
            col = half + int(np.round(target[0] / self.stride))
            row = half + int(np.round(target[1] / self.stride))
            reach = cfg.negative_window // 2
            rows = slice(max(0, row - reach), max(0, min(self.score_size, row + reach + 1)))
            cols = slice(max(0, col - reach), max(0, min(self.score_size, col + reach + 1)))
            window = np.zeros(shape, dtype=bool)
            window[:, rows, cols] = True
            chosen = _subsample(np.flatnonzero(window), cfg.max_negatives_negative_pair, rng)
            cls.reshape(-1)[chosen] = NEGATIVE
            return AnchorTargets(cls, delta, delta_weight, np.zeros(shape, dtype=np.float32))

        delta[:] = encode_deltas(self.anchors, target).reshape((4,) + shape)
        overlap = corner_iou(self._anchor_corners, center_to_corner(target)).reshape(shape)
        positives = _subsample(np.flatnonzero(overlap > cfg.positive_iou), cfg.max_positives, rng)
        negatives = _subsample(np.flatnonzero(overlap < cfg.negative_iou), cfg.total_samples - len(positives), rng)
        cls.reshape(-1)[positives] = POSITIVE
        cls.reshape(-1)[negatives] = NEGATIVE
        if len(positives):
            # pysot's 1 / (pos_num + 1e-6): the loc loss becomes a mean over positives.
            delta_weight.reshape(-1)[positives] = 1.0 / (len(positives) + 1e-6)
        return AnchorTargets(cls, delta, delta_weight, overlap.astype(np.float32))


def _subsample(indices: np.ndarray, keep: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``keep`` of ``indices``, chosen uniformly without replacement."""
    if len(indices) <= keep:
        return indices
    return rng.choice(indices, size=max(keep, 0), replace=False)
