"""Calibrate the presence model (``tracking/presence.py``) of one model on a validation benchmark.

The tracker runs over every sequence of a (long-term) validation benchmark as the node
runs it by default; each frame's presence features are labelled 1 when the box is on
the target (IoU with the ground truth at least ``on_target_iou``) and 0 otherwise: the
target is absent (NaN ground truth) or the box sits on something else. A logistic
regression on those labels gives ``TrackerConfig.presence_weights``, so that presence
reads as the probability that the box is on the target. The report also gives the fit on the
score-map features alone, which shows what the appearance features add.

Use only validation data for this (never the held-out test set)::

    python -m siamrpnpp_ros.eval.presence --benchmark VAL_DIR --model alex-w0.25 --out presence.json

``--config PARAMS.yaml`` runs the tracker with that parameters file's ``tracker`` section (the
node's ``--params-file``) instead of the model's preset: the features depend on the settings.

The printed weights go into ``BUNDLED_MODEL_PRESETS`` (``tracking/config.py``) for a bundled
model, or into a parameter file as ``tracker.presence_weights`` for any other checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from siamrpnpp_ros.tracking.config import load_tracker_config
from siamrpnpp_ros.tracking.factory import build_session
from siamrpnpp_ros.tracking.presence import FEATURE_NAMES, RAW_SCORE_WEIGHTS, SCORE_MAP_FEATURES
from siamrpnpp_ros.tracking.session import TrackingSession

from .metrics import overlap_ratio
from .ope import load_benchmark

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class PresenceSamples:
    """Per-frame features (N, 3) and labels (N,) 1 = box on the target, 0 = not."""

    features: np.ndarray
    labels: np.ndarray
    absent: np.ndarray  # (N,) True where the ground truth marks the target absent


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = 1e-3, iterations: int = 50) -> np.ndarray:
    """Weights ``(bias, w_1, ..., w_k)`` of a logistic regression, by Newton's method (IRLS).

    ``l2`` regularises the non-bias weights, which keeps them finite on separable data.
    """
    x = np.hstack([np.ones((len(features), 1)), np.asarray(features, dtype=np.float64)])
    y = np.asarray(labels, dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError("presence calibration needs frames of both kinds: on the target and not")
    weights = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2 * len(y))
    penalty[0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ weights, -60, 60)))
        gradient = x.T @ (p - y) + penalty * weights
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty) + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return weights


def logistic_presence(features: np.ndarray, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Presence of each row of ``features`` (N, k) under ``weights`` ``(bias, w_1, ..., w_k)``."""
    w = np.asarray(weights, dtype=np.float64)
    z = w[0] + np.asarray(features, dtype=np.float64) @ w[1:]
    presence: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return presence


def collect_samples(
    benchmark: Any, tracker_factory: Any, on_target_iou: float = 0.3, progress: bool = True
) -> PresenceSamples:
    """Run ``tracker_factory()`` sessions over ``benchmark`` (``eval.ope.load_benchmark``) and
    label each tracked frame (see the module docstring).
    """
    from tqdm import tqdm

    rows: list[np.ndarray] = []
    labels: list[float] = []
    absent: list[bool] = []
    for sequence in tqdm(benchmark, desc="presence samples", disable=not progress):
        session: TrackingSession = tracker_factory()
        frames = iter(sequence.frames())
        session.start(next(frames), sequence.groundtruth[0], target_id=1)
        for truth, frame in zip(sequence.groundtruth[1:], frames, strict=True):
            tracked = session.step(frame).tracker_result
            assert tracked is not None and tracked.features is not None
            gone = not np.all(np.isfinite(truth))
            box = np.asarray(tracked.box, dtype=np.float64)[None]
            iou = 0.0 if gone else float(overlap_ratio(box, np.asarray(truth, dtype=np.float64)[None])[0])
            rows.append(tracked.features.as_array())
            labels.append(1.0 if iou >= on_target_iou else 0.0)
            absent.append(gone)
    return PresenceSamples(np.array(rows).reshape(-1, len(FEATURE_NAMES)), np.array(labels), np.array(absent))


