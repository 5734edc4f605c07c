"""OPE report: success / precision / normalised-precision plots (PNG) and a Markdown table.

``write_report`` produces, in its output folder::

    report.md                 results table (sorted by success AUC) + per-sequence AUC
    success_plot.png          success rate vs IoU threshold, legend with AUC
    precision_plot.png        precision vs centre-error threshold (px), legend with P@20
    norm_precision_plot.png   precision vs normalised centre error, legend with NP@0.2
    results.json              the same numbers, machine-readable
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from .metrics import (
    NORM_PRECISION_THRESHOLDS,
    PRECISION_THRESHOLDS,
    SUCCESS_THRESHOLDS,
    TrackerSummary,
)


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by :func:`write_report`."""

    markdown: Path
    success_plot: Path
    precision_plot: Path
    norm_precision_plot: Path
    json: Path


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def ranked(summaries: Iterable[TrackerSummary]) -> list[TrackerSummary]:
    """Summaries sorted by success AUC, best first (ties keep their order)."""
    return sorted(summaries, key=lambda s: -s.auc)


def markdown_table(summaries: Iterable[TrackerSummary]) -> str:
    """The main results table (Markdown), best AUC first."""
    lines = [
        "| Tracker | Success AUC | Precision @20px | Norm. precision @0.2 | FPS | Sequences | Frames |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in ranked(summaries):
        lines.append(
            f"| {s.tracker} | {_fmt(s.auc)} | {_fmt(s.precision_20)} | {_fmt(s.norm_precision_02)} | "
            f"{_fmt(s.fps, 1)} | {len(s.sequences)} | {s.frames} |"
        )
    return "\n".join(lines)


def per_sequence_table(summaries: Sequence[TrackerSummary]) -> str:
    """Success AUC of every tracker on every sequence (Markdown)."""
    ordered = ranked(summaries)
    if not ordered or not ordered[0].sequences:
        return ""
    header = "| Sequence | " + " | ".join(s.tracker for s in ordered) + " |"
    lines = [header, "|---|" + "---:|" * len(ordered)]
    by_tracker = [{q.name: q for q in s.sequences} for s in ordered]
    for name in [q.name for q in ordered[0].sequences]:
        cells = [_fmt(t[name].auc) if name in t else "" for t in by_tracker]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot(summaries: Sequence[TrackerSummary], kind: str, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.8))
    for s in ranked(summaries):
        if kind == "success":
            x, y, label = SUCCESS_THRESHOLDS, s.success, f"[{s.auc:.3f}] {s.tracker}"
        elif kind == "precision":
            x, y, label = PRECISION_THRESHOLDS, s.precision, f"[{s.precision_20:.3f}] {s.tracker}"
        else:
            x, y, label = NORM_PRECISION_THRESHOLDS, s.norm_precision, f"[{s.norm_precision_02:.3f}] {s.tracker}"
        axis.plot(x, y, linewidth=2, label=label)
    if kind == "success":
        axis.set_xlabel("overlap threshold (IoU)")
        axis.set_ylabel("success rate")
        axis.set_xlim(0, 1)
    elif kind == "precision":
        axis.set_xlabel("location error threshold (pixels)")
        axis.set_ylabel("precision")
        axis.set_xlim(0, 50)
        axis.axvline(20, color="gray", linestyle=":", linewidth=1)
    else:
        axis.set_xlabel("normalised location error threshold")
        axis.set_ylabel("normalised precision")
        axis.set_xlim(0, 0.5)
        axis.axvline(0.2, color="gray", linestyle=":", linewidth=1)
    axis.set_ylim(0, 1.0)
    axis.grid(alpha=0.3)
    axis.set_title(title)
    axis.legend(loc="lower left" if kind == "success" else "lower right", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def summaries_to_json(summaries: Iterable[TrackerSummary]) -> dict:
    """Plain-data version of the results (curves included)."""

    def number(value: float) -> Optional[float]:
        return float(value) if math.isfinite(value) else None

    return {
        "trackers": [
            {
                "tracker": s.tracker,
                "auc": number(s.auc),
                "precision_20": number(s.precision_20),
                "norm_precision_02": number(s.norm_precision_02),
                "fps": number(s.fps),
                "frames": s.frames,
                "success_curve": [float(v) for v in s.success],
                "precision_curve": [float(v) for v in s.precision],
                "norm_precision_curve": [float(v) for v in s.norm_precision],
                "sequences": {
                    q.name: {
                        "auc": number(q.auc),
                        "precision_20": number(q.precision_20),
                        "norm_precision_02": number(q.norm_precision_02),
                        "fps": number(q.fps),
                        "frames": q.frames,
                    }
                    for q in s.sequences
                },
            }
            for s in ranked(summaries)
        ]
    }


def write_report(
    summaries: Iterable[TrackerSummary],
    out_dir: str | Path,
    title: str = "One-pass evaluation",
    notes: Sequence[str] = (),
) -> ReportFiles:
    """Write plots, ``report.md`` and ``results.json`` for ``summaries`` into ``out_dir``.

    ``notes`` are listed under the table (e.g. skipped baselines and why).
    """
    items = list(summaries)
    if not items:
        raise ValueError("nothing to report: no tracker results")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(
        folder / "report.md",
        _plot(items, "success", folder / "success_plot.png", f"Success plots of OPE — {title}"),
        _plot(items, "precision", folder / "precision_plot.png", f"Precision plots of OPE — {title}"),
        _plot(items, "norm", folder / "norm_precision_plot.png", f"Normalised precision — {title}"),
        folder / "results.json",
    )
    sequences = max(len(s.sequences) for s in items)
    text = [
        f"# {title}",
        "",
        f"One-pass evaluation on {sequences} sequence(s). Success AUC: mean success rate over IoU "
        "thresholds 0..1 (step 0.05, IoU > threshold). Precision: share of frames with centre error "
        "<= 20 px. Normalised precision: centre error in units of the ground-truth size <= 0.2. "
        "FPS: tracker time only (init included, image decoding excluded).",
        "",
        markdown_table(items),
        "",
        "![success plot](success_plot.png) ![precision plot](precision_plot.png) "
        "![normalised precision plot](norm_precision_plot.png)",
        "",
    ]
    if notes:
        text += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    table = per_sequence_table(items)
    if table:
        text += ["## Success AUC per sequence", "", table, ""]
    files.markdown.write_text("\n".join(text), encoding="utf-8")
    files.json.write_text(json.dumps(summaries_to_json(items), indent=2), encoding="utf-8")
    return files
