"""The life cycle of one tracked target, without ROS: IDLE -> INITIALIZING -> TRACKING <-> LOST.

``TrackingSession`` wraps a tracker (``init``/``track``/``reset``, e.g. from
``tracking.factory.build_tracker``) and turns its per-frame scores into the status a
controller acts on. The ROS node is a thin adapter around it; tests drive it directly.

Why the defaults of ``LostPolicy`` are what they are
----------------------------------------------------
The thresholds compare the tracker's *presence* (``tracking/presence.py``): the confidence
that its box is on the target. Without calibrated presence weights that is the raw
``score``, the softmax foreground probability of the chosen anchor, which the reasoning
below is about; calibrated weights map presence onto the same scale (0.5 = as likely on the
target as not), so the thresholds keep their meaning. A controller needs
two things from the status: not to chase a box the tracker no longer believes in, and not
to stop and start on every blurred frame.

* ``lost_score_threshold = 0.5``: the classifier's own decision boundary (foreground more
  likely than background). pysot's long-term tracker uses 0.85, but that number is tuned
  for its trained long-term model, whose scores sit near 1.0 on a visible target; other
  models (and untrained ones) score a correctly tracked target well below 0.85, which
  would leave them LOST most of the time.
* ``lost_frames = 5``: one or two low scores are normal (motion blur, partial occlusion,
  a fast turn); five in a row is ~170 ms at 30 fps, short enough for a controller to stop
  chasing quickly and long enough not to flicker.
* ``recover_score_threshold = 0.6`` with ``recover_frames = 1``: back to TRACKING on the
  first confident frame, because a controller waiting for its target wants it back at
  once, but 0.1 above the lost threshold, so that a score hovering around 0.5 does not
  toggle the status on every frame (hysteresis in score; ``lost_frames`` is the
  hysteresis in time). Raise ``recover_frames`` where the wide search may lock onto
  look-alikes.

With the long-term tracker the node also uses these two thresholds as its
``confidence_low`` / ``confidence_high``, so the wider search starts on the first low
score and ends when the score is back, consistently with the published status.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from .tracker import TrackResult

Box = tuple[float, float, float, float]


class TrackStatus(enum.IntEnum):
    """Same numbers as ``TrackedBox.STATUS_*``."""

    IDLE = 0
    INITIALIZING = 1
    TRACKING = 2
    LOST = 3


class Tracker(Protocol):
    """What the session needs from a tracker (``SiamRPNTracker`` and ``LongTermTracker`` fit)."""

    def init(self, frame: np.ndarray, box: Sequence[float]) -> None:
        """Initialise on ``frame`` with the top-left ``(x, y, w, h)`` pixel ``box``."""
        ...

    def track(self, frame: np.ndarray) -> TrackResult:
        """Track the target in ``frame``; the result carries the box, score and presence."""
        ...

    def reset(self) -> None:
        """Forget the target."""
        ...


@dataclass(frozen=True)
class LostPolicy:
    """When a target counts as lost and when as found again (see the module docstring)."""

    lost_score_threshold: float = 0.5
    lost_frames: int = 5
    recover_score_threshold: float = 0.6
    recover_frames: int = 1

    def __post_init__(self) -> None:
        problems = []
        for name in ("lost_score_threshold", "recover_score_threshold"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                problems.append(f"{name} must be in [0, 1], got {value!r}")
        for name in ("lost_frames", "recover_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be an integer >= 1, got {value!r}")
        if not problems and self.recover_score_threshold < self.lost_score_threshold:
            problems.append(
                f"recover_score_threshold ({self.recover_score_threshold}) must be >= "
                f"lost_score_threshold ({self.lost_score_threshold}), or the status would flip back and forth"
            )
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class SessionResult:
    """The outcome of one frame: what the node publishes as a ``TrackedBox``.

    ``box`` is top-left ``(x, y, w, h)`` pixels: the tracker's estimate while TRACKING, the
    selection itself on INITIALIZING, and the last confident estimate while LOST (the zero
    box when IDLE). ``search_wide`` says the long-term tracker searched a wider region.
    ``score`` is the tracker's raw score; ``presence`` the confidence that the box is on the
    target (``tracking/presence.py``), which the status follows. ``tracker_result``: the
    tracker's own result for this frame (its unheld box, the presence features), None on
    INITIALIZING and IDLE.
    """

    status: TrackStatus
    target_id: int
    box: Box
    score: float
    age: int
    search_wide: bool = False
    presence: float = 1.0
    tracker_result: TrackResult | None = field(default=None, compare=False, repr=False)

    @property
    def center(self) -> tuple[float, float]:
        """The box's centre ``(cx, cy)`` in pixels."""
        x, y, w, h = self.box
        return x + w / 2.0, y + h / 2.0


