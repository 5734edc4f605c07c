"""Training data sources: where template/search frames and target boxes come from.

Four kinds, mirroring what pysot trains on (VID/YouTube-BB sequences, COCO/DET
stills):

``sequences``
    OTB-style folders: ``img/*.jpg`` (or images directly) + ``groundtruth.txt``
    (``x,y,w,h`` per frame). A path may be one sequence or a folder of them.
``video``
    A video file with a box file (one ``x,y,w,h`` line per frame; rows with NaN or
    non-positive size mark frames without the target). Default box file: the
    video's name with ``.txt`` (``walk.mp4`` -> ``walk.txt``), or ``groundtruth.txt``
    beside it.
``images``
    Still images with boxes, from an annotation file: CSV/text lines
    ``relative/path.jpg,x,y,w,h`` (several lines per image allowed), or COCO JSON
    (``images`` + ``annotations`` with ``bbox``). Each object is a one-frame track.
``unlabeled``
    Still images without boxes (self-supervised): a random textured patch is the
    target and the search image is a rotated/rescaled/relit view of the same image.
``composite``
    Not a folder of frames: a training-material manifest (``training/sources.py``)
    whose cut-outs and backgrounds ``training/composite.py`` turns into pairs on the
    fly. Opened by ``trainer.open_source``, never detected automatically.

Boxes are ``xywh``: top-left, pixels, covering ``x..x+w-1`` (centre ``x + (w-1)/2``).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from siamrpnpp_ros.sequences import IMAGE_EXTENSIONS, SequenceError, open_sequence, read_groundtruth

from .boxes import valid_xywh

LOGGER = logging.getLogger(__name__)

SOURCE_KINDS = ("auto", "sequences", "video", "images", "unlabeled", "composite")
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
ANNOTATION_NAMES = ("annotations.csv", "annotations.txt", "annotations.json", "boxes.csv", "boxes.txt")
#: Default frame range (max frame distance of a positive pair) per kind; pysot uses 100 for VID.
DEFAULT_FRAME_RANGE = {"sequences": 100, "video": 100, "images": 0, "unlabeled": 0}
#: COCO boxes smaller than this (pixels of area) are skipped as untrackable.
MIN_STILL_BOX_AREA = 100.0


class DataError(ValueError):
    """A training data path that cannot be used (missing, empty, malformed)."""


# ------------------------------------------------------------------ frame reading
class _LRU:
    """Tiny per-process LRU cache of decoded frames (each DataLoader worker has its own)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def get(self, key: tuple) -> Optional[np.ndarray]:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: tuple, value: np.ndarray) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.capacity:
            self.items.popitem(last=False)


_FRAME_CACHE = _LRU(48)
_CAPTURES: dict[tuple[int, str], cv2.VideoCapture] = {}


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image as HxWx3 uint8 BGR (cached); DataError if unreadable."""
    key = ("image", os.fspath(path))
    frame = _FRAME_CACHE.get(key)
    if frame is None:
        frame = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise DataError(f"cannot read image {path}")
        _FRAME_CACHE.put(key, frame)
    return frame


def read_video_frame(path: str | os.PathLike[str], index: int) -> np.ndarray:
    """Frame ``index`` (0-based) of a video as HxWx3 uint8 BGR (seeks; cached per process)."""
    name = os.fspath(path)
    key = ("video", name, int(index))
    frame = _FRAME_CACHE.get(key)
    if frame is not None:
        return frame
    # One capture per (process, file): DataLoader workers must not share decoder state.
    cap_key = (os.getpid(), name)
    capture = _CAPTURES.get(cap_key)
    if capture is None or not capture.isOpened():
        capture = cv2.VideoCapture(name)
        if not capture.isOpened():
            raise DataError(f"cannot open video {name}")
        _CAPTURES[cap_key] = capture
    position = int(capture.get(cv2.CAP_PROP_POS_FRAMES))
    if position != index:
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
    ok, frame = capture.read()
    if not ok or frame is None:
        raise DataError(f"cannot read frame {index} of video {name}")
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    _FRAME_CACHE.put(key, frame)
    return frame


# ------------------------------------------------------------------ tracks and sources
@dataclass
class Track:
    """One target over a run of frames.

    ``frames``: image paths, or ``(video_path, frame_index)`` pairs. ``boxes``: (N, 4)
    ``xywh`` per frame, or None for an unlabeled still (self-supervised). ``valid``:
    indices of the frames whose box is usable (all frames when unlabeled).
    """

    name: str
    frames: list
    boxes: Optional[np.ndarray]
    valid: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if self.boxes is None:
            self.valid = np.arange(len(self.frames))
        else:
            self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
            if len(self.boxes) != len(self.frames):
                count = min(len(self.boxes), len(self.frames))
                LOGGER.warning(
                    "%s: %d frames but %d boxes; using the first %d",
                    self.name,
                    len(self.frames),
                    len(self.boxes),
                    count,
                )
                self.frames = self.frames[:count]
                self.boxes = self.boxes[:count]
            self.valid = np.flatnonzero(valid_xywh(self.boxes))

    @property
    def labeled(self) -> bool:
        """True when the track has boxes (False for self-supervised stills)."""
        return self.boxes is not None

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as HxWx3 uint8 BGR."""
        entry = self.frames[index]
        if isinstance(entry, tuple):
            return read_video_frame(entry[0], entry[1])
        return read_image(entry)


