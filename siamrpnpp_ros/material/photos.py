"""Real photos for the synthetic benchmark: OpenCV's sample images, scikit-image's, or textures.

Search order: folders given by the caller; Debian's ``opencv-doc`` samples
(``/usr/share/doc/opencv-doc/examples/data``, ~70 photos once non-photos such as
logos, charts and calibration boards are dropped); the photos bundled with
scikit-image, if installed. When none is found, procedurally generated
textures stand in, and :attr:`PhotoPool.origin` says so (results on those are
not comparable with real-photo benchmarks).

Photos are split reproducibly into ``train`` / ``test`` groups by a hash of
their name (about a quarter test), keeping near-duplicates (stereo pairs,
numbered series) on the same side, so a model trained on ``train`` sequences
is evaluated on backgrounds and objects it never saw.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

OPENCV_DOC_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MIN_PHOTO_SIDE = 180  # pixels; smaller images make blurry backgrounds

# opencv-doc files that are not photos of the world (charts, logos, text, masks, renders,
# disparity maps) or are one of many near-identical calibration shots.
_NOT_PHOTOS = frozenset(
    {
        "aloeGT",
        "chessboard",
        "digits",
        "ellipses",
        "gradient",
        "imageTextN",
        "imageTextR",
        "mask",
        "ml",
        "notes",
        "opencv-logo",
        "opencv-logo-white",
        "pic1",
        "pic2",
        "pic3",
        "pic4",
        "pic5",
        "pic6",
        "templ",
        "tmpl",
        "text_defocus",
        "text_motion",
        "detect_blob",
        "LinuxLogo",
        "WindowsLogo",
        "cards",
        "Blender_Suzanne1",
        "Blender_Suzanne2",
    }
)
_CALIBRATION_SERIES = re.compile(r"^(left|right)\d\d$")
# Photos of one scene; they share a split group.
_GROUP_ALIASES = {"right": "left"}
_SKIMAGE_PHOTOS = (
    "astronaut",
    "camera",
    "cat",
    "chelsea",
    "coffee",
    "coins",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "motorcycle_left",
    "page",
    "rocket",
    "retina",
    "skin",
    "text",
)
PHOTO_SPLITS = ("all", "train", "test")


@dataclass(frozen=True)
class Photo:
    """A named photo and how to load it (HxWx3 uint8 BGR)."""

    name: str
    loader: Callable[[], np.ndarray]

    def load(self) -> np.ndarray:
        """The photo as HxWx3 uint8 BGR (grey and BGRA converted)."""
        image = self.loader()
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        return np.ascontiguousarray(image.astype(np.uint8))

    @property
    def group(self) -> str:
        """Split group: the name without series suffixes (``aloeL``/``aloeR`` -> ``aloe``)."""
        stem = re.sub(r"(\d+|L|R|A|B|_original|_modified)$", "", self.name) or self.name
        return _GROUP_ALIASES.get(stem, stem)

    @property
    def split(self) -> str:
        """``'test'`` for about a quarter of the groups (by hash), else ``'train'``."""
        digest = hashlib.sha1(self.group.encode("utf-8")).digest()
        return "test" if digest[0] % 4 == 0 else "train"


@dataclass(frozen=True)
class PhotoPool:
    """Photos to build sequences from. ``origin``: where they came from (for the manifest)."""

    photos: tuple[Photo, ...]
    origin: str

    def __len__(self) -> int:
        return len(self.photos)

    def select(self, split: str) -> "PhotoPool":
        """Only the ``train`` or ``test`` photos (``all``: unchanged). Needs at least 3 photos."""
        if split not in PHOTO_SPLITS:
            raise ValueError(f"photo split must be one of {', '.join(PHOTO_SPLITS)}, got {split!r}")
        if split == "all":
            return self
        chosen = tuple(p for p in self.photos if p.split == split)
        if len(chosen) < 3:
            raise ValueError(f"only {len(chosen)} {split} photos in {self.origin}; use --photo-split all")
        return PhotoPool(chosen, f"{self.origin} ({split} split)")


def _file_photo(path: Path) -> Photo:
    def load() -> np.ndarray:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read photo {path}")
        return image

    return Photo(path.stem, load)


def _usable_file(path: Path) -> bool:
    if path.suffix.lower() not in PHOTO_EXTENSIONS or path.stem in _NOT_PHOTOS:
        return False
    if (
        path.parent == OPENCV_DOC_DATA
        and _CALIBRATION_SERIES.match(path.stem)
        and path.stem not in ("left01", "right01")
    ):
        return False
    image = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_2)
    return image is not None and min(image.shape[:2]) * 2 >= MIN_PHOTO_SIDE


def photos_in(folders: Iterable[str | os.PathLike[str]]) -> list[Photo]:
    """Usable photos in ``folders`` (not recursive), sorted by file name."""
    found: list[Photo] = []
    for folder in folders:
        path = Path(folder)
        if path.is_dir():
            found += [_file_photo(p) for p in sorted(path.iterdir()) if p.is_file() and _usable_file(p)]
    return found


def skimage_photos() -> list[Photo]:
    """scikit-image's bundled photos (empty when scikit-image is not installed)."""
    try:
        from skimage import data as skdata
    except ImportError:
        return []
    photos = []
    for name in _SKIMAGE_PHOTOS:
        function = getattr(skdata, name, None)
        if function is None:
            continue

        def load(function: Callable[[], Any] = function) -> np.ndarray:  # default binds the loop variable
            image = np.asarray(function())
            if image.dtype != np.uint8:
                image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
            return image[..., ::-1] if image.ndim == 3 else image  # RGB -> BGR

        photos.append(Photo(f"skimage_{name}", load))
    return photos


