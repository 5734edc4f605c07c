"""Context-padded square crops (pysot's ``get_subwindow``), bit-identical to the reference.

A crop is a ``crop_side`` x ``crop_side`` window of the frame around a centre, where the parts
outside the frame are filled with the first frame's mean colour (truncated to uint8), then
resized with OpenCV's bilinear filter on uint8 to the network input side.

One exception bounds memory and time: a window that reaches outside the frame and would take
more than ``MAX_WINDOW_BYTES`` to build at frame resolution (pysot builds it whatever its
size) is made by resizing the frame's part alone onto a padding-coloured output, which places
it to within a pixel and is not bit-identical. Normal searches never come near it (a
frame-filling target in 640x480 needs a 2,524 px window, 18 MiB); the long-term tracker's wide
search of a state grown past the frame did: it keeps pysot's unclipped state, and a soak run
reached a ~13,500 px window (~550 MB per frame and seconds per step).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

# A window reaching outside the frame is built at frame resolution up to this size
# (32 MiB: a 3,344 px 3-channel window); larger ones take the scaled path (see square_crop).
MAX_WINDOW_BYTES = 32 << 20


def channel_average(frame: np.ndarray) -> np.ndarray:
    """Per-channel mean colour of a BGR uint8 frame, float64 shape (3,).

    Computed exactly like pysot (``np.mean`` over rows and columns) because the padding colour
    derived from it must match to the last bit.
    """
    mean: np.ndarray = np.mean(frame, axis=(0, 1))
    return mean


def padding_color(average: Sequence[float] | np.ndarray) -> np.ndarray:
    """The uint8 padding colour for a mean colour: truncated (124.63 -> 124), not rounded.

    Truncation is what numpy does when pysot assigns the float mean into a uint8 canvas.
    """
    return np.asarray(average, dtype=np.float64).astype(np.uint8)


def crop_origin(center: Sequence[float], crop_side: int) -> tuple[int, int]:
    """Top-left pixel (x, y) of the ``crop_side`` window centred on ``center`` (pixels).

    ``floor(center - (crop_side + 1) / 2 + 0.5)`` per axis, as pysot rounds it.
    """
    half = (crop_side + 1) / 2
    x_min = int(np.floor(center[0] - half + 0.5))
    y_min = int(np.floor(center[1] - half + 0.5))
    return x_min, y_min


def square_crop(
    frame: np.ndarray,
    center: Sequence[float],
    crop_side: int,
    output_side: int,
    pad_color: np.ndarray,
) -> np.ndarray:
    """The square window of ``crop_side`` pixels around ``center``, resized to ``output_side``.

    ``frame`` is HxWx3 uint8 (BGR), ``center`` is (x, y) in frame pixels (a float centre, not a
    top-left corner), ``pad_color`` is the uint8 colour (see ``padding_color``) for the part of
    the window outside the frame. Returns ``output_side`` x ``output_side`` x 3 uint8. When the
    window lies inside the frame and no resize is needed, the result is a view of ``frame``.
    A window reaching outside the frame that would exceed ``MAX_WINDOW_BYTES`` is not built:
    see ``scaled_window`` (the module docstring says why).
    """
    crop_side = int(crop_side)
    output_side = int(output_side)
    if crop_side < 1:
        raise ValueError(f"crop side must be at least 1 pixel, got {crop_side}")
    if output_side < 1:
        raise ValueError(f"output side must be at least 1 pixel, got {output_side}")
    height, width = frame.shape[:2]
    x_min, y_min = crop_origin(center, crop_side)
    x_end, y_end = x_min + crop_side, y_min + crop_side

    if x_min >= 0 and y_min >= 0 and x_end <= width and y_end <= height:
        patch = frame[y_min:y_end, x_min:x_end]
    elif crop_side != output_side and crop_side * crop_side * frame.shape[2] > MAX_WINDOW_BYTES:
        return scaled_window(frame, (x_min, y_min), crop_side, output_side, pad_color)
    else:
        # Only the window is materialised, not the whole padded frame pysot builds; each
        # pixel is still either a frame pixel or the padding colour, so the result is the same.
        src_x0, src_x1 = max(x_min, 0), min(x_end, width)
        src_y0, src_y1 = max(y_min, 0), min(y_end, height)
        if src_x0 < src_x1 and src_y0 < src_y1 and frame.shape[2] <= 4:
            # One OpenCV call writes frame part and border together: 5-15x faster than numpy's
            # broadcast fill of a 3-byte colour (0.3 vs 1.6 ms for a 400 px window, 0.4 vs 7.4 ms
            # for a 900 px wide search).
            patch = cv2.copyMakeBorder(
                frame[src_y0:src_y1, src_x0:src_x1],
                src_y0 - y_min,
                y_end - src_y1,
                src_x0 - x_min,
                x_end - src_x1,
                cv2.BORDER_CONSTANT,
                value=[int(c) for c in np.broadcast_to(np.asarray(pad_color).reshape(-1), (frame.shape[2],))],
            )
        else:
            patch = np.empty((crop_side, crop_side, frame.shape[2]), dtype=np.uint8)
            patch[...] = pad_color
            if src_x0 < src_x1 and src_y0 < src_y1:
                patch[src_y0 - y_min : src_y1 - y_min, src_x0 - x_min : src_x1 - x_min] = frame[
                    src_y0:src_y1, src_x0:src_x1
                ]

    if crop_side != output_side:
        patch = cv2.resize(patch, (output_side, output_side), interpolation=cv2.INTER_LINEAR)
    return patch


def scaled_window(
    frame: np.ndarray, origin: tuple[int, int], crop_side: int, output_side: int, pad_color: np.ndarray
) -> np.ndarray:
    """The ``output_side`` crop of the ``crop_side`` window at ``origin`` (its top-left pixel),
    made without building the window: the frame's part is resized on its own to where it falls
    in the output, the rest is ``pad_color``. Within a pixel of ``square_crop``'s placement,
    bilinear like it, not bit-identical; memory and time follow the frame, not the window.
    """
    height, width, channels = frame.shape
    x_min, y_min = origin
    scale = output_side / crop_side
    out = np.empty((output_side, output_side, channels), dtype=np.uint8)
    out[...] = np.broadcast_to(np.asarray(pad_color, dtype=np.uint8).reshape(-1), (channels,))
    src_x0, src_x1 = max(x_min, 0), min(x_min + crop_side, width)
    src_y0, src_y1 = max(y_min, 0), min(y_min + crop_side, height)
    if src_x0 >= src_x1 or src_y0 >= src_y1:
        return out

    def span(start: int, end: int, origin_px: int) -> tuple[int, int]:
        lo = min(int(round((start - origin_px) * scale)), output_side - 1)
        hi = min(max(int(round((end - origin_px) * scale)), lo + 1), output_side)
        return lo, hi

    dst_x0, dst_x1 = span(src_x0, src_x1, x_min)
    dst_y0, dst_y1 = span(src_y0, src_y1, y_min)
    part = cv2.resize(
        frame[src_y0:src_y1, src_x0:src_x1], (dst_x1 - dst_x0, dst_y1 - dst_y0), interpolation=cv2.INTER_LINEAR
    )
    out[dst_y0:dst_y1, dst_x0:dst_x1] = part.reshape(dst_y1 - dst_y0, dst_x1 - dst_x0, channels)
    return out


def crop_to_tensor(
    patch: np.ndarray, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A HxWx3 uint8 patch as a (1, 3, H, W) tensor of ``dtype`` on ``device``.

    Values stay 0..255 in BGR order (no mean subtraction, no scaling), as the models expect.
    The uint8 data is moved before the conversion so a GPU transfer carries a quarter of the bytes,
    and the conversion writes straight into the contiguous NCHW result (one copy on the CPU).
    """
    tensor = torch.from_numpy(patch).to(device)
    return tensor.permute(2, 0, 1).unsqueeze(0).to(dtype, memory_format=torch.contiguous_format)


def square_crop_tensor(
    frame: np.ndarray,
    center: Sequence[float],
    crop_side: int,
    output_side: int,
    pad_color: np.ndarray,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``square_crop`` followed by ``crop_to_tensor``: the (1, 3, output_side, output_side) network input."""
    return crop_to_tensor(square_crop(frame, center, crop_side, output_side, pad_color), device, dtype)