def operating_point(presence: np.ndarray, samples: PresenceSamples, threshold: float = 0.5) -> dict[str, float]:
    """Shares at one presence threshold: absent frames called absent, present frames called absent."""
    below = presence < threshold
    present = ~samples.absent
    return {
        "absent_detected": float(below[samples.absent].mean()) if samples.absent.any() else float("nan"),
        "present_false_absent": float(below[present].mean()) if present.any() else float("nan"),
        "off_target_detected": float(below[samples.labels == 0].mean())
        if (samples.labels == 0).any()
        else float("nan"),
    }


def threshold_for_false_absent(presence: np.ndarray, samples: PresenceSamples, budget: float) -> dict[str, float]:
    """The highest presence threshold that calls at most ``budget`` of the present frames absent,
    and the share of absent frames it calls absent there: what a controller that may be stopped
    for nothing that often can get from this presence.
    """
    present = np.sort(np.asarray(presence, dtype=np.float64)[~samples.absent])
    if len(present) == 0:
        raise ValueError("need frames where the target is present")
    # Frames strictly below the threshold count as absent: the threshold may rise up to the
    # presence of the first present frame that the budget cannot hold.
    allowed = int(np.floor(budget * len(present)))
    threshold = float(present[allowed]) if allowed < len(present) else float("inf")
    return {"false_absent_budget": budget, "threshold": threshold, **operating_point(presence, samples, threshold)}


def build_parser() -> argparse.ArgumentParser:
    """The presence calibration's argument parser."""
    parser = argparse.ArgumentParser(prog="python -m siamrpnpp_ros.eval.presence", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--benchmark", required=True, help="validation benchmark folder (never the test set)")
    add("--model", required=True)
    add("--weights", default=None, help="checkpoint (default: the bundled weights of --model)")
    add(
        "--config",
        default=None,
        help="parameters file whose tracker section replaces the model's preset (as the node's "
        "--params-file): calibrate with the settings the tracker will run with",
    )
    add("--on-target-iou", type=float, default=0.3)
    add("--max-sequences", type=int, default=None)
    add("--out", default=None, help="write the weights and operating points as JSON")
    add("--no-progress", action="store_true")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Fit presence weights as ``argv`` (default ``sys.argv[1:]``) says; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config = None
        if args.config:
            _, config = load_tracker_config(args.config, args.model)
        benchmark = load_benchmark(args.benchmark)
        if args.max_sequences:
            benchmark = benchmark[: args.max_sequences]
        samples = collect_samples(
            benchmark,
            lambda: build_session(args.model, args.weights, config=config),
            args.on_target_iou,
            progress=not args.no_progress,
        )
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"presence: error: {exc}", file=sys.stderr)
        return 2
    weights = fit_logistic(samples.features, samples.labels)
    fitted = logistic_presence(samples.features, weights)
    # The same fit without the appearance features: what they add.
    score_map = samples.features[:, :SCORE_MAP_FEATURES]
    score_map_weights = fit_logistic(score_map, samples.labels)
    score_map_fitted = logistic_presence(score_map, score_map_weights)
    raw = logistic_presence(samples.features, RAW_SCORE_WEIGHTS)  # the score itself
    report = {
        "model": args.model,
        "benchmark": str(args.benchmark),
        "config": args.config,
        "frames": int(len(samples.labels)),
        "on_target_share": float(samples.labels.mean()),
        "absent_share": float(samples.absent.mean()),
        "presence_weights": [round(float(w), 4) for w in weights],
        "feature_names": ["bias", *FEATURE_NAMES],
        "raw_score": {"weights": list(RAW_SCORE_WEIGHTS), **operating_point(raw, samples)},
        "calibrated": operating_point(fitted, samples),
        "score_map_only": {
            "weights": [round(float(w), 4) for w in score_map_weights],
            **operating_point(score_map_fitted, samples),
        },
        # At most 5 % of present frames called absent (the lost-target goal), per presence.
        "raw_score_at_5pct_false_absent": threshold_for_false_absent(raw, samples, 0.05),
        "calibrated_at_5pct_false_absent": threshold_for_false_absent(fitted, samples, 0.05),
        "score_map_only_at_5pct_false_absent": threshold_for_false_absent(score_map_fitted, samples, 0.05),
    }
    print(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
