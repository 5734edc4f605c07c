"""The newest box of every target seen on ``tracked_box``, the tracker's rate and latency, and
what the tracker logged lately (so the operator sees a selection refused, a target LOST).

No ROS imports: the bridge hands in ``TargetUpdate`` values. Thread-safe (updated in the ROS
thread, read by the web server).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

IDLE_STATUS = "IDLE"
FORGET_IDLE_AFTER_S = 30.0  # an IDLE target stays listed this long
FORGET_SILENT_AFTER_S = 300.0  # any target without news this long is dropped from the list
RATE_TIMEOUT_S = 2.0  # no box for this long: rate 0
SMOOTHING = 0.1
TRACKER_MESSAGES_KEPT = 6
TRACKER_MESSAGES_SHOWN_S = 60.0


@dataclass(frozen=True)
class TargetUpdate:
    """One ``TrackedBox``: box as top-left ``x, y, width, height`` in source-image pixels;
    ``latency`` is the node's ``processing_latency`` in seconds; ``received`` the monotonic
    time it reached the console.
    """

    target_id: int
    status: str
    x: float
    y: float
    width: float
    height: float
    score: float
    age: int
    stamp_sec: int
    stamp_nanosec: int
    latency: float
    received: float

    @property
    def stamp_ns(self) -> int:
        """The header stamp in nanoseconds."""
        return self.stamp_sec * 1_000_000_000 + self.stamp_nanosec


def _smooth(average: float | None, value: float) -> float:
    return value if average is None else (1 - SMOOTHING) * average + SMOOTHING * value


class TargetBoard:
    """The newest box of each target, the smoothed box rate, latency and delay, and the tracker's
    recent log lines. Thread-safe: updated from the ROS thread, read by the web server.
    """

    def __init__(
        self,
        received_at: Callable[[int], float | None] = lambda stamp: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``received_at(stamp_ns)``: when the console received the camera frame of that stamp
        (for the delay from a frame's arrival to its box's arrival), or None.
        """
        self._received_at = received_at
        self._clock = clock
        self._lock = threading.Lock()
        self._targets: dict[int, TargetUpdate] = {}
        self._version = 0
        self._last_stamp: int | None = None
        self._last_box_time: float | None = None
        self._rate: float | None = None
        self._latency: float | None = None
        self._delay: float | None = None
        self._messages: deque[tuple[float, str, str]] = deque(maxlen=TRACKER_MESSAGES_KEPT)

    @property
    def version(self) -> int:
        """Increases with every update: the web server sends a new snapshot when it changed."""
        with self._lock:
            return self._version

    def update(self, target: TargetUpdate) -> None:
        """Store ``target`` as its id's newest box and update the rate, latency and delay."""
        with self._lock:
            self._targets[target.target_id] = target
            self._version += 1
            if target.status == IDLE_STATUS:
                return
            # One image gives one box per target: the rate counts images, not boxes.
            if target.stamp_ns != self._last_stamp:
                if self._last_box_time is not None and target.received > self._last_box_time:
                    self._rate = _smooth(self._rate, 1.0 / (target.received - self._last_box_time))
                self._last_box_time = target.received
                self._last_stamp = target.stamp_ns
            self._latency = _smooth(self._latency, target.latency)
        arrived = self._received_at(target.stamp_ns) if target.stamp_ns else None
        if arrived is not None and target.received >= arrived:
            with self._lock:
                self._delay = _smooth(self._delay, target.received - arrived)

    def note(self, level: str, text: str, received: float) -> None:
        """A line the tracker logged (``level``: INFO, WARN, ...), received at monotonic ``received``."""
        with self._lock:
            self._messages.append((received, level, text[:500]))
            self._version += 1

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready state for the page; forgets targets that have been IDLE or silent too long."""
        now = self._clock()
        with self._lock:
            for target_id, target in list(self._targets.items()):
                silent = now - target.received
                if silent > FORGET_SILENT_AFTER_S or (target.status == IDLE_STATUS and silent > FORGET_IDLE_AFTER_S):
                    del self._targets[target_id]
            recent = self._last_box_time is not None and now - self._last_box_time <= RATE_TIMEOUT_S
            return {
                "targets": [
                    {
                        "id": t.target_id,
                        "status": t.status,
                        "x": t.x,
                        "y": t.y,
                        "width": t.width,
                        "height": t.height,
                        "score": t.score,
                        "age": t.age,
                        "stamp": {"sec": t.stamp_sec, "nanosec": t.stamp_nanosec},
                        "latency_ms": 1000.0 * t.latency,
                        "seconds_since_update": max(0.0, now - t.received),
                    }
                    for t in sorted(self._targets.values(), key=lambda t: t.target_id)
                ],
                "tracker_fps": (self._rate or 0.0) if recent else 0.0,
                "latency_ms": None if self._latency is None else 1000.0 * self._latency,
                "delay_ms": None if self._delay is None else 1000.0 * self._delay,
                "tracker_messages": [
                    {"level": level, "text": text, "seconds_ago": max(0.0, now - received)}
                    for received, level, text in reversed(self._messages)
                    if now - received <= TRACKER_MESSAGES_SHOWN_S
                ],
            }
