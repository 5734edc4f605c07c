"""What a lost frame costs: ``siamrpnpp-bench --lost-tiles 1,2,4`` (the long-term tracker).

While the target is lost, the long-term tracker's default search (``lost_search: tiles``)
runs ``lost_tiles_per_frame`` normal-size crops through the network in one batch. This times
that step against a normal one, side by side in one process: one long-term tracker follows
the sequence's object on the sequence's frames (the normal step), and one per tile count is
held lost on the same frames with the target painted out (mean colour over its box, so the
search finds nothing). On every frame each tracker takes its step in turn, in an order that
rotates from frame to frame, so a change of machine load affects all alike and the ratios
stay comparable.

Printed per tile count: the median and p90 of one lost step and the median lost step over the
median normal step. Weights as for ``--targets`` (``benchmark/targets.py``).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any

import numpy as np

from siamrpnpp_ros.benchmark.report import format_cell, markdown_row
from siamrpnpp_ros.benchmark.speed import _fast_size, build_for_mode, load_frames, machine_info
from siamrpnpp_ros.benchmark.targets import _weights_for, frame_progress, parse_counts, side_by_side_table
from siamrpnpp_ros.sequences import open_sequence
from siamrpnpp_ros.tracking import tracker as tracker_module
from siamrpnpp_ros.tracking.backends import configure_threads
from siamrpnpp_ros.tracking.factory import build_tracker
from siamrpnpp_ros.tracking.longterm import LongTermTracker
from siamrpnpp_ros.tracking.session import LostPolicy, align_long_term_thresholds

HEADER = ("model", "mode", "tiles per lost frame", "lost step_ms", "p90_ms", "normal step_ms", "lost/normal")


def _target_painted_out(frame: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """``frame`` with ``box`` (top-left x, y, w, h pixels) filled with the frame's mean colour."""
    x, y, w, h = box
    height, width = frame.shape[:2]
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(width, int(np.ceil(x + w))), min(height, int(np.ceil(y + h)))
    empty: np.ndarray = frame.copy()
    empty[y0:y1, x0:x1] = frame.reshape(-1, 3).mean(axis=0).astype(np.uint8)
    return empty


