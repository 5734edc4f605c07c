"""``siamrpnpp-track``: run the SiamRPN++ tracker offline on a video file or an image folder.

    siamrpnpp-track --model alex --weights model.pth --video seq/ [--init x,y,w,h]
                    [--config config/cpu_alex.yaml] [--device auto|cpu|cuda] [--fp16]
                    [--short-term] [--out results.txt] [--show-video out.mp4]
                    [--strip grid.png [--strip-frames K]] [--max-frames N]
                    [--backend torch|onnxruntime] [--no-optimize] [--fuse-bn]
                    [--instance-size PX] [--threads N] [--onnx-cache-dir DIR]
    siamrpnpp-track --video clip.mp4 --init x,y,w,h      # the bundled default model
    siamrpnpp-track --video clip.mp4 --init x,y,w,h --init x,y,w,h@40 [--init-file boxes.txt] --out res.txt

Without ``--model`` and ``--weights`` the bundled default model runs; ``--weights`` needs the
model it was trained as (``--model``, or a ``--config`` naming it).

Boxes are top-left ``x,y,w,h`` in pixels. Without ``--init`` the first line of the sequence's
``groundtruth.txt`` is the initial box. ``--out`` gets one ``x,y,w,h,score`` line per frame (6
decimals; frame 0 is the init box with score 1). The last stdout line is machine-readable:

    frames=N median_ms=X p90_ms=Y fps=Z device=D

``frames`` counts every frame read (the init frame included); the timings cover only the
``track()`` calls (frames 1..N-1), not init, decoding or drawing; ``fps`` is the number of
``track()`` calls divided by their total time (mean throughput, not 1000/median).

Several targets: repeat ``--init`` (or list the boxes in ``--init-file``, one per line, ``#``
comments allowed); the targets get ids 1, 2, ... in that order (the ``--init`` options first)
and are tracked together with one batched network pass per frame
(``tracking.multi.MultiTargetTracker``). A box may end in ``@FRAME`` to select it on that
frame (0-based; default 0). ``--out results.txt`` then writes one file per target,
``results_target1.txt``, ...: each starts on its target's first frame (the init box, score 1),
one line per frame from there. The timings cover the per-frame calls that track all targets,
and the summary line ends in `` targets=K``. ``--show-video`` and ``--strip`` draw every
target with its id.
``--config`` supplies ``model`` and the ``tracker`` section of a parameters YAML; ``--device``
and ``--fp16`` are taken from the command line only.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from siamrpnpp_ros.models.config import THIN_NAME_HELP, model_name_argument
from siamrpnpp_ros.requirements_check import require_supported_versions
from siamrpnpp_ros.sequences import open_sequence
from siamrpnpp_ros.tracking.config import load_tracker_config, preset_for
from siamrpnpp_ros.tracking.factory import DEFAULT_MODEL, build_tracker
from siamrpnpp_ros.tracking.multi import MultiTargetTracker
from siamrpnpp_ros.tracking.session import LostPolicy, align_long_term_thresholds

PROGRAM = "siamrpnpp-track"
# Sequences shorter than this finish too quickly for a progress bar to help.
PROGRESS_BAR_MIN_FRAMES = 100
DEFAULT_VIDEO_FPS = 30.0

PREDICTION_COLOR = (0, 200, 255)  # BGR orange
GROUNDTRUTH_COLOR = (0, 220, 0)  # BGR green
# Several targets: one colour each, by id (BGR: orange, magenta, cyan, yellow, violet, red, blue, white).
TARGET_COLORS = (
    (0, 200, 255),
    (255, 0, 255),
    (255, 255, 0),
    (0, 255, 255),
    (255, 80, 160),
    (60, 60, 255),
    (255, 120, 0),
    (255, 255, 255),
)
TEXT_COLOR = (255, 255, 255)


class UsageError(ValueError):
    """A command-line mistake that is reported as one line, without a traceback."""


def parse_box(text: str) -> tuple[float, float, float, float]:
    """Parse ``"x,y,w,h"`` (top-left, pixels; commas, optionally with spaces) into 4 floats."""
    parts = [p.strip() for p in text.replace(";", ",").split(",")]
    if len(parts) != 4 or not all(parts):
        raise UsageError(f"--init must be x,y,w,h (four comma-separated numbers), got {text!r}")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise UsageError(f"--init must be x,y,w,h (four comma-separated numbers), got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise UsageError(f"--init values must be finite, got {text!r}")
    return values  # type: ignore[return-value]


def parse_selection(text: str) -> tuple[tuple[float, float, float, float], int]:
    """Parse ``"x,y,w,h"`` or ``"x,y,w,h@FRAME"`` into (box, 0-based first frame)."""
    box_text, at, frame_text = text.partition("@")
    box = parse_box(box_text)
    if not at:
        return box, 0
    if not frame_text.strip().isdigit():
        raise UsageError(f"--init frame must be a whole number >= 0 after '@', got {text!r}")
    return box, int(frame_text)


def read_init_file(path: str) -> list[tuple[tuple[float, float, float, float], int]]:
    """The selections in an ``--init-file``: one ``x,y,w,h[@FRAME]`` per line; blank lines and
    ``#`` comments are skipped.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read --init-file {path}: {exc.strerror or exc}") from None
    selections = []
    for number, line in enumerate(lines, start=1):
        content = line.split("#", 1)[0].strip()
        if content:
            try:
                selections.append(parse_selection(content))
            except UsageError as exc:
                raise UsageError(f"{path} line {number}: {exc}") from None
    if not selections:
        raise UsageError(f"--init-file {path} holds no boxes")
    return selections


