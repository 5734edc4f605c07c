"""pysot's golden runs as tracker states, and which of their frames a closed-loop run can be
held to on any CPU (test/data/parity/README.md, "What is compared").

A golden row is pysot's box after a frame, and its box is its state: centre ``x + w/2``,
``y + h/2`` and size ``w, h`` after pysot's clip. Starting a step from that state makes one
step's error the kernels' rounding (about 1e-3 px at most here), whichever CPU runs it.

A closed-loop run carries its own state instead, which drifts from pysot's by up to the
tolerance. Where pysot's state lies that close to a rounding boundary of the next search crop
(its side is rounded, its corner floored), a drift within tolerance changes the crop by a
pixel and the rest of the trajectory is another one. That is a property of the golden run,
not of the CPU: a closed-loop comparison restarts from pysot's state at such frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest

BOX_TOLERANCE_PX = 0.01
SCORE_TOLERANCE = 1e-4

# The goldens print 6 decimals; a state within this of a clip bound was clipped there.
GOLDEN_ROUNDING_PX = 1e-6
# How far a closed-loop state may drift from pysot's and still pass: the box tolerance moves
# the crop corner by as much, and the search side (about 2 to 3 times the padded size) by
# up to three times as much.
CORNER_GUARD_PX = BOX_TOLERANCE_PX
SIDE_GUARD_PX = 3 * BOX_TOLERANCE_PX
MIN_TRACKED_SIDE_PX = 10.0  # pysot clips sizes to at least 10 px


@dataclass(frozen=True)
class State:
    """A tracker state in frame pixels: centre ``(cx, cy)`` and size ``(w, h)``."""

    center: tuple[float, float]
    size: tuple[float, float]


def _snap(value: float, bounds: Sequence[float]) -> float:
    for bound in bounds:
        if abs(value - bound) <= GOLDEN_ROUNDING_PX:
            return float(bound)
    return float(value)


def pysot_state_after(golden: np.ndarray, frame: int, frame_width: int, frame_height: int) -> State:
    """pysot's state after tracking ``frame`` (>= 1): what it searched ``frame + 1`` around.

    Values within the golden file's rounding of a clip bound are put back on it, so a state
    clipped to the image edge stays exactly there, as in pysot.
    """
    if frame < 1:
        raise ValueError("row 0 is the init box (centre x + (w - 1) / 2); init() gives that state")
    x, y, w, h = (float(v) for v in golden[frame, 1:5])
    return State(
        center=(_snap(x + w / 2, (0.0, frame_width)), _snap(y + h / 2, (0.0, frame_height))),
        size=(_snap(w, (MIN_TRACKED_SIDE_PX, frame_width)), _snap(h, (MIN_TRACKED_SIDE_PX, frame_height))),
    )


def crop_boundary_distances(state: State, config, frame_width: int, frame_height: int) -> tuple[float, float]:
    """(search side's distance to its rounding boundary, crop corner's distance to its floor
    boundary), in frame pixels, for the search pysot makes from ``state`` (FACTS.md, "Crop").

    A coordinate clipped to the image edge is exact in every run, so it counts as far.
    """
    w, h = state.size
    context = config.context_amount * (w + h)
    side = math.sqrt((w + context) * (h + context)) * config.instance_size / config.exemplar_size
    side_distance = abs(side - math.floor(side) - 0.5)
    half = (round(side) + 1) / 2
    corner_distance = math.inf
    for center, edge in zip(state.center, (frame_width, frame_height), strict=True):
        if center in (0.0, float(edge)):
            continue
        corner = center - half + 0.5
        corner_distance = min(corner_distance, abs(corner - round(corner)))
    return side_distance, corner_distance


def ill_conditioned_frames(golden: np.ndarray, config, frame_width: int, frame_height: int) -> list[int]:
    """Frames whose search, made from pysot's state after the frame before, changes when that
    state moves by a closed-loop drift within tolerance (frame 1 starts from init: never)."""
    frames = []
    for frame in range(2, len(golden)):
        side, corner = crop_boundary_distances(
            pysot_state_after(golden, frame - 1, frame_width, frame_height), config, frame_width, frame_height
        )
        if side < SIDE_GUARD_PX or corner < CORNER_GUARD_PX:
            frames.append(frame)
    return frames


def first_ill_conditioned_frame(golden: np.ndarray, config, frame_width: int, frame_height: int) -> int:
    """The first frame a closed-loop run cannot be held to pysot's (``len(golden)`` if none)."""
    return next(iter(ill_conditioned_frames(golden, config, frame_width, frame_height)), len(golden))


def track_from_pysot_states(tracker, frames, init_box, golden, restart_frames) -> np.ndarray:
    """Rows ``x, y, w, h, score`` per frame (row 0: the init box, score 1): ``init`` on frame 0,
    then ``track`` each frame, first restarting from pysot's state at each of ``restart_frames``.

    ``restart_frames = range(2, len(frames))`` replays pysot step by step (open loop);
    ``ill_conditioned_frames(...)`` runs closed loop wherever that is well conditioned.
    """
    height, width = frames[0].shape[:2]
    restart = set(restart_frames)
    tracker.init(frames[0], init_box)
    rows = [[*init_box, 1.0]]
    for index in range(1, len(frames)):
        if index in restart:
            state = pysot_state_after(golden, index - 1, width, height)
            tracker.set_state(state.center, state.size)
        result = tracker.track(frames[index])
        rows.append([*result.box, result.score])
    return np.asarray(rows, dtype=np.float64)


def assert_matches_pysot(ours: np.ndarray, golden: np.ndarray, label: str) -> None:
    """Every row's box within ``BOX_TOLERANCE_PX`` and score within ``SCORE_TOLERANCE`` of pysot's."""
    golden = golden[: len(ours)]
    box_error = np.abs(ours[:, :4] - golden[:, 1:5]).max(axis=1)
    score_error = np.abs(ours[:, 4] - golden[:, 5])
    bad = np.flatnonzero((box_error > BOX_TOLERANCE_PX) | (score_error > SCORE_TOLERANCE))
    if bad.size:
        first = int(bad[0])
        pytest.fail(
            f"{label}: {bad.size} frame(s) off; first bad frame {first}: ours {np.round(ours[first], 6).tolist()} "
            f"vs pysot {np.round(golden[first, 1:], 6).tolist()}; max box error {box_error.max():.3g} px, "
            f"max score error {score_error.max():.3g}"
        )
    print(f"{label}: max box error {box_error.max():.2e} px, max score error {score_error.max():.2e}")