@dataclass
class TrainingSource:
    """A set of tracks of one kind, sampled with probability proportional to ``weight``.

    ``frame_range``: a positive pair's search frame is at most this many frames from
    its template frame (0: the same frame, as for stills).
    """

    name: str
    kind: str
    tracks: list[Track]
    frame_range: int
    weight: float = 1.0

    def __post_init__(self) -> None:
        self.tracks = [t for t in self.tracks if len(t.valid) > 0]
        if not self.tracks:
            raise DataError(f"training source {self.name} has no usable frames (no valid boxes)")
        if not self.weight > 0:
            raise DataError(f"training source {self.name}: weight must be > 0, got {self.weight}")

    @property
    def frame_count(self) -> int:
        """Usable frames (with a valid box) over all tracks."""
        return int(sum(len(t.valid) for t in self.tracks))


# ------------------------------------------------------------------ loaders
def _sequence_track(folder: Path) -> Track:
    sequence = open_sequence(folder)
    if sequence.groundtruth is None:
        raise DataError(f"sequence {folder} has no groundtruth.txt")
    return Track(folder.name, [str(p) for p in sequence.image_paths], sequence.groundtruth)


def _is_sequence_folder(folder: Path) -> bool:
    return folder.is_dir() and any((folder / n).is_file() for n in ("groundtruth.txt", "groundtruth_rect.txt"))


def load_sequences(path: Path) -> list[Track]:
    """One OTB-style sequence folder, or every such folder directly under ``path``."""
    if _is_sequence_folder(path):
        return [_sequence_track(path)]
    tracks = []
    for child in sorted(p for p in path.iterdir() if _is_sequence_folder(p)):
        try:
            tracks.append(_sequence_track(child))
        except SequenceError as exc:
            LOGGER.warning("skipping %s: %s", child, exc)
    if not tracks:
        raise DataError(f"{path} holds no sequence folders (images + groundtruth.txt)")
    return tracks


def default_video_boxes(video: Path) -> Path:
    """The box file a video uses when none is given: ``<stem>.txt`` or ``groundtruth.txt`` beside it."""
    for candidate in (
        video.with_suffix(".txt"),
        video.parent / f"{video.stem}.groundtruth.txt",
        video.parent / "groundtruth.txt",
    ):
        if candidate.is_file():
            return candidate
    raise DataError(f"no box file for video {video} (expected {video.with_suffix('.txt').name}); pass boxes=")


def load_video(path: Path, boxes: Optional[Path]) -> list[Track]:
    """A video file and its per-frame box file as one track."""
    box_path = boxes if boxes is not None else default_video_boxes(path)
    try:
        rows = read_groundtruth(box_path)
    except SequenceError as exc:
        raise DataError(str(exc)) from None
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise DataError(f"cannot open video {path}")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    if count <= 0:
        count = len(rows)
    count = min(count, len(rows))
    return [Track(path.stem, [(str(path), i) for i in range(count)], rows[:count])]


