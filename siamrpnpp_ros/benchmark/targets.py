"""What each extra target costs: ``siamrpnpp-bench --targets 1,2,4,8`` (the multi-target tracker).

For every (model, mode), one ``MultiTargetTracker`` per target count shares one network, and
all of them run in this one process, side by side: on every frame each tracker takes its step
in turn, in an order that rotates from frame to frame, so a change of machine load during the
run (other jobs, thermal limits) affects every count alike and the ratios stay comparable.

Printed per target count: the median time of one ``step()`` (every target on one frame), its
p90, the median network time within it (the batched passes) and the rest (crops, decoding and
state, per target), and the marginal cost of each extra target over one target,
``(t(N) - t(1)) / (N - 1)``, also as a fraction of the single-target step.

The first target is the sequence's object (``--video`` with its ``groundtruth.txt``, or the
synthetic 640x480 clip); the others are patches spread over the frame, so the search crops
differ. Weights: ``--weights``, else the bundled weights of the default model, else seeded
random weights (timing only: the arithmetic does not depend on the weights).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from siamrpnpp_ros.benchmark.report import format_cell, markdown_row, side_by_side_header
from siamrpnpp_ros.benchmark.speed import _fast_size, build_for_mode, load_frames, machine_info, resolve_weights
from siamrpnpp_ros.tracking.backends import configure_threads
from siamrpnpp_ros.tracking.factory import default_weights_path
from siamrpnpp_ros.tracking.multi import MultiTargetTracker

#: Modes that batch (``reference`` keeps one template and cannot).
TARGET_MODES = ("plain", "exact", "fused", "onnxruntime", "fast", "fast-ort", "fp16")
HEADER = (
    "model",
    "mode",
    "targets",
    "step_ms",
    "p90_ms",
    "network_ms",
    "per_target_rest_ms",
    "ms_per_extra_target",
    "extra/single",
)
#: The result key of each HEADER column: the column's name, but for the ratio (extra/single).
COLUMNS = (*HEADER[:-1], "extra_over_single")


def parse_counts(text: str) -> list[int]:
    """``"1,2,4,8"`` -> ``[1, 2, 4, 8]`` (sorted, unique, each >= 1).

    1 is added if missing, as the marginal costs are taken against it.
    """
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"--targets must be whole numbers separated by commas, got {text!r}") from None
    if not counts or counts[0] < 1:
        raise ValueError(f"--targets must be whole numbers >= 1, got {text!r}")
    return counts if counts[0] == 1 else [1, *counts]


def target_boxes(
    first: tuple[float, float, float, float], count: int, width: int, height: int
) -> list[tuple[float, ...]]:
    """``first`` plus ``count - 1`` boxes of its size spread over a ``width`` x ``height`` frame.

    The extra boxes sit on a grid of centres away from the borders; all are top-left
    ``x, y, w, h`` pixels.
    """
    w, h = first[2], first[3]
    columns = 4
    boxes = [tuple(first)]
    for i in range(count - 1):
        row, column = divmod(i, columns)
        cx = width * (column + 0.5) / columns
        cy = height * (0.25 + 0.5 * ((row % 2) + 0.5) / 2)
        boxes.append((cx - w / 2, cy - h / 2 + 7.0 * (row // 2), w, h))
    return boxes


def _weights_for(args: argparse.Namespace, model: str) -> str | None:
    # Resolved against every --models entry: a name=path list may name the others too.
    all_models = [m.strip() for m in args.models.split(",") if m.strip()]
    chosen = resolve_weights(args.weights, all_models)[model]
    if chosen:
        return chosen

    try:
        return str(default_weights_path(model))
    except (FileNotFoundError, ValueError):
        return None  # seeded random weights


class _TimedNetwork:
    """The tracker's network, adding the seconds of every search call to ``total[0]``."""

    def __init__(self, network: Any, total: list[float]) -> None:
        self.network = network
        self.total = total

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.network(*args, **kwargs)
        finally:
            self.total[0] += time.perf_counter() - start

    def __getattr__(self, name: str) -> Any:  # template(), device, providers, ...
        return getattr(self.network, name)


