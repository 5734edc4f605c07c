"""Training pairs composited on the fly: object cut-outs moving over real background photos.

Each pair is two "frames" of one made-up scene: a view of a background photo with
clutter (other cut-outs, some of them look-alikes of the target) and the target
cut-out. Between the template frame and the search frame the camera pans and zooms
a little, the target moves, turns, changes size and lighting, and may be partly
hidden behind clutter. The target's box is the tight box of its visible-or-hidden
mask, so it is exact by construction.

Negatives (the search crop must score as background) come in three kinds:

``absent``
    The same scene without the target (it left or is fully hidden behind a larger
    occluder); the box is where it would be. Teaches the score to drop when the
    target is gone (lost-target detection).
``lookalike``
    A look-alike stands where the target would be: another cut-out of the same
    category (DaSiamRPN's semantic negatives) or a hue-shifted copy of the target.
``other``
    Another object stands there (pysot's plain negative).

Positives often carry a look-alike near the target, so the network learns to pick
the target among similar objects rather than whatever is most salient.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from .pairs import PairSample
from .sources import TrainingMaterial, load_background, load_stamp

NEGATIVE_KINDS = ("absent", "lookalike", "other")


@dataclass(frozen=True)
class CompositeConfig:
    """How scenes are made. Sizes in frame pixels.

    Attributes:
        frame_size: (width, height) of the made-up frames.
        target_side: (min, max) of the target's side ``sqrt(w*h)``, drawn log-uniformly.
        clutter: (min, max) number of other cut-outs in the scene.
        max_motion: largest target displacement between the two frames, in target sides.
        scale_change: largest relative size change of the target (log-uniform).
        rotation: largest in-plane rotation of the target, degrees.
        camera_pan, camera_zoom: largest pan (fraction of the view) and zoom change.
        lookalike_prob: share of positives with a look-alike near the target.
        occlusion_prob: share of positives with the target partly hidden.
        negative_probs: share of pairs of each negative kind (``NEGATIVE_KINDS`` order).
        cartoon_weight: sampling weight of a cartoon stamp relative to a photographic one.
        artwork_weight: likewise for artwork backgrounds.
        hue_shift: (min, max) hue rotation of a hue-shifted look-alike, degrees.
    """

    frame_size: tuple[int, int] = (480, 360)
    target_side: tuple[float, float] = (22.0, 130.0)
    clutter: tuple[int, int] = (1, 7)
    max_motion: float = 0.8
    scale_change: float = 0.25
    rotation: float = 15.0
    camera_pan: float = 0.08
    camera_zoom: float = 0.1
    lookalike_prob: float = 0.5
    occlusion_prob: float = 0.2
    negative_probs: tuple[float, float, float] = (0.1, 0.1, 0.05)
    cartoon_weight: float = 0.3
    artwork_weight: float = 0.3
    hue_shift: tuple[float, float] = (60.0, 180.0)

    def __post_init__(self) -> None:
        if sum(self.negative_probs) >= 1 or min(self.negative_probs) < 0:
            raise ValueError(f"negative_probs must be >= 0 and sum to < 1, got {self.negative_probs}")
        if not 0 < self.target_side[0] <= self.target_side[1]:
            raise ValueError(f"target_side must satisfy 0 < min <= max, got {self.target_side}")


@dataclass
class _Placement:
    """A cut-out in a frame: the BGRA image and its stamp -> frame affine map (2x3)."""

    rgba: np.ndarray
    affine: np.ndarray

    def box(self) -> np.ndarray:
        """``xywh`` of the cut-out's opaque extent in frame pixels (unclipped)."""
        h, w = self.rgba.shape[:2]
        corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], dtype=np.float64)
        moved = corners @ self.affine.T
        low, high = moved.min(axis=0), moved.max(axis=0)
        return np.array([low[0], low[1], high[0] - low[0] + 1, high[1] - low[1] + 1])


