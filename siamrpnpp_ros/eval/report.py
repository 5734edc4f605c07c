"""OPE report: success / precision / normalised-precision plots (PNG) and a Markdown table.

``write_report`` produces, in its output folder::

    report.md                 results table (sorted by success AUC) + per-sequence AUC
    success_plot.png          success rate vs IoU threshold, legend with AUC
    precision_plot.png        precision vs centre-error threshold (px), legend with P@20
    norm_precision_plot.png   precision vs normalised centre error, legend with NP@0.2
    results.json              the same numbers, machine-readable

``write_long_term_report`` (long-term benchmarks, :mod:`.longterm_metrics`) writes
``report.md`` (F-score, precision, recall, absence reporting, re-acquisition delay,
success AUC on present frames; ranked by F-score), ``pr_plot.png`` (tracking precision
against recall over the confidence threshold, F max marked), ``success_plot.png``
(present frames) and ``results.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, TypeVar

import numpy as np

from .longterm_metrics import LongTermSummary, seconds
from .metrics import (
    NORM_PRECISION_THRESHOLDS,
    PRECISION_THRESHOLDS,
    SUCCESS_THRESHOLDS,
    TrackerSummary,
)

SummaryT = TypeVar("SummaryT", TrackerSummary, LongTermSummary)


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
        "| Tracker | Success AUC | Precision @20px | Norm. precision @0.2 | FPS | ms / frame | Sequences | Frames |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in ranked(summaries):
        ms = 1000.0 / s.fps if math.isfinite(s.fps) and s.fps > 0 else float("nan")
        lines.append(
            f"| {s.tracker} | {_fmt(s.auc)} | {_fmt(s.precision_20)} | {_fmt(s.norm_precision_02)} | "
            f"{_fmt(s.fps, 1)} | {_fmt(ms, 1)} | {len(s.sequences)} | {s.frames} |"
        )
    return "\n".join(lines)


def per_attribute_table(summaries: Sequence[TrackerSummary], attributes: Mapping[str, Sequence[str]]) -> str:
    """Success AUC of every tracker on the sequences that have each attribute (Markdown).

    ``attributes``: ``{sequence name: its attributes}`` (the builder's manifest). The AUC of
    an attribute is the mean over the sequences that have it, as the overall one is over all;
    the ``all`` row repeats the overall AUC. Empty when no sequence has an attribute.
    """
    ordered = ranked(summaries)
    names = sorted({a for values in attributes.values() for a in values})
    if not ordered or not names:
        return ""
    lines = [
        "| Attribute | Sequences | " + " | ".join(s.tracker for s in ordered) + " |",
        "|---|---:|" + "---:|" * len(ordered),
    ]
    for attribute in [*names, "all"]:
        members = {n for n, values in attributes.items() if attribute == "all" or attribute in values}
        cells = []
        for summary in ordered:
            scores = [q.auc for q in summary.sequences if q.name in members]
            cells.append(_fmt(float(np.mean(scores))) if scores else "")
        lines.append(f"| {attribute} | {len(members)} | " + " | ".join(cells) + " |")
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


def _report_inputs(summaries: Iterable[SummaryT], out_dir: str | Path) -> tuple[list[SummaryT], Path]:
    """``summaries`` as a list (ValueError when empty) and ``out_dir``, created if missing."""
    items = list(summaries)
    if not items:
        raise ValueError("nothing to report: no tracker results")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return items, folder


def write_report(
    summaries: Iterable[TrackerSummary],
    out_dir: str | Path,
    title: str = "One-pass evaluation",
    notes: Sequence[str] = (),
    attributes: Mapping[str, Sequence[str]] | None = None,
) -> ReportFiles:
    """Write plots, ``report.md`` and ``results.json`` for ``summaries`` into ``out_dir``.

    ``notes`` are listed under the table (e.g. skipped baselines and why). ``attributes``
    (``{sequence name: its attributes}``, ``ope.sequence_attributes``) adds a per-attribute table.
    """
    items, folder = _report_inputs(summaries, out_dir)
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
    table = per_attribute_table(items, attributes or {})
    if table:
        text += ["## Success AUC per attribute", "", table, ""]
    table = per_sequence_table(items)
    if table:
        text += ["## Success AUC per sequence", "", table, ""]
    files.markdown.write_text("\n".join(text), encoding="utf-8")
    files.json.write_text(json.dumps(summaries_to_json(items), indent=2), encoding="utf-8")
    return files


# ---------------------------------------------------------------------- long-term
@dataclass(frozen=True)
class LongTermReportFiles:
    """Paths written by :func:`write_long_term_report`."""

    markdown: Path
    pr_plot: Path
    success_plot: Path
    json: Path


def ranked_long_term(summaries: Iterable[LongTermSummary]) -> list[LongTermSummary]:
    """Summaries sorted by F-score, best first (NaN last; ties keep their order)."""
    return sorted(summaries, key=lambda s: -s.f_score if math.isfinite(s.f_score) else math.inf)


def _delay(value: float, fps: float | None) -> str:
    text = _fmt(value, 1)
    in_seconds = seconds(value, fps)
    return f"{text} ({in_seconds:.2f} s)" if math.isfinite(in_seconds) else text


def long_term_table(summaries: Iterable[LongTermSummary], fps: float | None = None) -> str:
    """The long-term results table (Markdown), best F-score first; delays also in seconds at ``fps``."""
    header = (
        "| Tracker | F-score | Precision | Recall | threshold | absent frames reported absent | "
        "present frames reported absent | re-acq. delay, mean | median | not re-acquired | "
        "success AUC (present) | FPS |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in ranked_long_term(summaries):
        lines.append(
            f"| {s.tracker} | {_fmt(s.f_score)} | {_fmt(s.precision)} | {_fmt(s.recall)} | {_fmt(s.threshold)} | "
            f"{_fmt(s.absent_reported_absent)} | {_fmt(s.present_reported_absent)} | {_delay(s.mean_delay, fps)} | "
            f"{_delay(s.median_delay, fps)} | {s.not_reacquired}/{s.returns} | {_fmt(s.auc)} | {_fmt(s.fps, 1)} |"
        )
    return "\n".join(lines)


def _pr_plot(summaries: Sequence[LongTermSummary], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axis = plt.subplots(figsize=(6.4, 4.8))
    recall_grid = np.linspace(0.01, 1.0, 100)
    for level in (0.2, 0.4, 0.6, 0.8):  # iso-F lines: precision = F R / (2R - F)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = level * recall_grid / (2 * recall_grid - level)
        keep = (recall_grid > level / 2) & (precision <= 1.0)
        axis.plot(recall_grid[keep], precision[keep], color="gray", linewidth=0.6, linestyle=":")
    for s in ranked_long_term(summaries):
        defined = np.isfinite(s.precision_curve) & np.isfinite(s.recall_curve)
        (line,) = axis.plot(
            s.recall_curve[defined],
            s.precision_curve[defined],
            linewidth=2,
            marker="." if defined.sum() < 5 else None,
            label=f"[{s.f_score:.3f}] {s.tracker}",
        )
        if math.isfinite(s.f_score):
            axis.plot([s.recall], [s.precision], marker="o", markersize=7, color=line.get_color())
    axis.set_xlabel("tracking recall")
    axis.set_ylabel("tracking precision")
    axis.set_xlim(0, 1.0)
    axis.set_ylim(0, 1.0)
    axis.grid(alpha=0.3)
    axis.set_title(title)
    axis.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def long_term_to_json(summaries: Iterable[LongTermSummary], fps: float | None = None) -> dict:
    """Plain-data version of the long-term results (curves included)."""

    def number(value: float) -> float | None:
        return float(value) if math.isfinite(value) else None

    return {
        "fps": fps,
        "trackers": [
            {
                "tracker": s.tracker,
                "f_score": number(s.f_score),
                "precision": number(s.precision),
                "recall": number(s.recall),
                "threshold": number(s.threshold),
                "absent_reported_absent": number(s.absent_reported_absent),
                "present_reported_absent": number(s.present_reported_absent),
                "mean_delay_frames": number(s.mean_delay),
                "median_delay_frames": number(s.median_delay),
                "mean_delay_seconds": number(seconds(s.mean_delay, fps)),
                "returns": s.returns,
                "not_reacquired": s.not_reacquired,
                "auc_present": number(s.auc),
                "precision_20_present": number(s.success.precision_20),
                "fps": number(s.fps),
                "frames": s.frames,
                "absent_frames": s.absent_frames,
                "thresholds": [float(v) for v in s.thresholds],
                "precision_curve": [number(v) for v in s.precision_curve],
                "recall_curve": [number(v) for v in s.recall_curve],
                "sequences": {
                    q.name: {
                        "auc_present": number(q.success.auc),
                        "delays": [[int(d), bool(found)] for d, found in q.delays],
                        "absent_frames": int((~q.present).sum()),
                        "reported_absent_frames": int((~q.reported_present).sum()),
                    }
                    for q in s.sequences
                },
            }
            for s in ranked_long_term(summaries)
        ],
    }


LONG_TERM_MEASURES = (
    "Frame 0 (initialisation) is left out of all but the success AUC. **F-score**: the best over the confidence "
    "threshold of 2PR/(P+R), with tracking precision P = mean IoU over frames with confidence >= threshold "
    "(IoU 0 where the target is absent) and recall R = mean IoU over frames where the target is present (0 "
    "where the confidence is below the threshold), both averaged over sequences (VOT-LT); **threshold**: the "
    "confidence threshold of that F-score. **Absent frames reported absent** / **present frames reported "
    "absent**: shares of all absent / present frames, pooled over sequences. **Re-acquisition delay**: frames "
    "from the first present frame after an absence to the first frame where the tracker reports the target "
    "present with IoU > 0; a return never re-acquired counts as the rest of the sequence and is listed under "
    "**not re-acquired** (of all returns). **Success AUC (present)**: OTB success AUC over the frames where the "
    "target is present. FPS: tracker time only."
)


def write_long_term_report(
    summaries: Iterable[LongTermSummary],
    out_dir: str | Path,
    title: str = "Long-term evaluation",
    notes: Sequence[str] = (),
    fps: float | None = None,
) -> LongTermReportFiles:
    """Write ``report.md``, ``pr_plot.png``, ``success_plot.png`` (present frames) and
    ``results.json`` for long-term ``summaries`` into ``out_dir``; ``fps``: the benchmark's
    frame rate (delays are also given in seconds).
    """
    items, folder = _report_inputs(summaries, out_dir)
    files = LongTermReportFiles(
        folder / "report.md",
        _pr_plot(items, folder / "pr_plot.png", f"Tracking precision/recall — {title}"),
        _plot(
            [s.success for s in items], "success", folder / "success_plot.png", f"Success on present frames — {title}"
        ),
        folder / "results.json",
    )
    sequences = max(len(s.sequences) for s in items)
    absent = max(s.absent_frames for s in items)
    frames = max(s.frames for s in items)
    rate = f" at {fps:g} fps" if fps else ""
    text = [
        f"# {title}",
        "",
        (
            f"Long-term evaluation on {sequences} sequence(s), {frames} scored frames{rate}, of which {absent} "
            f"with the target absent. {LONG_TERM_MEASURES}"
        ),
        "",
        long_term_table(items, fps),
        "",
        "![precision/recall plot](pr_plot.png) ![success plot on present frames](success_plot.png)",
        "",
    ]
    if notes:
        text += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    files.markdown.write_text("\n".join(text), encoding="utf-8")
    files.json.write_text(json.dumps(long_term_to_json(items, fps), indent=2), encoding="utf-8")
    return files
