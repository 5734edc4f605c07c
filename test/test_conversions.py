"""Image messages -> BGR arrays: every encoding, row padding, byte order, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="ROS 2 message packages are not installed")
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from siamrpnpp_ros.ros.conversions import (  # noqa: E402
    SUPPORTED_ENCODINGS,
    bgr_to_compressed,
    bgr_to_image,
    check_image,
    compressed_to_bgr,
    image_to_bgr,
)

HEIGHT, WIDTH = 5, 6


@pytest.fixture
def bgr() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)


def make_image(pixels: np.ndarray, encoding: str, padding: int = 0, bigendian: bool = False) -> Image:
    """An Image message built by hand from ``pixels`` (HxW or HxWxC) with ``padding`` bytes per row."""
    height, width = pixels.shape[:2]
    rows = np.ascontiguousarray(pixels).reshape(height, -1).view(np.uint8)
    if padding:
        # The padding bytes hold garbage on purpose: a converter that reads them shows it.
        rows = np.concatenate([rows, np.full((height, padding), 0xAB, np.uint8)], axis=1)
    msg = Image()
    msg.height, msg.width, msg.encoding = height, width, encoding
    msg.is_bigendian = int(bigendian)
    msg.step = rows.shape[1]
    msg.data = rows.tobytes()
    return msg


@pytest.mark.parametrize("padding", [0, 3])
@pytest.mark.parametrize(
    "encoding, make_pixels",
    [
        ("bgr8", lambda bgr: bgr),
        ("8UC3", lambda bgr: bgr),
        ("rgb8", lambda bgr: bgr[:, :, ::-1]),
        ("bgra8", lambda bgr: np.dstack([bgr, np.full(bgr.shape[:2], 77, np.uint8)])),
        ("8UC4", lambda bgr: np.dstack([bgr, np.full(bgr.shape[:2], 77, np.uint8)])),
        ("rgba8", lambda bgr: np.dstack([bgr[:, :, ::-1], np.full(bgr.shape[:2], 77, np.uint8)])),
    ],
)
def test_colour_encodings_give_the_original_bgr_pixels(bgr, encoding, make_pixels, padding):
    msg = make_image(make_pixels(bgr), encoding, padding)
    result = image_to_bgr(msg)
    assert result.dtype == np.uint8 and result.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(result, bgr)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono_is_replicated_into_three_equal_channels(bgr, encoding):
    grey = bgr[:, :, 0]
    result = image_to_bgr(make_image(grey, encoding, padding=2))
    np.testing.assert_array_equal(result, np.dstack([grey, grey, grey]))


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("encoding, reorder", [("bgr16", False), ("rgb16", True), ("mono16", None)])
def test_16_bit_encodings_respect_byte_order_and_keep_the_high_byte(bgr, encoding, reorder, bigendian):
    # Low byte 0x5A everywhere: only a converter that mixes up the byte order sees it.
    high = bgr if reorder is not None else bgr[:, :, :1]
    values = (high.astype(np.uint16) << 8) | 0x5A
    if reorder:
        values = values[:, :, ::-1]
    if reorder is None:
        values = values[:, :, 0]
    stored = values.astype(">u2" if bigendian else "<u2")
    result = image_to_bgr(make_image(stored, encoding, padding=4, bigendian=bigendian))
    expected = bgr if reorder is not None else np.dstack([bgr[:, :, 0]] * 3)
    np.testing.assert_array_equal(result, expected)


def _bt601_bgr(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Limited-range BT.601 YUV -> BGR, written out independently of OpenCV."""
    y, u, v = (np.asarray(a, np.float64) for a in (y, u, v))
    red = 1.164 * (y - 16) + 1.596 * (v - 128)
    green = 1.164 * (y - 16) - 0.813 * (v - 128) - 0.391 * (u - 128)
    blue = 1.164 * (y - 16) + 2.018 * (u - 128)
    return np.clip(np.stack([blue, green, red], axis=-1), 0, 255)


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
def test_yuv422_byte_orders(encoding):
    rng = np.random.default_rng(3)
    y = rng.integers(16, 236, size=(HEIGHT, WIDTH)).astype(np.uint8)
    u = rng.integers(16, 241, size=(HEIGHT, WIDTH // 2)).astype(np.uint8)
    v = rng.integers(16, 241, size=(HEIGHT, WIDTH // 2)).astype(np.uint8)
    packed = np.empty((HEIGHT, WIDTH // 2, 4), np.uint8)
    if encoding in ("yuv422", "uyvy"):  # U Y0 V Y1
        packed[..., 0], packed[..., 1], packed[..., 2], packed[..., 3] = u, y[:, 0::2], v, y[:, 1::2]
    else:  # Y0 U Y1 V
        packed[..., 0], packed[..., 1], packed[..., 2], packed[..., 3] = y[:, 0::2], u, y[:, 1::2], v
    msg = make_image(packed.reshape(HEIGHT, WIDTH * 2), encoding, padding=4)
    msg.width = WIDTH  # two bytes per pixel: the hand-made row is 2*WIDTH bytes wide
    result = image_to_bgr(msg)
    expected = _bt601_bgr(y, np.repeat(u, 2, axis=1), np.repeat(v, 2, axis=1))
    assert result.shape == (HEIGHT, WIDTH, 3)
    assert np.abs(result.astype(np.float64) - expected).max() <= 2.0


def test_result_is_an_owned_copy_not_a_view_of_the_message(bgr):
    msg = make_image(bgr, "bgr8")
    result = image_to_bgr(msg)
    result[:] = 0
    np.testing.assert_array_equal(image_to_bgr(msg), bgr)


def test_unknown_encoding_is_refused_with_the_supported_list(bgr):
    msg = make_image(bgr, "bgr8")
    msg.encoding = "bayer_rggb8x"
    with pytest.raises(ValueError, match=r"unsupported image encoding 'bayer_rggb8x'.*bgr8"):
        check_image(msg)
    with pytest.raises(ValueError, match="unsupported image encoding"):
        image_to_bgr(msg)


def test_truncated_data_is_refused(bgr):
    msg = make_image(bgr, "bgr8", padding=2)
    msg.data = bytes(msg.data)[:-1]
    with pytest.raises(ValueError, match=r"truncated image data: .* expected step\*height"):
        image_to_bgr(msg)


def test_step_shorter_than_a_row_and_empty_images_are_refused(bgr):
    msg = make_image(bgr, "bgr8")
    msg.step = WIDTH * 3 - 1
    with pytest.raises(ValueError, match="step .* shorter than one row"):
        check_image(msg)
    empty = make_image(bgr, "bgr8")
    empty.height = 0
    with pytest.raises(ValueError, match="empty image"):
        check_image(empty)


def test_odd_width_yuv_is_refused():
    msg = make_image(np.zeros((2, 6), np.uint8), "yuyv")
    msg.width = 3
    with pytest.raises(ValueError, match="even"):
        check_image(msg)


def test_check_reports_the_layout(bgr):
    rgba = np.dstack([bgr, bgr[:, :, :1]])
    layout = check_image(make_image(rgba, "rgba8", padding=5))
    assert (layout.height, layout.width, layout.row_bytes, layout.step) == (HEIGHT, WIDTH, WIDTH * 4, WIDTH * 4 + 5)
    assert layout.pixel_count == HEIGHT * WIDTH


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8"])
def test_bgr_to_image_round_trips(bgr, encoding):
    msg = bgr_to_image(bgr, encoding=encoding)
    assert msg.encoding == encoding and msg.step == WIDTH * 3 and len(msg.data) == HEIGHT * WIDTH * 3
    np.testing.assert_array_equal(image_to_bgr(msg), bgr)


def test_png_compressed_is_lossless(bgr):
    msg = bgr_to_compressed(bgr, codec="png")
    assert isinstance(msg, CompressedImage)
    np.testing.assert_array_equal(compressed_to_bgr(msg), bgr)


def test_jpeg_compressed_decodes_close_to_the_original():
    # A smooth image: JPEG keeps it within a few grey levels.
    ramp = np.linspace(0, 255, 64, dtype=np.float64)
    rows, cols = np.meshgrid(ramp, ramp, indexing="ij")
    smooth = np.dstack([rows, cols, np.full((64, 64), 128.0)]).astype(np.uint8)
    msg = bgr_to_compressed(smooth, codec="jpeg", quality=95)
    decoded = compressed_to_bgr(msg)
    assert decoded.shape == smooth.shape
    assert np.abs(decoded.astype(int) - smooth.astype(int)).mean() < 3.0


def test_compressed_rgb_payload_is_swapped_back(bgr):
    import cv2

    msg = CompressedImage()
    msg.format = "rgb8; png compressed rgb8"
    msg.data = cv2.imencode(".png", bgr[:, :, ::-1])[1].tobytes()
    np.testing.assert_array_equal(compressed_to_bgr(msg), bgr)


def test_garbage_and_depth_compressed_images_are_refused():
    msg = CompressedImage()
    msg.format = "jpeg"
    msg.data = b"not a jpeg at all"
    with pytest.raises(ValueError, match="cannot decode compressed image"):
        compressed_to_bgr(msg)
    msg.data = b""
    with pytest.raises(ValueError, match="empty compressed image"):
        compressed_to_bgr(msg)
    msg.format = "16UC1; compressedDepth png"
    msg.data = b"x"
    with pytest.raises(ValueError, match="depth"):
        compressed_to_bgr(msg)


def test_every_supported_encoding_is_exercised_here():
    exercised = {
        "bgr8",
        "8UC3",
        "rgb8",
        "bgra8",
        "8UC4",
        "rgba8",
        "mono8",
        "8UC1",
        "bgr16",
        "rgb16",
        "mono16",
        "yuv422",
        "uyvy",
        "yuv422_yuy2",
        "yuyv",
    }
    assert set(SUPPORTED_ENCODINGS) == exercised