def run_lost(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every (model, mode, tile count) of ``args.lost_tiles``; returns the report."""
    counts = parse_counts(args.lost_tiles)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    configure_threads(args.threads)
    info = machine_info()
    frames, first_box, source = load_frames(args.video, args.warmup + args.frames + 1)
    results: list[dict[str, Any]] = []
    for model in models:
        weights = _weights_for(args, model)
        for mode in modes:
            built = build_for_mode(mode, model, weights, args.device, _fast_size(args, model), args.seed)
            # The node's default thresholds, as a long-term session ties them to the search.
            config = align_long_term_thresholds(built.config.replace(lost_search="tiles"), LostPolicy())
            empty_frames = [_target_painted_out(frame, first_box) for frame in frames]
            # (row key, tracker, the frames it sees): the normal step, then one lost tracker per count.
            runners: list[tuple[int | str, LongTermTracker, list[np.ndarray]]] = [
                ("normal", LongTermTracker(built.model, config, device=built.device, fp16=built.fp16), frames)
            ]
            for count in counts:
                tiles_config = config.replace(lost_tiles_per_frame=count)
                runners.append(
                    (
                        count,
                        LongTermTracker(built.model, tiles_config, device=built.device, fp16=built.fp16),
                        empty_frames,
                    )
                )
            for _, tracker, _ in runners:
                tracker.init(frames[0], first_box)
            steps: dict[int | str, list[float]] = {key: [] for key, _, _ in runners}
            progress = frame_progress(len(frames) - 1, f"{model}/{mode}", args.quiet)
            for index in range(1, len(frames)):
                shift = index % len(runners)
                for key, tracker, source_frames in runners[shift:] + runners[:shift]:
                    start = time.perf_counter()
                    result = tracker.track(source_frames[index])
                    elapsed = time.perf_counter() - start
                    # Only what the row is about: a lost step, or a normal step that was one.
                    if index > args.warmup and result.search_wide == (key != "normal"):
                        steps[key].append(elapsed)
                progress.update(1)
            progress.close()
            if not steps["normal"]:
                raise RuntimeError("no timed frames; raise --frames")
            normal_ms = float(np.median(steps["normal"])) * 1e3
            for count in counts:
                if not steps[count]:
                    raise RuntimeError(f"the target was never lost with {count} tiles per frame; nothing timed")
                step_ms = float(np.median(steps[count])) * 1e3
                results.append(
                    {
                        "model": model,
                        "mode": mode,
                        "tiles": count,
                        "device": str(built.device),
                        "frames": len(steps[count]),
                        "step_ms": step_ms,
                        "p90_ms": float(np.percentile(steps[count], 90)) * 1e3,
                        "normal_step_ms": normal_ms,
                        "lost_over_normal": step_ms / normal_ms,
                    }
                )
    return {"machine": info, "source": source, "results": results, "loadavg_end": list(os.getloadavg())}


def format_lost_table(report: dict[str, Any]) -> str:
    """The Markdown table of :func:`run_lost`, with the machine and load lines."""
    return side_by_side_table(
        report,
        "ms, medians over the frames; every tile count and the normal step measured side by side in one process",
        HEADER,
        ("model", "mode", "tiles", "step_ms", "p90_ms", "normal_step_ms", "lost_over_normal"),
        two_decimals=("lost_over_normal",),
    )


# ----------------------------------------------------------------------------- where the time goes
#: The parts of a step that ``phase_breakdown`` times, in the order printed.
PHASES = ("step", "crops", "network", "decode", "appearance", "presence features", "rest")
VTEST_VIDEO = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
VTEST_TARGET = (638.0, 240.0, 48.0, 82.0)  # the demo's pedestrian on frame 0 (tools/demo.py)


def phase_breakdown(
    video: str = VTEST_VIDEO,
    box: tuple[float, float, float, float] = VTEST_TARGET,
    frames: int = 150,
    tile_counts: tuple[int, ...] = (1, 4),
    threads: int = 2,
) -> dict[str, dict[str, float]]:
    """Where a lost frame's time goes, against a tracking frame's, side by side in one process.

    One long-term tracker (bundled model, CPU) follows ``box`` on the video; one per tile count
    is held lost on the same frames with the target painted out. Each step is split by wrapping
    the tracker's parts: the search crops (``search_crop``), the network pass (``_run_model``),
    the appearance descriptor and its comparison (``appearance.describe``/``similarity``), the
    presence features, the decode (the rest of ``finish_search``: score map, penalties, the
    tiles' comparison, the state update) and the rest of the step (tile order, batching the
    crops). Returns ``{row: {phase: ms}}``, the 25th percentile of each phase over the frames of
    that row's kind (the lower quartile: a busy machine inflates some steps, rarely all), and
    ``frames`` per row. The trackers take their steps in an order that rotates per frame.
    """
    import torch

    torch.set_num_threads(threads)
    images = []
    for image in open_sequence(video):
        images.append(image)
        if len(images) > frames:
            break
    spent: dict[str, float] = {}

    def timed(phase: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[phase] = spent.get(phase, 0.0) + time.perf_counter() - start

        return wrapper

    originals = (
        tracker_module.appearance.describe,
        tracker_module.appearance.similarity,
        tracker_module.presence_features,
    )
    tracker_module.appearance.describe = timed("describe", originals[0])
    tracker_module.appearance.similarity = timed("similarity", originals[1])
    tracker_module.presence_features = timed("presence features", originals[2])
    try:
        runners: list[tuple[str, Any, list[np.ndarray]]] = []
        empty = [_target_painted_out(image, box) for image in images]
        for tiles in (0, *tile_counts):
            tracker = build_tracker("alex-w0.25", None, device="cpu", long_term=True)
            config = tracker.config.replace(lost_tiles_per_frame=max(1, tiles))
            tracker.config = align_long_term_thresholds(config, LostPolicy())
            tracker.init(images[0], box)
            tracker.search_crop = timed("crops", tracker.search_crop)  # type: ignore[method-assign]
            tracker._run_model = timed("network", tracker._run_model)  # type: ignore[method-assign]
            tracker.finish_search = timed("finish", tracker.finish_search)  # type: ignore[method-assign]
            name = "tracking" if tiles == 0 else f"lost, {tiles} tile{'s' if tiles > 1 else ''}"
            runners.append((name, tracker, images if tiles == 0 else empty))
        samples: dict[str, dict[str, list[float]]] = {name: {} for name, _, _ in runners}
        for index in range(1, len(images)):
            shift = index % len(runners)
            for name, tracker, source in runners[shift:] + runners[:shift]:
                spent.clear()
                start = time.perf_counter()
                result = tracker.track(source[index])
                step = time.perf_counter() - start
                if index <= 5 or result.search_wide != (name != "tracking"):
                    continue  # warm-up, or not this row's kind of step
                looks = spent.get("describe", 0.0) + spent.get("similarity", 0.0)
                parts = {
                    "step": step,
                    "crops": spent.get("crops", 0.0),
                    "network": spent.get("network", 0.0),
                    "appearance": looks,
                    "presence features": spent.get("presence features", 0.0),
                    "decode": spent.get("finish", 0.0) - looks - spent.get("presence features", 0.0),
                }
                parts["rest"] = step - parts["crops"] - parts["network"] - spent.get("finish", 0.0)
                for phase, seconds in parts.items():
                    samples[name].setdefault(phase, []).append(seconds)
    finally:
        (
            tracker_module.appearance.describe,
            tracker_module.appearance.similarity,
            tracker_module.presence_features,
        ) = originals
    report: dict[str, dict[str, float]] = {}
    for name, phases in samples.items():
        if not phases:
            continue
        report[name] = {phase: float(np.percentile(values, 25)) * 1e3 for phase, values in phases.items()}
        report[name]["frames"] = float(len(phases["step"]))
    return report


def format_breakdown(report: dict[str, dict[str, float]]) -> str:
    """``phase_breakdown``'s report as a Markdown table (ms), with each row's step over tracking's."""
    names = list(report)
    lines = [markdown_row(("phase", *(f"{n} ({int(report[n]['frames'])} frames)" for n in names)))]
    lines.append("|" + "---|" * (len(names) + 1))
    for phase in PHASES:
        lines.append(markdown_row((phase, *(format_cell(report[n].get(phase, math.nan), 2) for n in names))))
    if "tracking" in report:
        base = report["tracking"]["step"]
        lines.append(markdown_row(("step / tracking", *(format_cell(report[n]["step"] / base, 2) for n in names))))
    lines.append(f"load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Where a lost frame's time goes (phase_breakdown).")
    parser.add_argument("--video", default=VTEST_VIDEO)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--tiles", default="1,4", help="comma-separated tile counts of the lost rows")
    parser.add_argument("--threads", type=int, default=2)
    options = parser.parse_args()
    counts = tuple(int(c) for c in options.tiles.split(",") if c.strip())
    print(format_breakdown(phase_breakdown(options.video, VTEST_TARGET, options.frames, counts, options.threads)))
