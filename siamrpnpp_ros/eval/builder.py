"""Build OTB-format tracking sequences with exact ground truth from real photos.

Each sequence moves a target over a real photo and records where it is, so the
ground truth is exact by construction, not annotated by hand. Two kinds:

``object``
    A crop of one photo (rectangle or ellipse) moves over another photo used as the
    background: smooth random trajectory, optional camera pan of the background.
``window``
    The target is a region of the background photo itself and the *camera* moves:
    pan, zoom (scale change) and roll (rotation) keep it in view, like a hand-held
    camera following an object in a scene.

Challenge attributes, enabled per sequence at random (recorded in the manifest):
``scale`` change, in-plane ``rotation``, ``fast_motion``, ``motion_blur`` (along
the target's velocity), ``occlusion`` (crops of other photos cross in front of
the target), ``distractors`` (recoloured copies of the target's appearance move
nearby), ``illumination`` (global gain and a moving shading ramp), and
``camera_motion`` (background pan, object kind).

Ground truth: ``groundtruth.txt`` holds ``x,y,w,h`` per frame (3 decimals), the
axis-aligned box of the target's full geometric extent (occluded parts
included, motion blur excluded), clipped to the frame, in the tracker's
convention: the box covers pixels ``x .. x+w-1`` (centre ``x + (w-1)/2``).
Everything is drawn from ``numpy.random.default_rng([seed, index])``: the same
seed gives the same frames, boxes and manifest.

Layout written::

    OUT/benchmark.json             seed, sizes, photo source, per-sequence attributes
    OUT/seq000/img/0001.jpg ...    frames
    OUT/seq000/groundtruth.txt

CLI::

    python -m siamrpnpp_ros.eval.builder --out bench --sequences 20 --frames 150 --seed 0

``--long-term`` builds long-term sequences instead (the target is absent for 1-3 s at a
time, ground truth ``nan`` there; see :mod:`.longterm_builder`)::

    python -m siamrpnpp_ros.eval.builder --long-term --out lt_bench --sequences 20 --seed 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from siamrpnpp_ros.material.compositor import (
    Exposure,
    Layer,
    background_view,
    cut_target,
    extent_box,
    extent_to_xywh,
    output_problems,
    sequence_indices,
    similarity,
    smooth_path,
    textured_region,
    velocity_blur,
    write_sequence,
)
from siamrpnpp_ros.material.photos import PHOTO_SPLITS, PhotoPool, find_photos, pool_for

from .longterm_builder import (
    ABSENCE_KINDS,
    LONG_TERM_ATTRIBUTES,
    LongTermConfig,
    build_long_term_benchmark,
)

GENERATOR_VERSION = 1
ATTRIBUTES = (
    "scale",
    "rotation",
    "fast_motion",
    "motion_blur",
    "occlusion",
    "distractors",
    "illumination",
    "camera_motion",
)
KINDS = ("object", "window")


@dataclass(frozen=True)
class BuilderConfig:
    """What to generate. Sizes in pixels; ``target_size`` as a fraction of the frame's shorter side.

    Attributes:
        sequences, frames: how many sequences, frames per sequence.
        width, height: frame size.
        seed: master seed.
        kinds: sequence kinds to draw from (``object``, ``window``).
        attributes: attributes that may be enabled; each is enabled with ``attribute_prob``.
        target_size: (min, max) of the target's initial side ``sqrt(w*h)``.
        noise_sigma: Gaussian sensor noise (grey levels).
        image_format: ``jpg`` (quality ``jpeg_quality``) or ``png`` (lossless).
        photo_split: use ``all`` photos, or only the ``train`` / ``test`` split.
        name_prefix: sequence folder names are ``<prefix><index:03d>``.
    """

    sequences: int = 20
    frames: int = 150
    width: int = 480
    height: int = 360
    seed: int = 0
    kinds: tuple[str, ...] = KINDS
    attributes: tuple[str, ...] = ATTRIBUTES
    attribute_prob: float = 0.5
    target_size: tuple[float, float] = (0.12, 0.28)
    noise_sigma: float = 2.0
    image_format: str = "jpg"
    jpeg_quality: int = 92
    photo_split: str = "all"
    name_prefix: str = "seq"

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", tuple(self.kinds))
        object.__setattr__(self, "attributes", tuple(self.attributes))
        object.__setattr__(self, "target_size", tuple(float(v) for v in self.target_size))
        problems = []
        if self.sequences < 1 or self.frames < 2:
            problems.append("need sequences >= 1 and frames >= 2")
        if self.width < 64 or self.height < 64:
            problems.append("frames must be at least 64x64")
        unknown = [k for k in self.kinds if k not in KINDS] + [a for a in self.attributes if a not in ATTRIBUTES]
        if unknown or not self.kinds:
            problems.append(f"unknown or empty kinds/attributes {unknown}; kinds: {KINDS}, attributes: {ATTRIBUTES}")
        low, high = self.target_size
        if not 0.02 <= low <= high <= 0.5:
            problems.append(f"target_size must satisfy 0.02 <= min <= max <= 0.5, got {self.target_size}")
        problems += output_problems(self.image_format, self.photo_split, PHOTO_SPLITS)
        if not 0 <= self.attribute_prob <= 1:
            problems.append("attribute_prob must be in [0, 1]")
        if problems:
            raise ValueError("invalid benchmark config: " + "; ".join(problems))


@dataclass
class SequencePlan:
    """Per-sequence metadata written to the manifest."""

    name: str
    kind: str
    attributes: list[str]
    background: str
    target_source: str
    frames: int
    extra_photos: list[str] = field(default_factory=list)
    #: ``x, y, w, h`` of the target's appearance in ``target_source`` (source pixels).
    target_region: list[float] = field(default_factory=list)


def render_sequence(
    pool: PhotoPool, config: BuilderConfig, index: int
) -> tuple[list[np.ndarray], np.ndarray, SequencePlan]:
    """Frames (HxWx3 uint8 BGR), ground truth (F, 4) ``xywh`` and metadata of sequence ``index``."""
    rng = np.random.default_rng([config.seed, index])
    W, H, F = config.width, config.height, config.frames
    short = min(W, H)
    kind = config.kinds[int(rng.integers(len(config.kinds)))]
    attributes = [a for a in config.attributes if rng.random() < config.attribute_prob]
    if kind == "window" and "camera_motion" in attributes:
        attributes.remove("camera_motion")  # the window kind always moves the camera
    photo_ids = rng.permutation(len(pool))
    background_photo = pool.photos[int(photo_ids[0])]
    background = background_photo.load()
    bh, bw = background.shape[:2]

    # Target size path (scale change) and angle path (rotation), relative to the first frame.
    if "scale" in attributes:
        log_scale = smooth_path(rng, F, math.log(0.6), math.log(1.6), rng.uniform(30, 60))
        log_scale -= log_scale[0]
        scale_path = np.exp(np.clip(log_scale, math.log(0.5), math.log(2.0)))
    else:
        scale_path = np.ones(F)
    if "rotation" in attributes:
        angle_path = smooth_path(rng, F, -35.0, 35.0, rng.uniform(30, 60))
        angle_path -= angle_path[0]
    else:
        angle_path = np.zeros(F)

    side = rng.uniform(*config.target_size) * short
    aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    target_w = max(12, int(round(side * math.sqrt(aspect))))
    target_h = max(12, int(round(side / math.sqrt(aspect))))

    # Target centre path in the frame: keep most of the target inside.
    reach = 0.5 * math.hypot(target_w, target_h) * float(scale_path.max()) * 0.8
    margin_x, margin_y = min(reach, W * 0.45), min(reach, H * 0.45)
    knot_every = rng.uniform(6, 12) if "fast_motion" in attributes else rng.uniform(25, 50)
    centre_x = smooth_path(rng, F, margin_x, W - margin_x, knot_every)
    centre_y = smooth_path(rng, F, margin_y, H - margin_y, knot_every)

    target_source = background_photo.name
    extra: list[str] = []
    shape = "rect"
    zoom0 = 1.0  # frame px per source px of the target's appearance
    if kind == "object":
        object_photo = pool.photos[int(photo_ids[1 % len(pool)])]
        target_source = object_photo.name
        target, region = cut_target(object_photo.load(), rng, (target_w, target_h))
        shape = target.shape
        # Background camera: the photo scaled to cover the frame (with slack to pan over).
        cover = max(W / bw, H / bh) * (1.3 if "camera_motion" in attributes else 1.0)
        slack_x, slack_y = bw * cover - W, bh * cover - H
        if "camera_motion" in attributes:
            pan_x = smooth_path(rng, F, 0, slack_x, rng.uniform(30, 60))
            pan_y = smooth_path(rng, F, 0, slack_y, rng.uniform(30, 60))
        else:
            pan_x, pan_y = np.full(F, slack_x / 2), np.full(F, slack_y / 2)
        background_affines = [np.array([[cover, 0, -pan_x[t]], [0, cover, -pan_y[t]]]) for t in range(F)]
        target_affines = [
            similarity((centre_x[t], centre_y[t]), angle_path[t], scale_path[t], scale_path[t], target.anchor)
            for t in range(F)
        ]
    else:
        # Window: a region of the background photo is the target and the camera follows it.
        # The camera must never see past the photo's edges (no invented pixels): the zoom is
        # at least what makes the rolled frame fit inside the photo at every frame.
        radians = np.radians(angle_path)
        cos_a, sin_a = np.abs(np.cos(radians)), np.abs(np.sin(radians))
        fit = np.maximum((W * cos_a + H * sin_a) / bw, (W * sin_a + H * cos_a) / bh)
        zoom0 = float(np.max(fit / scale_path)) * rng.uniform(1.25, 2.0)  # slack to pan
        zoom_path = zoom0 * scale_path
        photo_side = min(side / zoom0, 0.9 * min(bw, bh))
        fraction = photo_side / min(bw, bh)
        region = textured_region(background, rng, (fraction * 0.9, min(fraction * 1.1, 0.95)), 2.0)
        rx, ry, rw, rh = (float(v) for v in region)
        anchor = np.array([rx + (rw - 1) / 2, ry + (rh - 1) / 2])
        frame_centre = np.array([(W - 1) / 2, (H - 1) / 2])
        target_affines = []
        for t in range(F):
            rotation = similarity((0.0, 0.0), angle_path[t], zoom_path[t], zoom_path[t], (0.0, 0.0))[:, :2]
            # Photo point seen at the frame centre when the target sits at the desired spot ...
            desired = np.array([centre_x[t], centre_y[t]])
            seen = anchor + np.linalg.solve(rotation, frame_centre - desired)
            # ... moved so the frame's footprint stays inside the photo, then the target's
            # frame position follows from it.
            half_x = (W * cos_a[t] + H * sin_a[t]) / (2 * zoom_path[t])
            half_y = (W * sin_a[t] + H * cos_a[t]) / (2 * zoom_path[t])
            seen = np.clip(seen, (half_x - 0.5, half_y - 0.5), (bw - 0.5 - half_x, bh - 0.5 - half_y))
            centre_x[t], centre_y[t] = frame_centre + rotation @ (anchor - seen)
            target_affines.append(
                similarity((centre_x[t], centre_y[t]), angle_path[t], zoom_path[t], zoom_path[t], anchor)
            )
        background_affines = target_affines
        target_w, target_h = int(round(rw)), int(round(rh))
        patch = background[int(ry) : int(ry) + target_h, int(rx) : int(rx) + target_w]
        target = Layer(patch, "rect")  # appearance for distractors; its anchor is its own centre

    # Distractors: recoloured copies of the target's look, on their own paths (drawn under it).
    distractors: list[tuple[Layer, list[np.ndarray]]] = []
    if "distractors" in attributes:
        for _ in range(int(rng.integers(1, 3))):
            gains = rng.uniform(0.8, 1.2, size=3).astype(np.float32)
            look = np.clip(target.patch * gains, 0, 255)
            layer = Layer(look, target.shape)
            size_factor = rng.uniform(0.8, 1.2)
            dx = smooth_path(rng, F, margin_x, W - margin_x, rng.uniform(20, 50))
            dy = smooth_path(rng, F, margin_y, H - margin_y, rng.uniform(20, 50))
            angle0 = rng.uniform(-20, 20)
            scale0 = (zoom0 if kind == "window" else 1.0) * size_factor
            placements = [
                similarity(
                    (dx[t], dy[t]), angle0 + angle_path[t], scale0 * scale_path[t], scale0 * scale_path[t], layer.anchor
                )
                for t in range(F)
            ]
            distractors.append((layer, placements))

    # Occluders: crops of other photos crossing in front of the target.
    occluders: list[tuple[Layer, list[np.ndarray]]] = []
    if "occlusion" in attributes:
        for k in range(int(rng.integers(1, 3))):
            photo = pool.photos[int(photo_ids[(2 + k) % len(pool)])]
            extra.append(photo.name)
            source = photo.load()
            occluder_region = textured_region(source, rng, (0.15, 0.5), 2.5)
            x, y, w, h = (int(v) for v in occluder_region)
            occluder_side = (
                math.sqrt(target_w * target_h) * (zoom0 if kind == "window" else 1.0) * rng.uniform(0.6, 1.3)
            )
            occluder_aspect = math.exp(rng.uniform(math.log(0.4), math.log(2.5)))
            ow = max(8, int(occluder_side * math.sqrt(occluder_aspect)))
            oh = max(8, int(occluder_side / math.sqrt(occluder_aspect)))
            layer = Layer(cv2.resize(source[y : y + h, x : x + w], (ow, oh), interpolation=cv2.INTER_AREA), "rect")
            meet = int(rng.integers(int(0.15 * F), max(int(0.15 * F) + 1, int(0.85 * F))))
            duration = rng.uniform(15, 40)
            direction = rng.uniform(0, 2 * math.pi)
            speed = (math.hypot(ow, oh) + side) / duration
            vx, vy = speed * math.cos(direction), speed * math.sin(direction)
            placements = [
                similarity(
                    (centre_x[meet] + vx * (t - meet), centre_y[meet] + vy * (t - meet)), 0.0, 1.0, 1.0, layer.anchor
                )
                for t in range(F)
            ]
            occluders.append((layer, placements))

    exposure = Exposure(
        rng, F, W, H, "illumination" in attributes, config.noise_sigma, (0.45, 1.35), (25, 60), (40, 80), (0.15, 0.4)
    )
    frames: list[np.ndarray] = []
    groundtruth = np.zeros((F, 4), dtype=np.float64)
    for t in range(F):
        canvas = background_view(background, background_affines[t], (W, H))
        for layer, placements in distractors:
            layer.paint(canvas, placements[t])
        kernel = None
        if "motion_blur" in attributes and t > 0:
            kernel = velocity_blur(centre_x[t] - centre_x[t - 1], centre_y[t] - centre_y[t - 1])
        if kind == "object":
            target.paint(canvas, target_affines[t], kernel)
        elif kernel is not None:
            # The whole view moves with the camera: blur the frame along the target's motion.
            canvas = cv2.filter2D(canvas, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
        for layer, placements in occluders:
            layer.paint(canvas, placements[t])
        frames.append(exposure.develop(canvas, t, rng))

        if kind == "object":
            extent = extent_box(target.shape, target.size, target_affines[t])
        else:
            # The photo region [rx-0.5, rx+rw-0.5] x [ry-0.5, ry+rh-0.5] through the camera: the
            # unit square [-0.5, 0.5]^2 mapped onto it, then into the frame.
            region_frame = np.array([[rw, 0, rx + (rw - 1) / 2], [0, rh, ry + (rh - 1) / 2], [0, 0, 1]])
            extent = extent_box("rect", (1, 1), target_affines[t] @ region_frame)
        groundtruth[t] = extent_to_xywh(extent, W, H)

    plan = SequencePlan(
        name=f"{config.name_prefix}{index:03d}",
        kind=kind if kind == "window" else f"object-{shape}",
        attributes=attributes,
        background=background_photo.name,
        target_source=target_source,
        frames=F,
        extra_photos=extra,
        target_region=[float(v) for v in region],
    )
    return frames, groundtruth, plan


# ---------------------------------------------------------------------- whole benchmark
def build_benchmark(
    out_dir: str | os.PathLike[str],
    config: BuilderConfig,
    pool: Optional[PhotoPool] = None,
    progress: bool = False,
) -> dict:
    """Generate ``config.sequences`` sequences into ``out_dir``; returns the manifest (also
    written as ``benchmark.json``). ``pool`` defaults to :func:`~siamrpnpp_ros.material.photos.find_photos`.
    """
    pool = pool_for(pool, config.photo_split)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    plans: list[SequencePlan] = []
    for index in sequence_indices(config.sequences, progress):
        frames, groundtruth, plan = render_sequence(pool, config, index)
        write_sequence(folder / plan.name, frames, groundtruth, config)
        plans.append(plan)
    manifest = {
        "generator": "siamrpnpp_ros.eval.builder",
        "version": GENERATOR_VERSION,
        "config": asdict(config),
        "photos": pool.origin,
        "box_convention": "x,y,w,h top-left pixels; the box covers pixels x..x+w-1 (centre x+(w-1)/2)",
        "sequences": [asdict(p) for p in plans],
    }
    (folder / "benchmark.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 480x360, got {text!r}") from None
    return width, height


def build_parser() -> argparse.ArgumentParser:
    """The builder's argument parser (short-term, or long-term with ``--long-term``)."""
    parser = argparse.ArgumentParser(
        prog="python -m siamrpnpp_ros.eval.builder",
        description="Build OTB-format tracking sequences with exact ground truth from real photos.",
    )
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per sequence)")
    parser.add_argument("--sequences", type=int, default=20, help="number of sequences (default 20)")
    parser.add_argument(
        "--frames", type=int, default=None, help="frames per sequence (default 150; 300 with --long-term)"
    )
    parser.add_argument("--seed", type=int, default=0, help="master seed (same seed, same benchmark)")
    parser.add_argument("--size", type=_size, default=(480, 360), help="frame size WIDTHxHEIGHT (default 480x360)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="sequence kinds to mix")
    parser.add_argument(
        "--attributes",
        nargs="*",
        choices=ATTRIBUTES,
        default=None,
        help="challenges that may be enabled (each with --attribute-prob; default: all; with "
        f"--long-term only {', '.join(LONG_TERM_ATTRIBUTES)})",
    )
    parser.add_argument("--attribute-prob", type=float, default=0.5, help="chance of each attribute per sequence")
    parser.add_argument(
        "--target-size",
        type=float,
        nargs=2,
        default=None,
        metavar=("MIN", "MAX"),
        help="initial target side as a fraction of the frame's shorter side "
        "(default 0.12 0.28; 0.12 0.24 with --long-term)",
    )
    parser.add_argument("--noise", type=float, default=2.0, help="sensor noise sigma, grey levels")
    parser.add_argument("--format", choices=("jpg", "png"), default="jpg", help="frame file format")
    parser.add_argument("--photos", nargs="+", default=(), help="photo folders (default: opencv-doc, scikit-image)")
    parser.add_argument(
        "--photo-split",
        choices=PHOTO_SPLITS,
        default="all",
        help="use only the train or test photos (disjoint; train a model on one, evaluate on the other)",
    )
    parser.add_argument("--prefix", default=None, help="sequence folder name prefix (default seq; lt with --long-term)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    long_term = parser.add_argument_group(
        "long-term sequences", "the target leaves the view for a while (ground truth nan,nan,nan,nan there)"
    )
    long_term.add_argument("--long-term", action="store_true", help="build long-term sequences (object kind only)")
    long_term.add_argument("--fps", type=float, default=30.0, help="frame rate the durations refer to (default 30)")
    long_term.add_argument(
        "--absence-kinds",
        nargs="+",
        choices=ABSENCE_KINDS,
        default=list(ABSENCE_KINDS),
        help="how the target disappears: leaves the frame, goes behind a large occluder, "
        "or the camera pans away (default: all)",
    )
    for flag, kind, default, what in (
        ("--absences", int, (1, 2), "absences per sequence (default 1 2)"),
        ("--absence-seconds", float, (1.0, 3.0), "duration of one absence in seconds (default 1 3)"),
    ):
        long_term.add_argument(flag, type=kind, nargs=2, default=default, metavar=("MIN", "MAX"), help=what)
    long_term.add_argument(
        "--lookalike-prob",
        type=float,
        default=0.5,
        help="chance that a look-alike is in view while the target is away (default 0.5)",
    )
    long_term.add_argument(
        "--visibility-threshold",
        type=float,
        default=0.1,
        help="a frame is absent when less than this share of the target is visible (default 0.1)",
    )
    return parser


def _long_term_config(args: argparse.Namespace) -> LongTermConfig:
    attributes = LONG_TERM_ATTRIBUTES if args.attributes is None else tuple(args.attributes)
    unsupported = [a for a in attributes if a not in LONG_TERM_ATTRIBUTES]
    if unsupported:
        raise ValueError(
            f"--long-term supports the attributes {', '.join(LONG_TERM_ATTRIBUTES)}, not {', '.join(unsupported)}"
        )
    return LongTermConfig(
        fps=args.fps,
        absence_kinds=tuple(args.absence_kinds),
        absences=tuple(args.absences),
        absence_seconds=tuple(args.absence_seconds),
        lookalike_prob=args.lookalike_prob,
        visibility_threshold=args.visibility_threshold,
        attributes=attributes,
        **_shared_options(args),
    )


def _shared_options(args: argparse.Namespace) -> dict[str, Any]:
    """The fields of both configs that come from the shared options; ``--frames``,
    ``--target-size`` and ``--prefix`` only when given, else each config's own default.
    """
    options: dict[str, Any] = {
        "sequences": args.sequences,
        "width": args.size[0],
        "height": args.size[1],
        "seed": args.seed,
        "attribute_prob": args.attribute_prob,
        "noise_sigma": args.noise,
        "image_format": args.format,
        "photo_split": args.photo_split,
    }
    given = {"frames": args.frames, "target_size": args.target_size, "name_prefix": args.prefix}
    options.update((name, value) for name, value in given.items() if value is not None)
    return options


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Build the benchmark described by ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.long_term:
            long_term_config = _long_term_config(args)
        else:
            config = BuilderConfig(
                kinds=tuple(args.kinds),
                attributes=ATTRIBUTES if args.attributes is None else tuple(args.attributes),
                **_shared_options(args),
            )
        pool = find_photos(args.photos)
        if pool.origin.startswith("generated"):
            print(
                "warning: no real photos found (install opencv-doc or scikit-image); using generated textures",
                file=sys.stderr,
            )
        if args.long_term:
            manifest = build_long_term_benchmark(args.out, long_term_config, pool, progress=not args.no_progress)
        else:
            manifest = build_benchmark(args.out, config, pool, progress=not args.no_progress)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    frames = sum(s["frames"] for s in manifest["sequences"])
    print(f"wrote {len(manifest['sequences'])} sequences ({frames} frames) to {args.out} from {manifest['photos']}")
    if args.long_term:
        totals = manifest["totals"]
        kinds = ", ".join(f"{count} {kind}" for kind, count in totals["absences"].items())
        print(
            f"absences: {kinds} ({totals['with_lookalike']} with a look-alike), {totals['absent_frames']} absent "
            f"frames at {manifest['fps']:g} fps"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