def clip_selection(box: Sequence[float], frame_width: int, frame_height: int) -> tuple[Box, bool]:
    """Check a selected top-left ``(x, y, w, h)`` box and clip it to the image.

    Returns ``(box, clipped)``. Raises ValueError for a box that is not 4 finite numbers, has
    no positive width and height, or lies wholly outside the ``frame_width`` x
    ``frame_height`` image; a box partly outside is clipped to the part that overlaps.
    """
    values = [float(v) for v in box]
    if len(values) != 4:
        raise ValueError(f"a box is 4 numbers x, y, width, height, got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"box has non-finite values: {values}")
    x, y, w, h = values
    if w <= 0 or h <= 0:
        raise ValueError(f"box must have positive width and height, got {w:g} x {h:g}")
    left, top = max(x, 0.0), max(y, 0.0)
    right, bottom = min(x + w, float(frame_width)), min(y + h, float(frame_height))
    if right <= left or bottom <= top:
        raise ValueError(
            f"box (x={x:g}, y={y:g}, w={w:g}, h={h:g}) lies wholly outside the {frame_width}x{frame_height} image"
        )
    if (left, top, right, bottom) == (x, y, x + w, y + h):
        return (x, y, w, h), False  # untouched, without float round-off from right - left
    return (left, top, right - left, bottom - top), True


def align_long_term_thresholds(config: Any, policy: LostPolicy) -> Any:
    """``config`` (a ``TrackerConfig``) with the long-term search driven by ``policy``.

    The long-term tracker widens its search below ``confidence_low`` and narrows it again
    above ``confidence_high``; tying them to the lost/recover thresholds makes "searching
    wide" and the published LOST status start and end together.
    """
    return config.replace(confidence_low=policy.lost_score_threshold, confidence_high=policy.recover_score_threshold)


class TrackingSession:
    """One target at a time on top of a tracker, with the lost/recovered status logic.

    Not thread-safe: the node calls it from its single worker thread only.
    """

    def __init__(self, tracker: Tracker, policy: LostPolicy | None = None) -> None:
        self.tracker = tracker
        self.policy = policy or LostPolicy()
        self._status = TrackStatus.IDLE
        self._target_id = 0
        self._age = 0
        self._low_frames = 0
        self._high_frames = 0
        self._confident_box: Box = (0.0, 0.0, 0.0, 0.0)

    @property
    def status(self) -> TrackStatus:
        """The current status (IDLE until ``start``)."""
        return self._status

    @property
    def target_id(self) -> int:
        """The id of the current target, as given to ``start``."""
        return self._target_id

    @property
    def age(self) -> int:
        """Frames processed for the current target, the init frame counting as 1 (0 when IDLE)."""
        return self._age

    @property
    def is_active(self) -> bool:
        """True while a target is tracked (INITIALIZING, TRACKING or LOST)."""
        return self._status != TrackStatus.IDLE

    def start(self, frame: np.ndarray, box: Sequence[float], target_id: int) -> SessionResult:
        """Initialise on ``frame`` with ``box``, replacing any active target.

        If the tracker refuses the frame or box (ValueError), the session is unchanged, so an
        active target stays active.
        """
        # The trackers set their state only once init succeeds, so no reset() beforehand:
        # a refused box must not cost the target that is being tracked.
        self.tracker.init(frame, box)
        init_box = tuple(float(v) for v in box)
        self._status = TrackStatus.INITIALIZING
        self._target_id = int(target_id)
        self._age = 1
        self._low_frames = 0
        self._high_frames = 0
        self._confident_box = init_box  # type: ignore[assignment]
        return SessionResult(TrackStatus.INITIALIZING, self._target_id, self._confident_box, 1.0, 1)

    def step(self, frame: np.ndarray) -> SessionResult:
        """Track the target in the next frame and update the status; RuntimeError when IDLE."""
        if not self.is_active:
            raise RuntimeError("step() called without an active target; call start() first")
        return self.update(self.tracker.track(frame))

    def update(self, result: Any) -> SessionResult:
        """Take ``result``, this session's tracker's outcome on the next frame, and update the
        status; what ``step`` does after tracking. For callers that run the tracker themselves,
        such as ``MultiTargetTracker``'s batched pass. RuntimeError when IDLE.
        """
        if not self.is_active:
            raise RuntimeError("update() called without an active target; call start() first")
        presence = float(result.presence)
        box: Box = tuple(float(v) for v in result.box)  # type: ignore[assignment]
        self._age += 1
        policy = self.policy

        if self._status == TrackStatus.LOST:
            self._high_frames = self._high_frames + 1 if presence >= policy.recover_score_threshold else 0
            if self._high_frames >= policy.recover_frames:
                self._status = TrackStatus.TRACKING
                self._low_frames = 0
        else:
            self._low_frames = self._low_frames + 1 if presence < policy.lost_score_threshold else 0
            if self._low_frames >= policy.lost_frames:
                self._status = TrackStatus.LOST
                self._high_frames = 0
            else:
                self._status = TrackStatus.TRACKING

        if self._status == TrackStatus.TRACKING and presence >= policy.lost_score_threshold:
            self._confident_box = box
        published = box if self._status == TrackStatus.TRACKING else self._confident_box
        return SessionResult(
            self._status,
            self._target_id,
            published,
            float(result.score),
            self._age,
            search_wide=bool(result.search_wide),
            presence=presence,
            tracker_result=result,
        )

    def cancel(self) -> SessionResult | None:
        """Stop tracking. Returns the IDLE result to publish, or None if nothing was active."""
        if not self.is_active:
            return None
        target_id = self._target_id
        self.tracker.reset()
        self._status = TrackStatus.IDLE
        self._age = 0
        self._low_frames = self._high_frames = 0
        return SessionResult(TrackStatus.IDLE, target_id, (0.0, 0.0, 0.0, 0.0), 0.0, 0, presence=0.0)