def _annotation_rows(annotation_file: Path) -> list[tuple[str, list[float]]]:
    rows: list[tuple[str, list[float]]] = []
    if annotation_file.suffix.lower() == ".json":
        document = json.loads(annotation_file.read_text(encoding="utf-8"))
        images = {img["id"]: img["file_name"] for img in document.get("images", [])}
        for ann in document.get("annotations", []):
            if ann.get("iscrowd"):
                continue
            x, y, w, h = (float(v) for v in ann["bbox"])
            if w * h < MIN_STILL_BOX_AREA or ann["image_id"] not in images:
                continue
            rows.append((images[ann["image_id"]], [x, y, w, h]))
        return rows
    with annotation_file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = next(csv.reader([text]))
            if len(fields) < 5:
                raise DataError(f"{annotation_file}:{number}: expected path,x,y,w,h, got {text!r}")
            try:
                rows.append((fields[0].strip(), [float(f) for f in fields[1:5]]))
            except ValueError:
                raise DataError(f"{annotation_file}:{number}: expected path,x,y,w,h, got {text!r}") from None
    return rows


def load_images(path: Path, annotations: Optional[Path]) -> list[Track]:
    """Annotated stills: one one-frame track per box. ``path`` is the image folder (or the
    annotation file itself); image paths in the file are relative to the folder.
    """
    if annotations is None:
        if path.is_file():
            annotations, path = path, path.parent
        else:
            annotations = next((path / n for n in ANNOTATION_NAMES if (path / n).is_file()), None)
            if annotations is None:
                raise DataError(f"{path}: no annotation file ({', '.join(ANNOTATION_NAMES)})")
    folder = path if path.is_dir() else path.parent
    tracks = []
    for index, (name, box) in enumerate(_annotation_rows(annotations)):
        image_path = Path(name) if os.path.isabs(name) else folder / name
        tracks.append(Track(f"{Path(name).stem}#{index}", [str(image_path)], np.asarray([box])))
    if not tracks:
        raise DataError(f"{annotations} lists no boxes")
    return tracks


def list_images(path: Path) -> list[Path]:
    """Image files under ``path`` (recursively), sorted; or ``path`` itself if it is an image."""
    if path.is_file():
        return [path] if path.suffix.lower() in IMAGE_EXTENSIONS else []
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def load_unlabeled(path: Path) -> list[Track]:
    """Every image under ``path`` as a box-less one-frame track."""
    images = list_images(path)
    if not images:
        raise DataError(f"{path} holds no images")
    return [Track(p.stem, [str(p)], None) for p in images]


def detect_kind(path: Path) -> str:
    """Guess the source kind of ``path`` (see the module docstring)."""
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in VIDEO_EXTENSIONS:
            return "video"
        if suffix in (".json", ".csv", ".txt"):
            return "images"
        if suffix in IMAGE_EXTENSIONS:
            return "unlabeled"
        raise DataError(f"cannot tell what {path} is (not a video, image or annotation file)")
    if _is_sequence_folder(path) or any(_is_sequence_folder(p) for p in path.iterdir() if p.is_dir()):
        return "sequences"
    if any((path / n).is_file() for n in ANNOTATION_NAMES):
        return "images"
    return "unlabeled"


def load_source(
    path: str | os.PathLike[str],
    kind: str = "auto",
    boxes: Optional[str | os.PathLike[str]] = None,
    annotations: Optional[str | os.PathLike[str]] = None,
    frame_range: Optional[int] = None,
    weight: float = 1.0,
) -> TrainingSource:
    """Open one training data path as a :class:`TrainingSource` (kind detected when ``'auto'``)."""
    source_path = Path(path).expanduser()
    if not source_path.exists():
        raise DataError(f"training data path {source_path} does not exist")
    if kind not in SOURCE_KINDS or kind == "composite":
        raise DataError(f"unknown data kind {kind!r} for a track source; valid: {', '.join(SOURCE_KINDS[:-1])}")
    if kind == "auto":
        kind = detect_kind(source_path)
    if kind == "sequences":
        tracks = load_sequences(source_path)
    elif kind == "video":
        tracks = load_video(source_path, Path(boxes) if boxes else None)
    elif kind == "images":
        tracks = load_images(source_path, Path(annotations) if annotations else None)
    else:
        tracks = load_unlabeled(source_path)
    frames = DEFAULT_FRAME_RANGE[kind] if frame_range is None else int(frame_range)
    source = TrainingSource(str(source_path), kind, tracks, frames, float(weight))
    LOGGER.info("data %s: %s, %d tracks, %d frames", source_path, kind, len(source.tracks), source.frame_count)
    return source