def target_out_path(out: str, target_id: int) -> Path:
    """``results.txt`` -> ``results_target<id>.txt``: the ``--out`` file of one of several targets."""
    path = Path(out)
    return path.with_name(f"{path.stem}_target{target_id}{path.suffix}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``siamrpnpp-track``."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Track one object through a video file or image folder with SiamRPN++.",
        epilog=(
            "Boxes are top-left x,y,w,h in pixels. The last stdout line is "
            "'frames=N median_ms=X p90_ms=Y fps=Z device=D': N counts all frames read, the "
            "timings cover track() calls only, fps = track() calls / their total time."
        ),
    )
    parser.add_argument(
        "--model", type=model_name_argument, help=f"{THIN_NAME_HELP} (may come from --config; default {DEFAULT_MODEL})"
    )
    parser.add_argument("--weights", help="pysot checkpoint (.pth) for --model; default: the bundled default model")
    parser.add_argument("--video", required=True, help="video file or image folder (OTB layout with img/ is fine)")
    parser.add_argument(
        "--init",
        action="append",
        metavar="X,Y,W,H[@FRAME]",
        help="initial box x,y,w,h (top-left, pixels), optionally @FRAME to select it on that frame; "
        "repeat for several targets (ids 1, 2, ...); default: first groundtruth.txt line",
    )
    parser.add_argument(
        "--init-file", metavar="PATH", help="initial boxes, one target per line as for --init (after the --init boxes)"
    )
    parser.add_argument("--config", help="ROS 2 parameters YAML giving model and tracker settings")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--fp16", action="store_true", help="half-precision network (CUDA only)")
    parser.add_argument(
        "--short-term",
        action="store_true",
        help="pysot's short-term tracker (no LOST handling); default: the node's default, the "
        "long-term tracker with its wide search tied to the LOST thresholds",
    )
    # Accepted for scripts written before long-term became the default; it changes nothing.
    parser.add_argument("--long-term", action="store_true", help=argparse.SUPPRESS)
    speed = parser.add_argument_group("speed (see siamrpnpp-bench)")
    speed.add_argument(
        "--backend",
        choices=("torch", "onnxruntime"),
        default="torch",
        help="network runtime (default torch; onnxruntime: fp32, BN folded, not bit-exact)",
    )
    speed.add_argument(
        "--no-optimize", action="store_true", help="run the network exactly as built (no bit-exact optimisations)"
    )
    speed.add_argument(
        "--fuse-bn",
        action="store_true",
        help="fold BatchNorm into the convs and use NHWC on CPU: faster, not bit-exact",
    )
    speed.add_argument(
        "--instance-size",
        type=int,
        metavar="PX",
        help="search crop side in pixels instead of the preset's 255/287 (smaller = faster)",
    )
    speed.add_argument("--threads", type=int, metavar="N", help="intra-op threads (default: one per core)")
    speed.add_argument(
        "--onnx-cache-dir",
        metavar="DIR",
        help="onnxruntime: keep exported graphs and TensorRT engines here between runs",
    )
    parser.add_argument("--out", help="write x,y,w,h,score per frame to this text file")
    parser.add_argument("--show-video", metavar="OUT_MP4", help="write an annotated mp4 video")
    parser.add_argument("--strip", metavar="OUT_PNG", help="write a grid of annotated frames, evenly spaced")
    parser.add_argument("--strip-frames", type=int, default=6, metavar="K", help="frames in --strip (default 6)")
    parser.add_argument("--max-frames", type=int, metavar="N", help="track only the first N frames")
    return parser


