"""``sensor_msgs/Image`` and ``CompressedImage`` <-> BGR ``uint8`` arrays, without cv_bridge.

The tracker wants HxWx3 BGR uint8. Raw images are checked first (``check_image``, cheap: no
pixel is touched) so the node can refuse a bad message as it arrives, and converted later
(``image_to_bgr``) only when a frame is actually used. Every problem raises ``ValueError``
with a message that names the field at fault.

Encodings follow ``sensor_msgs/image_encodings``: ``yuv422`` (and its newer name ``uyvy``)
is UYVY byte order, ``yuv422_yuy2`` (``yuyv``) is YUYV. 16-bit encodings honour
``is_bigendian`` and are reduced to their high byte.

``detection2d_fields`` gives the values of a ``vision_msgs/Detection2D`` for a ``TrackedBox``
without depending on vision_msgs (the mapping: docs/ros.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class _Encoding:
    channels: int
    bytes_per_channel: int
    # How to turn the decoded HxWxC (8-bit) array into BGR; None = already BGR.
    to_bgr: int | None


# cv2 colour conversions keyed by ROS encoding. YUV 4:2:2 is two bytes per pixel.
_ENCODINGS: dict[str, _Encoding] = {
    "bgr8": _Encoding(3, 1, None),
    "8UC3": _Encoding(3, 1, None),  # OpenCV's default channel order is BGR
    "rgb8": _Encoding(3, 1, cv2.COLOR_RGB2BGR),
    "bgra8": _Encoding(4, 1, cv2.COLOR_BGRA2BGR),
    "8UC4": _Encoding(4, 1, cv2.COLOR_BGRA2BGR),
    "rgba8": _Encoding(4, 1, cv2.COLOR_RGBA2BGR),
    "mono8": _Encoding(1, 1, cv2.COLOR_GRAY2BGR),
    "8UC1": _Encoding(1, 1, cv2.COLOR_GRAY2BGR),
    "bgr16": _Encoding(3, 2, None),
    "rgb16": _Encoding(3, 2, cv2.COLOR_RGB2BGR),
    "mono16": _Encoding(1, 2, cv2.COLOR_GRAY2BGR),
    "yuv422": _Encoding(2, 1, cv2.COLOR_YUV2BGR_UYVY),
    "uyvy": _Encoding(2, 1, cv2.COLOR_YUV2BGR_UYVY),
    "yuv422_yuy2": _Encoding(2, 1, cv2.COLOR_YUV2BGR_YUY2),
    "yuyv": _Encoding(2, 1, cv2.COLOR_YUV2BGR_YUY2),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)
_YUV422 = frozenset({"yuv422", "uyvy", "yuv422_yuy2", "yuyv"})


@dataclass(frozen=True)
class ImageLayout:
    """Where the pixels of a raw image message are: what ``check_image`` found valid."""

    encoding: str
    height: int
    width: int
    step: int
    row_bytes: int  # bytes of pixels in a row, without the padding up to ``step``

    @property
    def pixel_count(self) -> int:
        """Pixels in the image: ``height * width``."""
        return self.height * self.width


def check_image(msg: Any) -> ImageLayout:
    """Validate a ``sensor_msgs/Image``'s encoding, size, step and buffer length.

    Raises ValueError naming what is wrong: unknown encoding, zero size, a ``step`` shorter
    than a row, a buffer shorter than ``step * height`` (truncated), or an odd width for
    YUV 4:2:2.
    """
    encoding = str(msg.encoding)
    spec = _ENCODINGS.get(encoding)
    if spec is None:
        raise ValueError(f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ValueError(f"empty image: {width}x{height}")
    if encoding in _YUV422 and width % 2:
        raise ValueError(f"{encoding} image width must be even (pixels come in pairs), got {width}")
    row_bytes = width * spec.channels * spec.bytes_per_channel
    if step < row_bytes:
        raise ValueError(f"step {step} is shorter than one row of {width} {encoding} pixels ({row_bytes} bytes)")
    needed = step * height
    if len(msg.data) < needed:
        raise ValueError(
            f"truncated image data: {len(msg.data)} bytes, expected step*height = {step}*{height} = {needed}"
        )
    return ImageLayout(encoding, height, width, step, row_bytes)


def image_to_bgr(msg: Any, layout: ImageLayout | None = None) -> np.ndarray:
    """Convert a ``sensor_msgs/Image`` to a new HxWx3 BGR uint8 array (ValueError if invalid).

    Row padding (``step`` > row size) is skipped; 16-bit data is read in the byte order that
    ``is_bigendian`` states. Pass the ``layout`` from ``check_image`` to skip re-checking.
    """
    layout = layout or check_image(msg)
    spec = _ENCODINGS[layout.encoding]
    buffer = np.frombuffer(msg.data, dtype=np.uint8, count=layout.step * layout.height)
    rows = buffer.reshape(layout.height, layout.step)[:, : layout.row_bytes]
    if spec.bytes_per_channel == 2:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        wide = np.ascontiguousarray(rows).view(dtype).reshape(layout.height, layout.width, spec.channels)
        pixels = (wide >> 8).astype(np.uint8)
    else:
        pixels = rows.reshape(layout.height, layout.width, spec.channels)
    if spec.to_bgr is None:
        # Always hand out an owned, writable array, never a view into the message.
        return np.array(pixels, dtype=np.uint8, copy=True, order="C")
    return cv2.cvtColor(np.ascontiguousarray(pixels), spec.to_bgr)


def compressed_to_bgr(msg: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG) to HxWx3 BGR uint8.

    ``format`` may be a bare ``jpeg``/``png`` or image_transport's
    ``"<encoding>; <codec> compressed <encoding>"``; a payload declared ``compressed rgb8``
    has its channels swapped back to BGR. Depth images (``compressedDepth``) are refused.
    """
    fmt = str(msg.format).lower()
    if "compresseddepth" in fmt.replace(" ", ""):
        raise ValueError(f"compressed depth images are not supported (format {msg.format!r})")
    if len(msg.data) == 0:
        raise ValueError("empty compressed image")
    image = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode compressed image (format {msg.format!r}, {len(msg.data)} bytes)")
    if "compressed rgb" in fmt:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return image


