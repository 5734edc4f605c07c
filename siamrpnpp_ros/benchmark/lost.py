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
import os
import sys
import time
from typing import Any

import numpy as np

from siamrpnpp_ros.benchmark.report import format_cell, markdown_row, side_by_side_header
from siamrpnpp_ros.benchmark.speed import _fast_size, build_for_mode, load_frames, machine_info
from siamrpnpp_ros.benchmark.targets import _weights_for, parse_counts

HEADER = ("model", "mode", "tiles per lost frame", "lost step_ms", "p90_ms", "normal step_ms", "lost/normal")


def _target_painted_out(frame: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """``frame`` with ``box`` (top-left x, y, w, h pixels) filled with the frame's mean colour."""
    x, y, w, h = box
    height, width = frame.shape[:2]
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(width, int(np.ceil(x + w))), min(height, int(np.ceil(y + h)))
    empty = frame.copy()
    empty[y0:y1, x0:x1] = frame.reshape(-1, 3).mean(axis=0).astype(np.uint8)
    return empty


def run_lost(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every (model, mode, tile count) of ``args.lost_tiles``; returns the report."""
    from tqdm import tqdm

    from siamrpnpp_ros.tracking.backends import configure_threads
    from siamrpnpp_ros.tracking.longterm import LongTermTracker
    from siamrpnpp_ros.tracking.session import LostPolicy, align_long_term_thresholds

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
                ("normal", LongTermTracker(built.model, config, device=built.device), frames)
            ]
            for count in counts:
                tiles_config = config.replace(lost_tiles_per_frame=count)
                runners.append((count, LongTermTracker(built.model, tiles_config, device=built.device), empty_frames))
            for _, tracker, _ in runners:
                tracker.init(frames[0], first_box)
            steps: dict[int | str, list[float]] = {key: [] for key, _, _ in runners}
            progress = tqdm(
                total=len(frames) - 1,
                desc=f"{model}/{mode}",
                unit="frame",
                file=sys.stderr,
                leave=False,
                disable=args.quiet,
            )
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
    lines = side_by_side_header(
        report,
        "ms, medians over the frames; every tile count and the normal step measured side by side in one process",
        HEADER,
    )
    for r in report["results"]:
        cells = [
            r["model"],
            r["mode"],
            r["tiles"],
            format_cell(r["step_ms"]),
            format_cell(r["p90_ms"]),
            format_cell(r["normal_step_ms"]),
            format_cell(r["lost_over_normal"], 2),
        ]
        lines.append(markdown_row(cells))
    return "\n".join(lines)
