"""The newest camera frame, its JPEG for the browsers, and the frames the browsers were shown.

No ROS imports: the bridge hands in ``CameraFrame`` values whose ``decode`` turns the message
into pixels. Nothing is decoded or encoded unless a browser asks for a frame, and a frame is
encoded once per (quality, width), however many browsers watch. Only the newest frame is
kept: a browser that asks for the next frame gets the newest one, so no backlog builds up
anywhere.

Coordinates: ``width``/``height`` are the source image's own pixels (what the tracker sees);
``jpeg_width``/``jpeg_height`` those of the downscaled JPEG sent to the browser.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

SHOWN_FRAMES_KEPT = 512  # frames a selection may refer to; the tracker itself caches fewer
RECEIVED_TIMES_KEPT = 512
RATE_SMOOTHING = 0.1  # weight of the newest interval in the frame-rate average


@dataclass(frozen=True)
class CameraFrame:
    """One received camera image, not yet decoded.

    ``sequence`` counts the images the console received (from a random start); ``stamp_sec``,
    ``stamp_nanosec`` and ``frame_id`` are the message header's; ``received`` is the
    ``time.monotonic()`` of arrival; ``decode()`` returns HxWx3 BGR uint8 or raises ValueError.
    """

    sequence: int
    stamp_sec: int
    stamp_nanosec: int
    frame_id: str
    received: float
    decode: Callable[[], np.ndarray] = field(compare=False, repr=False)

    @property
    def stamp_ns(self) -> int:
        """The header stamp in nanoseconds."""
        return self.stamp_sec * 1_000_000_000 + self.stamp_nanosec


@dataclass(frozen=True)
class ShownFrame:
    """A frame as a browser was shown it: its header and its size in source pixels."""

    sequence: int
    stamp_sec: int
    stamp_nanosec: int
    frame_id: str
    width: int
    height: int


@dataclass(frozen=True)
class EncodedFrame:
    """A JPEG of one frame for the browsers, with the header the page needs."""

    shown: ShownFrame
    jpeg: bytes
    jpeg_width: int
    jpeg_height: int
    quality: int

    def header(self) -> dict[str, Any]:
        """JSON-ready description sent ahead of the JPEG bytes."""
        return {
            "sequence": self.shown.sequence,
            "stamp": {"sec": self.shown.stamp_sec, "nanosec": self.shown.stamp_nanosec},
            "frame_id": self.shown.frame_id,
            "width": self.shown.width,
            "height": self.shown.height,
            "jpeg_width": self.jpeg_width,
            "jpeg_height": self.jpeg_height,
            "quality": self.quality,
        }


def encode_jpeg(image: np.ndarray, quality: int, width: int) -> tuple[bytes, int, int]:
    """JPEG of ``image`` (BGR uint8) at ``quality``, downscaled to at most ``width`` pixels wide
    (aspect ratio kept, never upscaled); returns (bytes, jpeg width, jpeg height).
    """
    height, source_width = image.shape[:2]
    if source_width > width:
        new_height = max(1, round(height * width / source_width))
        image = cv2.resize(image, (width, new_height), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("cv2 could not encode the frame as JPEG")
    return encoded.tobytes(), int(image.shape[1]), int(image.shape[0])


class FrameStore:
    """Thread-safe: ``put`` runs in the ROS thread, ``encoded`` in the encoder thread,
    ``shown``/``rate`` wherever the web server needs them.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._newest: CameraFrame | None = None
        self._count = 0
        self._rate = 0.0
        self._last_received: float | None = None
        self._received_by_stamp: OrderedDict[int, float] = OrderedDict()
        self._shown: OrderedDict[int, ShownFrame] = OrderedDict()
        # Encoder-thread caches, for the newest frame only.
        self._decoded: tuple[int, np.ndarray] | None = None
        self._encoded: dict[tuple[int, int, int], EncodedFrame] = {}

    # ------------------------------------------------------------------ ROS thread
    def put(self, frame: CameraFrame) -> None:
        """Make ``frame`` the newest one (the previous one is forgotten unless it was shown)."""
        with self._lock:
            if self._last_received is not None and frame.received > self._last_received:
                rate = 1.0 / (frame.received - self._last_received)
                self._rate = rate if self._rate == 0.0 else (1 - RATE_SMOOTHING) * self._rate + RATE_SMOOTHING * rate
            self._last_received = frame.received
            self._newest = frame
            self._count += 1
            if frame.stamp_ns:
                self._received_by_stamp[frame.stamp_ns] = frame.received
                while len(self._received_by_stamp) > RECEIVED_TIMES_KEPT:
                    self._received_by_stamp.popitem(last=False)

    # ------------------------------------------------------------------ any thread
    @property
    def newest_sequence(self) -> int:
        """Sequence of the newest frame; -1 before the first one."""
        with self._lock:
            return -1 if self._newest is None else self._newest.sequence

    @property
    def count(self) -> int:
        """How many camera frames were received."""
        with self._lock:
            return self._count

    def rate(self) -> float:
        """Camera frames per second received (smoothed); 0 once frames stopped for 2 s."""
        with self._lock:
            if self._last_received is None or self._clock() - self._last_received > 2.0:
                return 0.0
            return self._rate

    def received_at(self, stamp_ns: int) -> float | None:
        """Monotonic arrival time of the recent frame stamped ``stamp_ns``, if known."""
        with self._lock:
            return self._received_by_stamp.get(stamp_ns)

    def shown(self, sequence: int) -> ShownFrame | None:
        """The frame numbered ``sequence``, if a browser was shown it recently."""
        with self._lock:
            return self._shown.get(sequence)

    # ------------------------------------------------------------------ encoder thread
    def encoded(self, quality: int, width: int, after: int = -1) -> EncodedFrame | None:
        """The newest frame as a JPEG at ``quality`` and at most ``width`` wide, or None when
        there is no frame newer than sequence ``after``. Raises ValueError for an image that
        cannot be decoded.
        """
        with self._lock:
            frame = self._newest
        if frame is None or frame.sequence <= after:
            return None
        key = (frame.sequence, int(quality), int(width))
        cached = self._encoded.get(key)
        if cached is not None:
            return cached
        if self._decoded is None or self._decoded[0] != frame.sequence:
            self._decoded = None
            self._encoded.clear()
            self._decoded = (frame.sequence, frame.decode())
        image = self._decoded[1]
        jpeg, jpeg_width, jpeg_height = encode_jpeg(image, quality, width)
        shown = ShownFrame(
            frame.sequence,
            frame.stamp_sec,
            frame.stamp_nanosec,
            frame.frame_id,
            int(image.shape[1]),
            int(image.shape[0]),
        )
        result = EncodedFrame(shown, jpeg, jpeg_width, jpeg_height, int(quality))
        self._encoded[key] = result
        with self._lock:
            self._shown[frame.sequence] = shown
            while len(self._shown) > SHOWN_FRAMES_KEPT:
                self._shown.popitem(last=False)
        return result
