"""Checks of everything a browser sends. No ROS imports.

A request that fails a check raises ``RequestError`` with the HTTP status the server answers:

- 400: not what the API takes (not JSON, not an object, a missing or unknown field, a wrong type);
- 422: the right type but a value out of range (a target id, a box outside the image, an
  unknown command, a quality or width out of bounds);
- 409: a selection on a frame this console did not show recently (draw it again).

Selection body (``POST /api/select``, ``Content-Type: application/json``)::

    {"command": "start" | "replace", "target_id": 1..4294967295,
     "frame": <the "sequence" of the frame on screen when the drag began>,
     "box": {"x": .., "y": .., "width": .., "height": ..}}        (top-left, source-image pixels)
    {"command": "cancel", "target_id": 0..4294967295}              (0: every target)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from siamrpnpp_ros.tools.console.frames import ShownFrame
from siamrpnpp_ros.tools.console.settings import (
    MAX_JPEG_QUALITY,
    MAX_STREAM_WIDTH,
    MIN_JPEG_QUALITY,
    MIN_STREAM_WIDTH,
)

MAX_TARGET_ID = 2**32 - 1  # SelectTarget.target_id is uint32
MAX_BODY_BYTES = 4096
MIN_BOX_SIDE = 1.0  # pixels
EDGE_TOLERANCE = 1e-6  # pixels: float noise at the image's right/bottom edge
COMMANDS = ("start", "replace", "cancel")
_BOX_FIELDS = ("x", "y", "width", "height")


class RequestError(ValueError):
    """A request that fails a check; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Selection:
    """A checked selection: ``frame`` and ``box`` (top-left x, y, width, height in the
    frame's own pixels) are None for ``cancel``.
    """

    command: str
    target_id: int
    frame: ShownFrame | None = None
    box: tuple[float, float, float, float] | None = None


def _reject_constant(name: str) -> float:
    raise RequestError(400, f"{name} is not a JSON number")


def _integer(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(400, f"{name} must be an integer, got {type(value).__name__}")
    return value


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(400, f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise RequestError(422, f"{name} must be finite")
    return number


def parse_selection(body: bytes, shown: Callable[[int], ShownFrame | None]) -> Selection:
    """Check a selection request body; ``shown(sequence)`` looks up the frames on screen lately."""
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except RequestError:
        raise
    except (UnicodeDecodeError, ValueError) as error:
        raise RequestError(400, f"body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise RequestError(400, "body must be a JSON object")
    command = document.get("command")
    if not isinstance(command, str):
        raise RequestError(400, "field 'command' (a string) is required")
    if command not in COMMANDS:
        raise RequestError(422, f"command must be one of {', '.join(COMMANDS)}, got {command[:32]!r}")
    allowed = {"command", "target_id"} if command == "cancel" else {"command", "target_id", "frame", "box"}
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise RequestError(400, f"unexpected field(s) for {command}: {', '.join(k[:32] for k in unknown)}")
    missing = sorted(allowed - set(document))
    if missing:
        raise RequestError(400, f"missing field(s) for {command}: {', '.join(missing)}")
    target_id = _integer(document["target_id"], "target_id")
    lowest = 0 if command == "cancel" else 1
    if not lowest <= target_id <= MAX_TARGET_ID:
        raise RequestError(422, f"target_id must be in [{lowest}, {MAX_TARGET_ID}] for {command}, got {target_id}")
    if command == "cancel":
        return Selection(command, target_id)

    sequence = _integer(document["frame"], "frame")
    if sequence < 0:
        raise RequestError(422, f"frame must be >= 0, got {sequence}")
    raw_box = document["box"]
    if not isinstance(raw_box, dict):
        raise RequestError(400, "box must be an object with x, y, width, height")
    if set(raw_box) != set(_BOX_FIELDS):
        raise RequestError(400, "box must have exactly the fields x, y, width, height")
    x, y, width, height = (_number(raw_box[name], f"box.{name}") for name in _BOX_FIELDS)
    frame = shown(sequence)
    if frame is None:
        raise RequestError(409, f"frame {sequence} is not among the frames shown lately; draw the box again")
    if width < MIN_BOX_SIDE or height < MIN_BOX_SIDE:
        raise RequestError(422, f"box must be at least {MIN_BOX_SIDE:g} pixel wide and high, got {width:g}x{height:g}")
    if x < 0 or y < 0 or x + width > frame.width + EDGE_TOLERANCE or y + height > frame.height + EDGE_TOLERANCE:
        raise RequestError(
            422, f"box ({x:g}, {y:g}, {width:g}, {height:g}) must lie inside the {frame.width}x{frame.height} image"
        )
    return Selection(command, target_id, frame, (x, y, min(width, frame.width - x), min(height, frame.height - y)))


@dataclass(frozen=True)
class StreamOptions:
    """A stream's checked options: JPEG ``quality`` and image ``width`` in pixels."""

    quality: int
    width: int


def parse_stream_options(query: Mapping[str, str], default_quality: int, default_width: int) -> StreamOptions:
    """``quality`` and ``width`` of a stream request's query string (both optional)."""
    unknown = sorted(set(query) - {"quality", "width", "token"})
    if unknown:
        raise RequestError(400, f"unexpected query parameter(s): {', '.join(k[:32] for k in unknown)}")

    def integer(name: str, default: int, low: int, high: int) -> int:
        text = query.get(name)
        if text is None:
            return default
        if not (text.isascii() and text.isdigit()) or len(text) > 6:
            raise RequestError(400, f"{name} must be a whole number, got {text[:16]!r}")
        value = int(text)
        if not low <= value <= high:
            raise RequestError(422, f"{name} must be in [{low}, {high}], got {value}")
        return value

    return StreamOptions(
        quality=integer("quality", default_quality, MIN_JPEG_QUALITY, MAX_JPEG_QUALITY),
        width=integer("width", default_width, MIN_STREAM_WIDTH, MAX_STREAM_WIDTH),
    )


def parse_client_message(text: str) -> str:
    """A message a page sends on its stream: only ``{"type": "next"}`` (ready for a frame)."""
    if len(text) > 256:
        raise RequestError(400, "stream message too long")
    try:
        document = json.loads(text)
    except ValueError:
        raise RequestError(400, "stream message is not JSON") from None
    if not isinstance(document, dict) or document.get("type") != "next" or len(document) != 1:
        raise RequestError(400, 'stream messages must be {"type": "next"}')
    return "next"