def _affine(
    rgba: np.ndarray, centre: Sequence[float] | np.ndarray, side: float, aspect: float, angle: float, flip: bool
) -> np.ndarray:
    """Map a stamp so that its centre lands on ``centre`` with side ``sqrt(w*h) = side``."""
    h, w = rgba.shape[:2]
    scale = side / math.sqrt(w * h)
    sx, sy = scale * math.sqrt(aspect), scale / math.sqrt(aspect)
    if flip:
        sx = -sx
    theta = math.radians(angle)
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    linear = rotation @ np.diag([sx, sy])
    stamp_centre = np.array([(w - 1) / 2, (h - 1) / 2])
    offset = np.asarray(centre, dtype=np.float64) - linear @ stamp_centre
    return np.hstack([linear, offset[:, None]])


def _paste(frame: np.ndarray, placement: _Placement) -> None:
    """Alpha-blend a placed cut-out into ``frame`` (in place), warping only its bounding rectangle."""
    x, y, w, h = placement.box()
    height, width = frame.shape[:2]
    x0, y0 = max(0, int(math.floor(x)) - 1), max(0, int(math.floor(y)) - 1)
    x1, y1 = min(width, int(math.ceil(x + w)) + 1), min(height, int(math.ceil(y + h)) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    shifted = placement.affine.copy()
    shifted[:, 2] -= (x0, y0)
    patch = cv2.warpAffine(
        placement.rgba,
        shifted,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0, 0),
    )
    alpha = patch[..., 3:4].astype(np.float32) * (1.0 / 255.0)
    region = frame[y0:y1, x0:x1]
    region[...] = (patch[..., :3] * alpha + region * (1.0 - alpha)).astype(np.uint8)


def _hue_shifted(rgba: np.ndarray, degrees: float) -> np.ndarray:
    hsv = cv2.cvtColor(np.ascontiguousarray(rgba[..., :3]), cv2.COLOR_BGR2HSV)
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(round(degrees / 2))) % 180).astype(np.uint8)
    shifted: np.ndarray = rgba.copy()
    shifted[..., :3] = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    return shifted


def _relit(rgba: np.ndarray, rng: np.random.Generator, strength: float = 0.2) -> np.ndarray:
    gains = (1.0 + rng.uniform(-strength, strength)) * rng.uniform(0.92, 1.08, size=3)
    out: np.ndarray = rgba.copy()
    out[..., :3] = np.clip(rgba[..., :3].astype(np.float32) * gains.astype(np.float32), 0, 255).astype(np.uint8)
    return out


