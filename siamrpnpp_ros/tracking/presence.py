"""Presence: how confident the tracker is that its box is on the target.

A Siamese tracker always returns a box: when the target has left, it reports whatever
looks most like it, often with a high foreground score. The score map says more than its
peak does, and costs nothing extra to read, since the network already produced it; the
box's pixels compared with the selection's (``tracking/appearance.py``) say more again:

``logit_score``
    logit of the chosen anchor's foreground probability (the raw ``score``).
``peak_ratio``
    the highest score at least ``PEAK_EXCLUSION`` cells away from the chosen cell, divided by
    the chosen score: near 1 when something else in the search region looks as much like
    the template (a look-alike, or nothing in particular), near 0 for one clear peak.
``spread``
    the share of score-map cells whose best anchor scores above 0.5: a present target lights
    up a compact blob; clutter or an absent target light up scattered cells or none.
``colour_similarity``, ``pattern_similarity``
    the proposal's box against the selection's, in colour and in grey pattern
    (``tracking/appearance.py``).

``presence = sigmoid(w0 + w1 * logit_score + ... + w5 * pattern_similarity)``, with the weights
``TrackerConfig.presence_weights`` in ``FEATURE_NAMES`` order after the bias. The default
``(0, 1, 0, 0, 0, 0)`` makes presence the raw score exactly (pysot's behaviour); calibrated
weights (``eval/presence.py`` fits them on a validation benchmark, never on the test set) are
stored per model in ``tracking/config.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Cells around the chosen one that belong to the same peak (a 5x5 neighbourhood).
PEAK_EXCLUSION = 2
#: Weights that make presence equal to the raw score (no calibration).
RAW_SCORE_WEIGHTS: tuple[float, ...] = (0.0, 1.0, 0.0, 0.0, 0.0, 0.0)
FEATURE_NAMES = ("logit_score", "peak_ratio", "spread", "colour_similarity", "pattern_similarity")
#: How many of ``FEATURE_NAMES`` come from the score map; the rest from the box's pixels.
SCORE_MAP_FEATURES = 3
_EPSILON = 1e-6


@dataclass(frozen=True)
class PresenceFeatures:
    """The measurements presence is computed from (see the module docstring)."""

    logit_score: float
    peak_ratio: float
    spread: float
    colour_similarity: float
    pattern_similarity: float

    def as_array(self) -> np.ndarray:
        """The features in ``FEATURE_NAMES`` order, float64."""
        return np.array([getattr(self, name) for name in FEATURE_NAMES], dtype=np.float64)


def logit(probability: float) -> float:
    """``log(p / (1 - p))`` of ``probability``, clipped to ``[1e-6, 1 - 1e-6]`` first so it stays finite."""
    p = min(max(float(probability), _EPSILON), 1.0 - _EPSILON)
    return math.log(p / (1.0 - p))


def presence_features(
    score_map: np.ndarray, anchor_count: int, best: int, appearance: tuple[float, float]
) -> PresenceFeatures:
    """Features of one search: its foreground probabilities and the chosen box's appearance.

    ``score_map``: (A * S * S,) softmax foreground probabilities, anchor-major (index
    ``a * S * S + y * S + x``, the order of the head's ``cls`` channels). ``best``: index of
    the anchor the tracker chose. ``appearance``: ``(colour_similarity, pattern_similarity)``
    of its box (``appearance.similarity``).
    """
    cells = score_map.size // anchor_count
    side = int(round(math.sqrt(cells)))
    per_cell = score_map.reshape(anchor_count, side, side).max(axis=0)
    chosen = float(score_map[best])
    y, x = divmod(best % cells, side)
    away = per_cell.copy()
    away[max(0, y - PEAK_EXCLUSION) : y + PEAK_EXCLUSION + 1, max(0, x - PEAK_EXCLUSION) : x + PEAK_EXCLUSION + 1] = 0.0
    return PresenceFeatures(
        logit_score=logit(chosen),
        peak_ratio=float(away.max()) / max(chosen, _EPSILON),
        spread=float(np.count_nonzero(per_cell > 0.5)) / cells,
        colour_similarity=float(appearance[0]),
        pattern_similarity=float(appearance[1]),
    )


def presence_from_features(features: PresenceFeatures, score: float, weights: tuple[float, ...]) -> float:
    """Presence in [0, 1]; exactly ``score`` with the raw-score weights."""
    if tuple(weights) == RAW_SCORE_WEIGHTS:
        return float(score)
    z = weights[0] + float(np.dot(weights[1:], features.as_array()))
    return 1.0 / (1.0 + math.exp(-min(max(z, -60.0), 60.0)))