def run_targets(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every (model, mode, target count) of ``args``; returns the report."""
    counts = parse_counts(args.targets)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for mode in modes:
        if mode not in TARGET_MODES:
            raise ValueError(f"mode {mode!r} cannot batch targets; use one of {', '.join(TARGET_MODES)}")
    configure_threads(args.threads)
    info = machine_info()
    frames, first_box, source = load_frames(args.video, args.warmup + args.frames + 1)
    height, width = frames[0].shape[:2]
    boxes = target_boxes(first_box, max(counts), width, height)
    results: list[dict[str, Any]] = []
    for model in models:
        weights = _weights_for(args, model)
        for mode in modes:
            tracker = build_for_mode(mode, model, weights, args.device, _fast_size(args, model), args.seed)
            del tracker._bench_source
            network_time = [0.0]
            tracker.model = _TimedNetwork(tracker.model, network_time)  # shared by every target's copy
            multis = {}
            for count in counts:
                multi = MultiTargetTracker(copy.copy(tracker), max_targets=count)
                for target_id, box in enumerate(boxes[:count], start=1):
                    multi.add(frames[0], box, target_id, 0)
                multi.warm_up([count])
                multis[count] = multi
            step_s: dict[int, list[float]] = {count: [] for count in counts}
            network_s: dict[int, list[float]] = {count: [] for count in counts}
            progress = frame_progress(len(frames) - 1, f"{model}/{mode}", args.quiet)
            for index, frame in enumerate(frames[1:], start=1):
                shift = index % len(counts)
                for count in counts[shift:] + counts[:shift]:  # rotating order: load drift hits all alike
                    network_time[0] = 0.0
                    start = time.perf_counter()
                    multis[count].step(frame, index)
                    elapsed = time.perf_counter() - start
                    if index > args.warmup:
                        step_s[count].append(elapsed)
                        network_s[count].append(network_time[0])
                progress.update(1)
            progress.close()
            single = float(np.median(step_s[1]))
            for count in counts:
                step = float(np.median(step_s[count]))
                network = float(np.median(network_s[count]))
                extra = None if count == 1 else (step - single) / (count - 1)
                results.append(
                    {
                        "model": model,
                        "mode": mode,
                        "targets": count,
                        "device": str(tracker.device),
                        "instance_size": tracker.config.instance_size,
                        "frames": len(step_s[count]),
                        "step_ms": step * 1e3,
                        "p90_ms": float(np.percentile(step_s[count], 90)) * 1e3,
                        "network_ms": network * 1e3,
                        "per_target_rest_ms": (step - network) / count * 1e3,
                        "ms_per_extra_target": None if extra is None else extra * 1e3,
                        "extra_over_single": None if extra is None else extra / single,
                    }
                )
    return {
        "machine": info,
        "source": source,
        "weights": {m: _weights_for(args, m) for m in models},
        "results": results,
        "loadavg_end": list(os.getloadavg()),
    }


def format_targets_table(report: dict[str, Any]) -> str:
    """The Markdown table of :func:`run_targets`, with the machine and load lines."""
    return side_by_side_table(
        report,
        "ms, medians over the frames; all target counts measured side by side in one process; "
        "extra/single = cost of one extra target / one single-target step",
        HEADER,
        COLUMNS,
        two_decimals=("per_target_rest_ms", "extra_over_single"),
    )


def frame_progress(frames: int, label: str, quiet: bool) -> Any:
    """The progress bar (on stderr, gone when done) of one side-by-side measurement."""
    from tqdm import tqdm

    return tqdm(total=frames, desc=label, unit="frame", file=sys.stderr, leave=False, disable=quiet)


def side_by_side_table(
    report: dict[str, Any], what: str, header: Sequence[str], columns: Sequence[str], two_decimals: Sequence[str]
) -> str:
    """:func:`side_by_side_header`, then a Markdown row per result: its ``columns`` (result
    keys, in ``header``'s order), floats with one decimal, those in ``two_decimals`` with two.
    """
    lines = side_by_side_header(report, what, header)
    for r in report["results"]:
        lines.append(markdown_row([format_cell(r[key], 2 if key in two_decimals else 1) for key in columns]))
    return "\n".join(lines)