class CompositeSource:
    """A training source that makes its pairs (see the module docstring); plugs into ``PairDataset``.

    Images are loaded lazily, once per process (each DataLoader worker keeps its own copy,
    about 100 MB for the full material).
    """

    kind = "composite"

    def __init__(
        self,
        material: TrainingMaterial,
        config: CompositeConfig = CompositeConfig(),
        weight: float = 1.0,
        name: str = "composite",
    ) -> None:
        if not material.stamps or not material.backgrounds:
            raise ValueError("composite source needs stamps and backgrounds")
        self.material = material
        self.config = config
        self.weight = float(weight)
        self.name = name
        stamp_weights = np.array([1.0 if s.photographic else config.cartoon_weight for s in material.stamps])
        self._stamp_p = stamp_weights / stamp_weights.sum()
        background_weights = np.array([1.0 if b.photographic else config.artwork_weight for b in material.backgrounds])
        self._background_p = background_weights / background_weights.sum()
        self._by_category: dict[str, np.ndarray] = {}
        for index, stamp in enumerate(material.stamps):
            self._by_category.setdefault(stamp.category, np.empty(0, np.int64))
            self._by_category[stamp.category] = np.append(self._by_category[stamp.category], index)
        self._stamps: dict[int, np.ndarray] = {}
        self._backgrounds: dict[int, np.ndarray] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_stamps"], state["_backgrounds"] = {}, {}  # workers load their own
        return state

    # ---------------------------------------------------------------- material
    def _stamp(self, index: int) -> np.ndarray:
        image = self._stamps.get(index)
        if image is None:
            image = self._stamps[index] = load_stamp(self.material.stamps[index])
        return image

    def _background(self, index: int) -> np.ndarray:
        image = self._backgrounds.get(index)
        if image is None:
            image = self._backgrounds[index] = load_background(self.material.backgrounds[index])
        return image

    def _random_stamp(self, rng: np.random.Generator, exclude: int = -1) -> int:
        for _ in range(8):
            index = int(rng.choice(len(self._stamp_p), p=self._stamp_p))
            if index != exclude:
                return index
        return index

    def _lookalike(self, target: int, rng: np.random.Generator) -> np.ndarray:
        """Another cut-out of the target's category, or a hue-shifted copy of the target."""
        same = self._by_category[self.material.stamps[target].category]
        if len(same) > 1 and rng.random() < 0.6:
            other = int(rng.choice(same[same != target]))
            return self._stamp(other)
        return _hue_shifted(self._stamp(target), float(rng.uniform(*self.config.hue_shift)))

    # ---------------------------------------------------------------- scenes
    def _camera(self, background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A background -> frame affine map: a random view of the photo at a random zoom."""
        width, height = self.config.frame_size
        bh, bw = background.shape[:2]
        largest = min(bw / width, bh / height)
        zoom = math.exp(rng.uniform(math.log(min(0.6, largest)), math.log(largest)))  # photo px per frame px
        x0 = rng.uniform(0, max(0.0, bw - zoom * width))
        y0 = rng.uniform(0, max(0.0, bh - zoom * height))
        return np.array([[1 / zoom, 0.0, -x0 / zoom], [0.0, 1 / zoom, -y0 / zoom]])

    def _moved_camera(self, camera: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float, np.ndarray]:
        """The camera after a small pan and zoom, and that change in frame pixels:
        a scene point at frame position ``p`` is now at ``factor * p + shift``.
        """
        width, height = self.config.frame_size
        factor = math.exp(rng.uniform(-self.config.camera_zoom, self.config.camera_zoom))
        centre = np.array([(width - 1) / 2, (height - 1) / 2])
        pan = rng.uniform(-self.config.camera_pan, self.config.camera_pan, size=2) * (width, height)
        shift = (1 - factor) * centre + pan  # zoom about the frame centre, then pan
        moved = camera * factor
        moved[:, 2] += shift
        return moved, factor, shift

    def _render(self, background: np.ndarray, camera: np.ndarray, layers: Sequence[_Placement]) -> np.ndarray:
        width, height = self.config.frame_size
        frame = cv2.warpAffine(
            background, camera, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        for placement in layers:
            _paste(frame, placement)
        return frame

    def _random_centre(self, side: float, rng: np.random.Generator) -> np.ndarray:
        width, height = self.config.frame_size
        margin = min(side * 0.6, min(width, height) / 3)
        return np.array([rng.uniform(margin, width - margin), rng.uniform(margin, height - margin)])

    def _clutter(
        self, count: int, target: int, rng: np.random.Generator
    ) -> list[tuple[np.ndarray, np.ndarray, float, float]]:
        """(image, centre, side, angle) of clutter cut-outs; some are look-alikes of the target."""
        low, high = self.config.target_side
        items = []
        for _ in range(count):
            image = (
                self._lookalike(target, rng) if rng.random() < 0.25 else self._stamp(self._random_stamp(rng, target))
            )
            side = math.exp(rng.uniform(math.log(low), math.log(high * 1.3)))
            items.append((image, self._random_centre(side, rng), side, float(rng.uniform(-30, 30))))
        return items

    def sample_pair(self, rng: np.random.Generator) -> PairSample:
        """One template/search pair of frames with ``xywh`` boxes (see ``PairSample``)."""
        cfg = self.config
        background = self._background(int(rng.choice(len(self._background_p), p=self._background_p)))
        target = self._random_stamp(rng)
        target_image = self._stamp(target)
        camera = self._camera(background, rng)

        side = math.exp(rng.uniform(math.log(cfg.target_side[0]), math.log(cfg.target_side[1])))
        aspect = math.exp(rng.uniform(-0.1, 0.1))
        angle = float(rng.uniform(-cfg.rotation, cfg.rotation))
        flip = bool(rng.random() < 0.5)
        centre = self._random_centre(side, rng)
        clutter = self._clutter(int(rng.integers(cfg.clutter[0], cfg.clutter[1] + 1)), target, rng)
        in_front = [bool(rng.random() < 0.3) for _ in clutter]

        def layers(moved: bool, target_layer: Optional[_Placement]) -> list[_Placement]:
            behind: list[_Placement] = []
            front: list[_Placement] = []
            for (image, c, s, a), before in zip(clutter, in_front, strict=True):
                if moved:  # the scene follows the camera; each cut-out also drifts a little
                    c, s = factor * c + shift + rng.normal(0, 0.08 * s, size=2), factor * s
                placement = _Placement(image, _affine(image, c, s, 1.0, a, False))
                (front if before else behind).append(placement)
            return behind + ([target_layer] if target_layer is not None else []) + front

        template_target = _Placement(target_image, _affine(target_image, centre, side, aspect, angle, flip))
        template_frame = self._render(background, camera, layers(False, template_target))
        template_box = template_target.box()

        # The search frame: the camera moved, and the target moved in the scene.
        search_camera, factor, shift = self._moved_camera(camera, rng)
        motion = rng.normal(0, cfg.max_motion / 2, size=2).clip(-cfg.max_motion, cfg.max_motion) * side
        search_centre = factor * (centre + motion) + shift
        width, height = cfg.frame_size
        search_centre = np.clip(search_centre, 0.15 * side, (width - 0.15 * side, height - 0.15 * side))
        search_side = factor * side * math.exp(rng.uniform(-cfg.scale_change, cfg.scale_change))
        search_angle = angle + float(rng.uniform(-cfg.rotation, cfg.rotation) / 2)
        search_aspect = aspect * math.exp(rng.uniform(-0.08, 0.08))

        draw = rng.random()
        thresholds = np.cumsum(cfg.negative_probs)
        negative_kind = next((k for k, t in zip(NEGATIVE_KINDS, thresholds, strict=True) if draw < t), None)
        would_be = _Placement(
            target_image, _affine(target_image, search_centre, search_side, search_aspect, search_angle, flip)
        )
        extra: list[_Placement] = []
        if negative_kind is None:
            search_target: Optional[_Placement] = _Placement(_relit(target_image, rng), would_be.affine)
            search_box = would_be.box()
            if rng.random() < cfg.lookalike_prob:
                image = self._lookalike(target, rng)
                distance = rng.uniform(1.0, 3.0) * search_side
                direction = rng.uniform(0, 2 * math.pi)
                spot = search_centre + distance * np.array([math.cos(direction), math.sin(direction)])
                extra.append(
                    _Placement(
                        image,
                        _affine(
                            image,
                            spot,
                            search_side * math.exp(rng.uniform(-0.2, 0.2)),
                            1.0,
                            float(rng.uniform(-20, 20)),
                            bool(rng.random() < 0.5),
                        ),
                    )
                )
            if rng.random() < cfg.occlusion_prob:
                image = self._stamp(self._random_stamp(rng, target))
                spot = search_centre + rng.uniform(-0.6, 0.6, size=2) * search_side
                occluder = _Placement(image, _affine(image, spot, search_side * rng.uniform(0.4, 0.8), 1.0, 0.0, False))
                extra.append(occluder)  # drawn after the target: in front
        else:
            search_target = None
            search_box = would_be.box()
            if negative_kind == "absent" and rng.random() < 0.4:
                # Fully hidden behind a larger occluder at the target's place.
                image = self._stamp(self._random_stamp(rng, target))
                extra.append(_Placement(image, _affine(image, search_centre, search_side * 1.8, 1.0, 0.0, False)))
                search_box = extra[-1].box()
            elif negative_kind != "absent":
                image = (
                    self._lookalike(target, rng)
                    if negative_kind == "lookalike"
                    else self._stamp(self._random_stamp(rng, target))
                )
                impostor = _Placement(
                    image,
                    _affine(image, search_centre, search_side, search_aspect, search_angle, bool(rng.random() < 0.5)),
                )
                extra.append(impostor)
                search_box = impostor.box()
        # Look-alikes, occluders and impostors go on top of everything else.
        search_frame = self._render(background, search_camera, layers(True, search_target) + extra)
        return PairSample(
            template_frame,
            _clip_box(template_box, cfg.frame_size),
            search_frame,
            _clip_box(search_box, cfg.frame_size),
            negative_kind is not None,
            self.name,
        )


def _clip_box(box: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """``xywh`` clipped to the frame (at least 2 px per side)."""
    width, height = frame_size
    x0, y0 = np.clip(box[:2], 0, (width - 2, height - 2))
    x1 = float(np.clip(box[0] + box[2], x0 + 2, width))
    y1 = float(np.clip(box[1] + box[3], y0 + 2, height))
    return np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float64)