def generated_textures(count: int = 24, size: int = 512, seed: int = 12345) -> list[Photo]:
    """Procedural colour textures (multi-scale noise, stripes, blobs): a last-resort stand-in."""

    def make(index: int) -> np.ndarray:
        rng = np.random.default_rng([seed, index])
        image = np.zeros((size, size, 3), np.float32)
        for octave in (4, 8, 16, 32, 64):
            noise = rng.random((octave, octave, 3)).astype(np.float32)
            image += cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC) * (64.0 / octave**0.5)
        y, x = np.mgrid[0:size, 0:size].astype(np.float32)
        angle = rng.uniform(0, np.pi)
        stripes = np.sin((x * np.cos(angle) + y * np.sin(angle)) / rng.uniform(4, 30))
        image += stripes[..., None] * rng.uniform(10, 40, size=3).astype(np.float32)
        for _ in range(int(rng.integers(5, 20))):
            centre = tuple(int(v) for v in rng.integers(0, size, 2))
            colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
            cv2.circle(image, centre, int(rng.integers(8, 60)), colour, -1, lineType=cv2.LINE_AA)
        image -= image.min()
        image *= 255.0 / max(float(image.max()), 1e-6)
        return image.astype(np.uint8)

    return [Photo(f"texture_{i:02d}", functools.partial(make, i)) for i in range(count)]


def find_photos(folders: Sequence[str | os.PathLike[str]] = (), allow_generated: bool = True) -> PhotoPool:
    """The best photo pool available (see the module docstring); ValueError if none."""
    if folders:
        photos = photos_in(folders)
        if not photos:
            raise ValueError(f"no usable photos (>= {MIN_PHOTO_SIDE} px) in {', '.join(map(str, folders))}")
        return PhotoPool(tuple(photos), "given folders: " + ", ".join(map(str, folders)))
    photos = photos_in([OPENCV_DOC_DATA])
    if len(photos) >= 3:
        return PhotoPool(tuple(photos), f"opencv-doc ({OPENCV_DOC_DATA})")
    photos = skimage_photos()
    if len(photos) >= 3:
        return PhotoPool(tuple(photos), "scikit-image data")
    if not allow_generated:
        raise ValueError(
            "no real photos found: install Debian's opencv-doc (apt-get install opencv-doc) or "
            "scikit-image (pip install scikit-image), or pass --photos DIR"
        )
    return PhotoPool(tuple(generated_textures()), "generated textures (no opencv-doc / scikit-image photos found)")


def pool_for(pool: Optional[PhotoPool], split: str) -> PhotoPool:
    """``pool`` (default: :func:`find_photos`) narrowed to the photo ``split`` (``all``, ``train``
    or ``test``); ValueError when that leaves no photo.
    """
    chosen = (pool or find_photos()).select(split)
    if len(chosen) < 1:
        raise ValueError("the photo pool is empty")
    return chosen


def pool_from_images(images: Sequence[np.ndarray], origin: str = "in-memory images") -> PhotoPool:
    """A pool of in-memory BGR images (tests, custom generators)."""
    return PhotoPool(tuple(Photo(f"image_{i:02d}", _constant(im)) for i, im in enumerate(images)), origin)


def _constant(image: np.ndarray) -> Callable[[], np.ndarray]:
    """A loader that returns ``image`` itself."""
    return lambda: image


def default_photo_origin() -> Optional[str]:
    """Where :func:`find_photos` would take real photos from, or None."""
    if len(photos_in([OPENCV_DOC_DATA])) >= 3:
        return str(OPENCV_DOC_DATA)
    if len(skimage_photos()) >= 3:
        return "scikit-image"
    return None