def bgr_to_image(frame: np.ndarray, header: Any = None, encoding: str = "bgr8") -> Any:
    """A ``sensor_msgs/Image`` holding ``frame`` (HxWx3 BGR uint8) as ``bgr8``, ``rgb8`` or ``mono8``."""
    from sensor_msgs.msg import Image

    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 BGR array, got shape {frame.shape} dtype {frame.dtype}")
    if encoding == "bgr8":
        pixels = frame
    elif encoding == "rgb8":
        pixels = frame[:, :, ::-1]
    elif encoding == "mono8":
        pixels = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    else:
        raise ValueError(f"bgr_to_image writes bgr8, rgb8 or mono8, not {encoding!r}")
    pixels = np.ascontiguousarray(pixels)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(pixels.strides[0])
    # Assigning bytes is ~1000x faster than assigning an array element by element.
    msg.data = pixels.tobytes()
    return msg


def bgr_to_compressed(frame: np.ndarray, header: Any = None, codec: str = "jpeg", quality: int = 90) -> Any:
    """A ``sensor_msgs/CompressedImage`` of ``frame`` (BGR) encoded as ``jpeg`` or ``png``."""
    from sensor_msgs.msg import CompressedImage

    if codec == "jpeg":
        ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif codec == "png":
        ok, encoded = cv2.imencode(".png", frame)
    else:
        raise ValueError(f"codec must be jpeg or png, got {codec!r}")
    if not ok:
        raise ValueError(f"cv2 could not encode the frame as {codec}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = f"bgr8; {codec} compressed bgr8"
    msg.data = encoded.tobytes()
    return msg


# --------------------------------------------------------------------------- boxes for vision_msgs


@dataclass(frozen=True)
class Detection2DFields:
    """The values of one ``vision_msgs/Detection2D`` (vision_msgs 4.x: Humble and newer) for a
    ``TrackedBox``, without importing vision_msgs (this package does not depend on it).

    ``center_x``, ``center_y`` go to ``bbox.center.position.x/y`` (``bbox.center.x/y`` before
    vision_msgs 4), ``theta`` to ``bbox.center.theta``, ``size_x``, ``size_y`` to ``bbox.size_x/y``,
    ``id`` to ``id``, and ``class_id``, ``score`` to ``results[0].hypothesis``. The field-by-field
    table and a relay node: docs/ros.md.
    """

    id: str
    center_x: float
    center_y: float
    theta: float
    size_x: float
    size_y: float
    class_id: str
    score: float


def detection2d_fields(box: Any, class_id: str = "") -> Detection2DFields:
    """``box`` (a ``TrackedBox``, or anything with its ``x, y, width, height, target_id, score``)
    as ``Detection2D`` values: the centre from the top-left corner and the size, the target id as
    the (string) tracking id, the presence as the hypothesis score, an axis-aligned box (theta 0).

    ``class_id``: what the consumer calls the target (the tracker does not classify; empty by
    default, as vision_msgs allows for an unknown class).
    """
    width, height = float(box.width), float(box.height)
    return Detection2DFields(
        id=str(int(box.target_id)),
        center_x=float(box.x) + width / 2.0,
        center_y=float(box.y) + height / 2.0,
        theta=0.0,
        size_x=width,
        size_y=height,
        class_id=class_id,
        score=float(box.score),
    )