def strip_indices(total: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly over ``total`` frames, first and last included."""
    if total < 1 or count < 1:
        return []
    if count == 1 or total == 1:
        return [0]
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})


def frame_grid(images: Sequence[np.ndarray], columns: int = 3, width: int = 400) -> np.ndarray:
    """``images`` resized to ``width`` pixels wide and tiled row by row (black padding)."""
    tiles = [
        cv2.resize(img, (width, max(1, round(img.shape[0] * width / img.shape[1]))), interpolation=cv2.INTER_AREA)
        for img in images
    ]
    height = max(t.shape[0] for t in tiles)
    rows = -(-len(tiles) // columns)
    grid = np.zeros((rows * height, min(columns, len(tiles)) * width, 3), np.uint8)
    for i, tile in enumerate(tiles):
        top, left = (i // columns) * height, (i % columns) * width
        grid[top : top + tile.shape[0], left : left + width] = tile
    return grid


def _draw_box(image: np.ndarray, box: Sequence[float], color: tuple[int, int, int]) -> None:
    x, y, w, h = box
    if not all(math.isfinite(v) for v in box):
        return
    top_left = (int(round(x)), int(round(y)))
    bottom_right = (int(round(x + w)), int(round(y + h)))
    cv2.rectangle(image, top_left, bottom_right, color, 2)


def annotate(
    frame: np.ndarray,
    index: int,
    box: Sequence[float],
    score: float,
    fps: float | None,
    groundtruth_box: Sequence[float] | None = None,
    search_wide: bool = False,
) -> np.ndarray:
    """A copy of ``frame`` with the tracked box (and ground truth), score, index and FPS drawn."""
    canvas: np.ndarray = frame.copy()
    if groundtruth_box is not None:
        _draw_box(canvas, groundtruth_box, GROUNDTRUTH_COLOR)
    _draw_box(canvas, box, PREDICTION_COLOR)
    speed = "init" if fps is None else f"{fps:.1f} fps"
    label = f"#{index}  score {score:.3f}  {speed}" + ("  wide search" if search_wide else "")
    cv2.putText(canvas, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, TEXT_COLOR, 1, cv2.LINE_AA)
    return canvas


def annotate_targets(
    frame: np.ndarray,
    index: int,
    boxes: Sequence[tuple[int, Sequence[float], float]],
    fps: float | None,
) -> np.ndarray:
    """A copy of ``frame`` with every target's box in its own colour, labelled with its id and
    score (``boxes``: ``(target id, top-left x,y,w,h, score)``), plus the frame index and FPS.
    """
    canvas: np.ndarray = frame.copy()
    for target_id, box, score in boxes:
        color = TARGET_COLORS[(target_id - 1) % len(TARGET_COLORS)]
        _draw_box(canvas, box, color)
        if all(math.isfinite(v) for v in box):
            tag = f"#{target_id} {score:.2f}"
            origin = (round(box[0]), max(14, round(box[1]) - 5))
            cv2.putText(canvas, tag, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(canvas, tag, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
    speed = "" if fps is None else f"  {fps:.1f} fps"
    label = f"#{index}  {len(boxes)} target{'s' if len(boxes) != 1 else ''}{speed}"
    cv2.putText(canvas, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, TEXT_COLOR, 1, cv2.LINE_AA)
    return canvas


def format_row(box: Sequence[float], score: float) -> str:
    """One ``--out`` line: ``x,y,w,h,score`` with 6 decimals (top-left box, pixels)."""
    return ",".join(f"{v:.6f}" for v in (*box, score))


def summary_line(frame_count: int, track_ms: Sequence[float], device: str, targets: int = 1) -> str:
    """The final machine-readable line; timings in milliseconds over ``track()`` calls only
    (with several targets: the calls that track all of them, and `` targets=K`` at the end).
    """
    if track_ms:
        times = np.asarray(track_ms, dtype=np.float64)
        median = float(np.median(times))
        p90 = float(np.percentile(times, 90))
        fps = len(times) / (times.sum() / 1000.0) if times.sum() > 0 else float("inf")
    else:
        median = p90 = fps = float("nan")
    line = f"frames={frame_count} median_ms={median:.3f} p90_ms={p90:.3f} fps={fps:.2f} device={device}"
    return line if targets == 1 else f"{line} targets={targets}"


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    selections = [parse_selection(text) for text in args.init or []]
    if args.init_file:
        selections += read_init_file(args.init_file)
    if args.config:
        model_name, tracker_config = load_tracker_config(args.config, args.model)
    elif args.model:
        model_name, tracker_config = args.model, preset_for(args.model)
    elif args.weights is None:
        model_name, tracker_config = DEFAULT_MODEL, preset_for(DEFAULT_MODEL)
    else:
        raise UsageError("--weights needs --model (or a --config file that names the model)")

    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError("--max-frames must be >= 1")
    if args.strip_frames < 1:
        raise UsageError("--strip-frames must be >= 1")
    sequence = open_sequence(args.video)
    groundtruth = sequence.groundtruth
    total = sequence.frame_count
    if args.max_frames is not None:
        total = min(total, args.max_frames) if total is not None else args.max_frames
    if args.strip and total is None:
        raise UsageError(f"--strip needs the number of frames, which {args.video} does not tell; pass --max-frames")
    strip_at = set(strip_indices(total, args.strip_frames)) if args.strip and total is not None else set()
    strip_images: list[np.ndarray] = []
    if not selections:
        if groundtruth is None or len(groundtruth) == 0:
            raise UsageError(f"no --init box given and {args.video} has no groundtruth.txt to take it from")
        selections = [(tuple(float(v) for v in groundtruth[0]), 0)]  # type: ignore[list-item]
    # target id -> (box, first frame); ids 1, 2, ... in the order given.
    plan = {target_id: selection for target_id, selection in enumerate(selections, start=1)}
    several = len(plan) > 1
    if total is not None:
        for target_id, (_, first) in plan.items():
            if first >= total:
                raise UsageError(f"target {target_id} starts on frame {first}, but there are only {total} frames")

    long_term = not args.short_term
    policy = LostPolicy()  # the node's default LOST thresholds, so both give the same answers
    if long_term:
        tracker_config = align_long_term_thresholds(tracker_config, policy)
    tracker = build_tracker(
        model_name,
        args.weights,
        device=args.device,
        fp16=args.fp16,
        config=tracker_config,
        long_term=long_term,
        optimize=not args.no_optimize,
        fuse_bn=args.fuse_bn,
        backend=args.backend,
        instance_size=args.instance_size,
        threads=args.threads,
        onnx_cache_dir=args.onnx_cache_dir,
    )

    targets = MultiTargetTracker(tracker, policy, max_targets=len(plan))
    out_lines: dict[int, list[str]] = {target_id: [] for target_id in plan}
    track_ms: list[float] = []
    writer: cv2.VideoWriter | None = None
    video_size: tuple[int, int] | None = None
    frame_count = 0
    progress = tqdm(
        total=total,
        unit="frame",
        file=sys.stderr,
        disable=True if (total is not None and total < PROGRESS_BAR_MIN_FRAMES) else None,
    )
    try:
        for index, frame in enumerate(sequence):
            if args.max_frames is not None and index >= args.max_frames:
                break
            frame_count += 1
            # (target id, box, score, wide search) of this frame: tracked first, then new ones.
            drawn: list[tuple[int, Sequence[float], float, bool]] = []
            fps = None
            if targets.needs_frame(index):
                start = time.perf_counter()
                results = targets.step(frame, index)
                elapsed_ms = (time.perf_counter() - start) * 1000.0
                track_ms.append(elapsed_ms)
                fps = 1000.0 / elapsed_ms if elapsed_ms > 0 else float("inf")
                progress.set_postfix_str(f"{elapsed_ms:.1f} ms", refresh=False)
                for result in results:
                    # The tracker's own box, not the session's held box while LOST, and its presence:
                    # the score the node publishes (the raw score unless presence is calibrated).
                    target = targets.get(result.target_id)
                    tracked = target.last_tracked if target is not None else None
                    assert tracked is not None, "a target step() reported on has the tracker's result"
                    drawn.append((result.target_id, tracked.box, tracked.presence, tracked.search_wide))
            for target_id, (init_box, first) in plan.items():
                if first == index:
                    targets.add(frame, init_box, target_id, index)
                    drawn.append((target_id, init_box, 1.0, False))
            progress.update(1)
            for target_id, box, score, _ in drawn:
                out_lines[target_id].append(format_row(box, score))

            if args.show_video or index in strip_at:
                gt_box = groundtruth[index] if groundtruth is not None and index < len(groundtruth) else None
                if several:
                    canvas = annotate_targets(frame, index, [(t, b, s) for t, b, s, _ in sorted(drawn)], fps)
                elif drawn:
                    _, box, score, search_wide = drawn[0]
                    canvas = annotate(frame, index, box, score, fps, gt_box, search_wide)
                else:  # the only target starts later
                    canvas = annotate_targets(frame, index, [], fps)
                if index in strip_at:
                    strip_images.append(canvas)
            if args.show_video:
                if writer is None:
                    video_size = (frame.shape[1], frame.shape[0])
                    writer = _open_writer(args.show_video, sequence.fps or DEFAULT_VIDEO_FPS, video_size)
                if (canvas.shape[1], canvas.shape[0]) != video_size:
                    canvas = cv2.resize(canvas, video_size)
                writer.write(canvas)
    finally:
        progress.close()
        if writer is not None:
            writer.release()

    if frame_count == 0:
        raise UsageError(f"{args.video} yielded no frames")
    if args.out:
        for target_id, lines in out_lines.items():
            out_path = target_out_path(args.out, target_id) if several else Path(args.out)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    if args.strip and strip_images:
        strip_path = Path(args.strip)
        strip_path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(strip_path), frame_grid(strip_images)):
            raise OSError(f"cannot write image {strip_path}")
    print(summary_line(frame_count, track_ms, str(tracker.device), len(plan)), flush=True)
    return 0


def _open_writer(path: str, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(path, cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise OSError(f"cannot write video {path} (mp4v codec unavailable or path not writable)")
    return writer


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 success, 1 runtime error, 2 usage error)."""
    require_supported_versions()
    # FFmpeg prints its own low-level lines (e.g. "moov atom not found") next to our one-line
    # error; silence it unless the user asked for a level. Read when the first video opens.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    # Distribution builds of OpenCV (Debian's 4.6) also try GStreamer, which logs several
    # lines for a file it cannot open; FFmpeg and the image reader cover the inputs here.
    os.environ.setdefault("OPENCV_VIDEOIO_PRIORITY_GSTREAMER", "0")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on malformed arguments
        return int(exc.code) if isinstance(exc.code, int) else 2
    try:
        return _run(args)
    except UsageError as exc:
        print(f"{PROGRAM}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROGRAM}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError, ImportError) as exc:
        # CheckpointError and SequenceError are ValueErrors; FileNotFoundError is an OSError.
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{PROGRAM}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
