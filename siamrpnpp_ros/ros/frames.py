"""Received frames between the executor thread and the tracking worker (no ROS imports).

``FrameCache`` keeps the last second or so of frames, bounded in count *and* bytes, so a
selection drawn on an image that is already a few hundred milliseconds old can still be
initialised on exactly that image. ``WorkSlot`` hands the worker the newest frame only
(each new frame replaces the pending one, so no backlog can build up) plus commands
(selections, cancels, parameter changes) that must run between two frames.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ReceivedFrame:
    """One accepted image, not yet decoded.

    ``message`` is the ROS image message (decoded by the worker only when used), ``stamp_ns``
    its header stamp in nanoseconds, ``sequence`` the count of frames accepted before it
    (gaps between processed sequences are dropped frames), ``received`` the monotonic
    arrival time and ``nbytes`` its payload size.
    """

    message: Any
    stamp_ns: int
    sequence: int
    received: float
    nbytes: int
    decode: Callable[[], Any] = field(compare=False, repr=False)

    @property
    def header(self) -> Any:
        """The image message's header."""
        return self.message.header


class FrameCache:
    """The newest frames in arrival order, at most ``max_frames`` and ``max_bytes``. Thread-safe."""

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        if max_frames < 1 or max_bytes < 1:
            raise ValueError("a frame cache needs room for at least one frame")
        self.max_frames = int(max_frames)
        self.max_bytes = int(max_bytes)
        self._frames: deque[ReceivedFrame] = deque()
        self._bytes = 0
        self._lock = threading.Lock()

    def add(self, frame: ReceivedFrame) -> None:
        """Append ``frame``, evicting the oldest ones beyond the limits (the newest always stays)."""
        with self._lock:
            self._frames.append(frame)
            self._bytes += frame.nbytes
            while len(self._frames) > 1 and (len(self._frames) > self.max_frames or self._bytes > self.max_bytes):
                self._bytes -= self._frames.popleft().nbytes

    def find(self, stamp_ns: int) -> ReceivedFrame | None:
        """The newest frame with this exact stamp, or None."""
        with self._lock:
            for frame in reversed(self._frames):
                if frame.stamp_ns == stamp_ns:
                    return frame
        return None

    def newest(self) -> ReceivedFrame | None:
        """The last frame added, or None when empty."""
        with self._lock:
            return self._frames[-1] if self._frames else None

    def after(self, sequence: int) -> list[ReceivedFrame]:
        """Frames that arrived after the one numbered ``sequence``, oldest first."""
        with self._lock:
            return [frame for frame in self._frames if frame.sequence > sequence]

    def clear(self) -> None:
        """Drop every frame."""
        with self._lock:
            self._frames.clear()
            self._bytes = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)

    @property
    def nbytes(self) -> int:
        """Payload bytes of the frames held."""
        with self._lock:
            return self._bytes


class WorkSlot:
    """A single latest-frame slot plus a command queue, waited on by one worker thread."""

    def __init__(self, max_commands: int = 64) -> None:
        self._condition = threading.Condition()
        self._frame: ReceivedFrame | None = None
        # Bounded: a flood of selections must not grow memory; the oldest are dropped.
        self._commands: deque[Any] = deque(maxlen=max_commands)
        self._closed = False

    def put_frame(self, frame: ReceivedFrame) -> ReceivedFrame | None:
        """Make ``frame`` the pending one; returns the frame it replaced unprocessed, if any."""
        with self._condition:
            replaced, self._frame = self._frame, frame
            self._condition.notify()
        return replaced

    def put_command(self, command: Any) -> None:
        """Queue ``command`` for the worker; when full, the oldest queued command is dropped."""
        with self._condition:
            self._commands.append(command)
            self._condition.notify()

    def take(self, timeout: float | None = None) -> tuple[list[Any], ReceivedFrame | None]:
        """Wait for work; returns the queued commands (in order) and the pending frame.

        Returns ``([], None)`` on timeout or once closed.
        """
        with self._condition:
            self._condition.wait_for(lambda: self._closed or self._commands or self._frame is not None, timeout)
            if self._closed:
                return [], None
            commands = list(self._commands)
            self._commands.clear()
            frame, self._frame = self._frame, None
            return commands, frame

    def close(self) -> None:
        """Wake the worker for good: every later ``take`` returns at once."""
        with self._condition:
            self._closed = True
            self._frame = None
            self._commands.clear()
            self._condition.notify_all()

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed
