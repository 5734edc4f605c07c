"""The default model's training material: object cut-outs and background photos from Debian.

None of it comes from the test domain (Debian's ``opencv-doc`` photos and videos and
scikit-image's photos, see ``material/photos.py``): training, validation, epoch choice and
tuning never see a pixel of those.

Targets
    ``tuxpaint-stamps-default``: about 800 PNG stamps with an alpha channel. About 340 are
    photographs of real objects (animals, food, plants, vehicles, household items, ...);
    the rest are cartoons, letters and symbols. :func:`is_photographic` tells them apart
    by colour statistics; cartoons of objects are kept as a minority (``cartoon_weight``),
    letters and symbols are dropped.
Backgrounds
    Photographs at 1280-5120 px: the photographic wallpapers of ``plasma-workspace-wallpapers``
    and ``mate-backgrounds`` and the photo templates of ``tuxpaint-data``. Their artwork
    wallpapers are kept as a minority too.

Both are split reproducibly into ``train`` and ``val`` by a hash of the file name;
validation (epoch choice, tuning) uses only ``val``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from siamrpnpp_ros.material.cache import file_digest
from siamrpnpp_ros.material.debian import UnpackedPackage, default_cache, fetch_package

LOGGER = logging.getLogger(__name__)

STAMPS_PACKAGE = "tuxpaint-stamps-default"
STAMPS_DIR = "usr/share/tuxpaint/stamps"
#: (package, folder inside it, file names that are photographs; None = every image there)
BACKGROUND_FOLDERS: tuple[tuple[str, str, Optional[frozenset[str]]], ...] = (
    ("tuxpaint-data", "usr/share/tuxpaint/templates", None),
    ("mate-backgrounds", "usr/share/backgrounds/mate/nature", None),
    ("mate-backgrounds", "usr/share/backgrounds/mate/abstract", frozenset({"Elephants_3840x2160"})),
    (
        "plasma-workspace-wallpapers",
        "usr/share/wallpapers",
        frozenset(
            {
                "BytheWater",
                "ColdRipple",
                "ColorfulCups",
                "DarkestHour",
                "EveningGlow",
                "FallenLeaf",
                "Grey",
                "Kite",
                "OneStandsOut",
                "Path",
                "summer_1am",
                "Volna",
            }
        ),
    ),
)
ARTWORK_FOLDERS: tuple[tuple[str, str], ...] = (
    ("plasma-workspace-wallpapers", "usr/share/wallpapers"),
    ("mate-backgrounds", "usr/share/backgrounds/mate/desktop"),
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Stamp categories (top-level folders) whose non-photographic stamps are letters and signs.
SYMBOL_CATEGORIES = frozenset({"symbols"})
#: Longest side stamps and backgrounds are kept at in memory (pixels).
STAMP_SIDE = 256
BACKGROUND_SIDE = 1280
VAL_SHARE = 6  # one name hash in 6 goes to validation
SPLITS = ("train", "val")


def split_of(name: str) -> str:
    """``'val'`` for about one name in ``VAL_SHARE`` (by hash), else ``'train'``."""
    return "val" if hashlib.sha1(name.encode("utf-8")).digest()[0] % VAL_SHARE == 0 else "train"


def is_photographic(rgba: np.ndarray) -> bool:
    """Whether a stamp looks like a photograph rather than a cartoon, letter or symbol.

    Photographs have many distinct colours (>= 200 after quantising each channel to 32
    levels) and no dominant flat colours (the 10 most common cover < 50% of the opaque
    pixels). Checked by eye on all of ``tuxpaint-stamps-default`` 2022.06.04.
    """
    opaque = rgba[..., 3] > 128 if rgba.shape[2] == 4 else np.ones(rgba.shape[:2], bool)
    pixels = rgba[..., :3][opaque]
    if len(pixels) < 64:
        return False
    quantised = (pixels // 8).astype(np.int32)
    codes = quantised[:, 0] * 1024 + quantised[:, 1] * 32 + quantised[:, 2]
    counts = np.bincount(codes)
    top_share = np.sort(counts)[-10:].sum() / len(codes)
    return bool(np.count_nonzero(counts) >= 200 and top_share < 0.5)


@dataclass(frozen=True)
class ImageEntry:
    """One stamp or background: where it is, what it is, which split."""

    path: str
    name: str
    category: str
    photographic: bool
    split: str
    sha256: str


@dataclass(frozen=True)
class TrainingMaterial:
    """The catalogue of stamps and backgrounds, with the packages they come from.

    ``pretrained_weights``: backbone weights the run starts from, by key
    (``material/imagenet_weights.py``'s ``manifest_entry``: package, version, licence, file,
    SHA-256); empty for a model trained from scratch.
    """

    stamps: tuple[ImageEntry, ...]
    backgrounds: tuple[ImageEntry, ...]
    packages: dict[str, str]
    pretrained_weights: dict[str, dict[str, Any]] = field(default_factory=dict)

    def select(self, split: str) -> "TrainingMaterial":
        """The entries of one split (``train`` or ``val``), same packages."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return TrainingMaterial(
            tuple(s for s in self.stamps if s.split == split),
            tuple(b for b in self.backgrounds if b.split == split),
            self.packages,
            self.pretrained_weights,
        )

    def counts(self) -> dict[str, int]:
        """How many stamps and backgrounds there are, photographic or not."""
        return {
            "stamps_photographic": sum(s.photographic for s in self.stamps),
            "stamps_cartoon": sum(not s.photographic for s in self.stamps),
            "backgrounds_photographic": sum(b.photographic for b in self.backgrounds),
            "backgrounds_artwork": sum(not b.photographic for b in self.backgrounds),
        }

    def with_pretrained_weights(self, entry: dict[str, Any]) -> "TrainingMaterial":
        """A copy that also records the pretrained weights ``entry`` (keyed by its ``key``)."""
        return dataclasses.replace(self, pretrained_weights={**self.pretrained_weights, str(entry["key"]): entry})

    def save(self, path: Path) -> None:
        """Write the manifest: package versions, pretrained weights, counts, and every file with
        its hash and split.
        """
        document = {
            "packages": self.packages,
            "pretrained_weights": self.pretrained_weights,
            "counts": {split: self.select(split).counts() for split in SPLITS},
            "stamps": [asdict(s) for s in self.stamps],
            "backgrounds": [asdict(b) for b in self.backgrounds],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=1))

    @classmethod
    def load(cls, path: Path) -> "TrainingMaterial":
        """Read a manifest written by :meth:`save`."""
        document = json.loads(Path(path).read_text())
        return cls(
            tuple(ImageEntry(**s) for s in document["stamps"]),
            tuple(ImageEntry(**b) for b in document["backgrounds"]),
            dict(document["packages"]),
            dict(document.get("pretrained_weights", {})),  # manifests before v3 have none
        )


def _largest_variant(folder: Path) -> Optional[Path]:
    """A KDE wallpaper folder's largest image (``contents/images/<W>x<H>.<ext>``)."""
    images = [p for p in (folder / "contents" / "images").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES]

    def area(path: Path) -> int:
        width, _, height = path.stem.partition("x")
        return int(width) * int(height) if width.isdigit() and height.isdigit() else 0

    return max(images, key=area) if images else None


def _background_files(package: UnpackedPackage, folder: str) -> list[Path]:
    base = package.path(folder)
    if not base.is_dir():
        return []
    if (next(base.iterdir(), base) / "contents").is_dir():  # KDE layout: one folder per wallpaper
        found = (_largest_variant(d) for d in sorted(base.iterdir()) if d.is_dir())
        return [p for p in found if p is not None]
    return sorted(p for p in base.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _background_name(path: Path) -> str:
    return path.parents[2].name if path.parent.name == "images" else path.stem


CATALOGUE_VERSION = 1  # bump when the cataloguing rules change


def build_material(cache: Optional[Path] = None, progress: bool = True) -> TrainingMaterial:
    """Fetch the packages (``material/debian.py``) and catalogue their stamps and backgrounds.

    The catalogue is kept in the cache beside the packages, keyed by their versions, so
    later calls only check the versions.
    """
    cache = cache if cache is not None else default_cache()
    names = sorted({STAMPS_PACKAGE} | {p for p, _, _ in BACKGROUND_FOLDERS} | {p for p, _ in ARTWORK_FOLDERS})
    packages = {name: fetch_package(name, cache) for name in names}
    key = hashlib.sha1(repr((CATALOGUE_VERSION, sorted((n, p.version) for n, p in packages.items()))).encode())
    catalogue = cache / f"material-{key.hexdigest()[:12]}.json"
    if catalogue.is_file():
        return TrainingMaterial.load(catalogue)
    material = _catalogue(packages, progress)
    material.save(catalogue)
    return material


def _catalogue(packages: dict[str, UnpackedPackage], progress: bool) -> TrainingMaterial:
    from tqdm import tqdm

    stamps: list[ImageEntry] = []
    stamp_root = packages[STAMPS_PACKAGE].path(STAMPS_DIR)
    files = sorted(stamp_root.rglob("*.png"))
    for path in tqdm(files, desc="stamps", disable=not progress):
        rgba = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4 or min(rgba.shape[:2]) < 24:
            continue
        relative = path.relative_to(stamp_root)
        category = relative.parts[0]
        photographic = bool(is_photographic(rgba))
        if not photographic and category in SYMBOL_CATEGORIES:
            continue
        name = str(relative.with_suffix(""))
        stamps.append(ImageEntry(str(path), name, category, photographic, split_of(name), file_digest(path)))

    backgrounds: list[ImageEntry] = []
    seen: set[str] = set()
    for package_name, folder, photos in BACKGROUND_FOLDERS:
        for path in _background_files(packages[package_name], folder):
            name = _background_name(path)
            if photos is None or name in photos:
                seen.add(str(path))
                backgrounds.append(ImageEntry(str(path), name, package_name, True, split_of(name), file_digest(path)))
    for package_name, folder in ARTWORK_FOLDERS:
        for path in _background_files(packages[package_name], folder):
            if str(path) not in seen:
                name = _background_name(path)
                backgrounds.append(ImageEntry(str(path), name, package_name, False, split_of(name), file_digest(path)))
    material = TrainingMaterial(tuple(stamps), tuple(backgrounds), {n: p.version for n, p in packages.items()})
    LOGGER.info("training material: %s", {split: material.select(split).counts() for split in SPLITS})
    return material


def load_stamp(entry: ImageEntry, side: int = STAMP_SIDE) -> np.ndarray:
    """A stamp as HxWx4 uint8 BGRA, its longest side at most ``side``, cropped to its opaque part."""
    rgba = cv2.imread(entry.path, cv2.IMREAD_UNCHANGED)
    if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"cannot read stamp {entry.path} as BGRA")
    ys, xs = np.nonzero(rgba[..., 3] > 16)
    rgba = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    scale = side / max(rgba.shape[:2])
    if scale < 1:
        rgba = cv2.resize(rgba, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgba)


def load_background(entry: ImageEntry, side: int = BACKGROUND_SIDE) -> np.ndarray:
    """A background as HxWx3 uint8 BGR, its longest side at most ``side``."""
    image = cv2.imread(entry.path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read background {entry.path}")
    scale = side / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def export_backgrounds(entries: Sequence[ImageEntry], out_dir: Path, side: int = BACKGROUND_SIDE) -> int:
    """Write backgrounds as JPEG files (for the sequence builder and self-supervised stills)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        target = out_dir / f"{entry.category}_{entry.name}.jpg"
        if not target.is_file():
            cv2.imwrite(str(target), load_background(entry, side), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return len(entries)
