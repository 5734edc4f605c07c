"""Frame sources for offline tracking: a video file or a folder of images (OTB-style).

``open_sequence(path)`` returns a ``FrameSequence`` that yields BGR uint8 frames (HxWx3) and,
for image folders, carries the ground truth boxes of a ``groundtruth.txt`` beside the images
(top-left ``x, y, w, h`` in pixels, one line per frame).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
# OTB names its file groundtruth_rect.txt; most other benchmarks use groundtruth.txt.
GROUNDTRUTH_NAMES = ("groundtruth.txt", "groundtruth_rect.txt")
_FIELD_SEPARATOR = re.compile(r"[,\s]+")


class SequenceError(ValueError):
    """A video or image folder that cannot be used (missing, unreadable, empty)."""


def read_groundtruth(path: str | os.PathLike[str]) -> np.ndarray:
    """Boxes of a ground-truth text file as float64 rows ``(x, y, w, h)`` (top-left, pixels).

    Fields may be separated by commas, tabs or spaces; blank lines and ``#`` comments are
    skipped. Only the first four fields of a line are used. Raises SequenceError on bad lines.
    """
    rows: list[list[float]] = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = [f for f in _FIELD_SEPARATOR.split(text) if f]
            try:
                values = [float(f) for f in fields]
            except ValueError:
                raise SequenceError(f"{path}:{line_number}: expected numbers x,y,w,h, got {text!r}") from None
            if len(values) < 4:
                raise SequenceError(f"{path}:{line_number}: expected 4 numbers x,y,w,h, got {text!r}")
            rows.append(values[:4])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


@dataclass
class FrameSequence:
    """An opened frame source. Iterate it for BGR uint8 frames (each iteration starts over).

    ``frame_count`` is exact for image folders and the container's estimate (or None) for
    videos; ``fps`` is the video's frame rate, None for image folders; ``groundtruth`` holds
    ``(x, y, w, h)`` pixel rows or None.
    """

    path: Path
    is_video: bool
    frame_count: int | None
    fps: float | None = None
    groundtruth: np.ndarray | None = None
    image_paths: list[Path] = field(default_factory=list)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._iter_video() if self.is_video else self._iter_images()

    def _iter_images(self) -> Iterator[np.ndarray]:
        for image_path in self.image_paths:
            frame = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
            if frame is None:
                raise SequenceError(f"cannot read image {image_path}")
            yield frame

    def _iter_video(self) -> Iterator[np.ndarray]:
        capture = cv2.VideoCapture(str(self.path))
        try:
            if not capture.isOpened():
                raise SequenceError(f"cannot open video {self.path}")
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                yield _as_bgr(frame)
        finally:
            capture.release()


def _as_bgr(frame: np.ndarray) -> np.ndarray:
    # Some codecs hand back grey or BGRA frames; the tracker wants 3-channel BGR uint8.
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda p: p.name,
    )


def _find_groundtruth(*folders: Path) -> Path | None:
    for folder in folders:
        for name in GROUNDTRUTH_NAMES:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def open_sequence(path: str | os.PathLike[str]) -> FrameSequence:
    """Open a video file or an image folder as a ``FrameSequence``.

    A folder's images are taken from its ``img/`` subfolder when that holds images (OTB
    layout), otherwise from the folder itself, sorted by file name. ``groundtruth.txt`` (or
    OTB's ``groundtruth_rect.txt``) in the folder, or beside the images, becomes
    ``groundtruth``. A video is checked by decoding its first frame. Raises SequenceError for
    a missing path, an empty folder or an unreadable video.
    """
    source = Path(path)
    if not source.exists():
        raise SequenceError(f"no such video file or image folder: {source}")
    if source.is_dir():
        image_folder = source / "img"
        images = _image_files(image_folder) if image_folder.is_dir() else []
        if not images:
            image_folder = source
            images = _image_files(source)
        if not images:
            raise SequenceError(
                f"image folder {source} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}), "
                "neither directly nor in an img/ subfolder"
            )
        groundtruth_path = _find_groundtruth(source, image_folder)
        groundtruth = read_groundtruth(groundtruth_path) if groundtruth_path else None
        return FrameSequence(
            path=source,
            is_video=False,
            frame_count=len(images),
            groundtruth=groundtruth,
            image_paths=images,
        )

    capture = cv2.VideoCapture(str(source))
    try:
        if not capture.isOpened():
            raise SequenceError(f"cannot open video {source} (not a video file or unsupported codec)")
        ok, _ = capture.read()
        if not ok:
            raise SequenceError(f"video {source} has no readable frames")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()
    return FrameSequence(
        path=source,
        is_video=True,
        frame_count=count if count > 0 else None,
        fps=fps if fps > 0 else None,
    )
