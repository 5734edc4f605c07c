"""The speed benchmark's output: the Markdown table (also used for the ROS latency table) and
the bar chart of the per-frame split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

HEADER = (
    "model",
    "device",
    "mode",
    "I",
    "median_ms",
    "p90_ms",
    "fps",
    "crop",
    "net",
    "backbone",
    "neck",
    "head",
    "decode",
    "GFLOP/s",
    "%mm",
    "%conv",
    "rss_MB",
    "iou_cl",
    "iou_tf",
)


def format_cell(value: Any, digits: int = 1) -> str:
    """A table cell: floats with ``digits`` decimals, ``-`` for None, NaN and infinities."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_row(r: dict[str, Any]) -> str:
    """One table row (``|``-separated, Markdown-ready) for a result record."""
    split = r["split_ms"]
    cells = [
        r["model"],
        r["device"],
        r["mode"],
        r["instance_size"],
        format_cell(r["median_ms"]),
        format_cell(r["p90_ms"]),
        format_cell(r["fps"], 2),
        format_cell(split["crop"], 2),
        format_cell(split["net"]),
        format_cell(split["backbone"]),
        format_cell(split["neck"]),
        format_cell(split["head"]),
        format_cell(split["decode"], 2),
        format_cell(r["gflops"]),
        format_cell(r.get("pct_matmul_peak"), 0),
        format_cell(r.get("pct_conv_peak"), 0),
        format_cell(r["rss_peak_mb"], 0),
        format_cell(r.get("iou_closed"), 3),
        format_cell(r.get("iou_teacher"), 3),
    ]
    if "cuda_peak_mb" in r:
        cells[HEADER.index("rss_MB")] = f"{r['rss_peak_mb']:.0f}/{r['cuda_peak_mb']:.0f}cuda"
    return markdown_row(cells)


def markdown_row(cells: Sequence[Any]) -> str:
    """One Markdown table row of ``cells`` (``str`` of each)."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def format_table(report: dict[str, Any]) -> str:
    """The Markdown table plus the machine/peak/load lines."""
    m, p = report["machine"], report["peaks"]
    lines = [
        f"# {m['cpu']}, {m['cores']} cores, {m['threads']} threads, torch {m['torch']}"
        + (f", onnxruntime {m['onnxruntime']}" if "onnxruntime" in m else ""),
        f"# peaks: matmul {p['matmul_gflops']:.1f} GFLOP/s, conv3x3 {p['conv3x3_gflops']:.1f} GFLOP/s; "
        f"load average start {_load(m['loadavg'])}, end {_load(report['loadavg_end'])}",
        "# times in ms (split = medians; net = backbone + neck + head); GFLOP/s = pysot's nominal "
        "FLOPs per track() / median",
        markdown_row(HEADER),
        "|" + "---|" * len(HEADER),
    ]
    lines += [format_row(r) for r in report["results"]]
    flops: dict[str, tuple[float, float]] = {}
    for r in report["results"]:  # the preset search size has the most FLOPs
        if r["nominal_gflop"] > flops.get(r["model"], (0.0, 0.0))[0]:
            flops[r["model"]] = (r["nominal_gflop"], r["template_gflop"])
    for model, (track, template) in flops.items():
        lines.append(f"# {model}: {track:.1f} GFLOP per track() (pysot), {template:.1f} per template")
    return "\n".join(lines)


def side_by_side_header(report: dict[str, Any], what: str, header: Sequence[str]) -> list[str]:
    """The first lines of a side-by-side table (``--targets``, ``--lost-tiles``): the machine,
    the source and the load, ``what`` was measured, and the Markdown header row of ``header``.
    """
    m = report["machine"]
    return [
        f"# {m['cpu']}, {m['cores']} cores, {m['threads']} threads, torch {m['torch']}"
        + (f", onnxruntime {m['onnxruntime']}" if "onnxruntime" in m else ""),
        f"# {report['source']}; load average start {_load(m['loadavg'])}, end {_load(report['loadavg_end'])}",
        f"# {what}",
        markdown_row(header),
        "|" + "---|" * len(header),
    ]


def _load(values: Sequence[float] | None) -> str:
    return "n/a" if not values else " ".join(f"{v:.2f}" for v in values)


def save_plot(report: dict[str, Any], path: str) -> None:
    """A stacked bar chart of the per-frame split for every (model, mode)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    labels = [f"{r['model']}\n{r['mode']}" for r in results]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(results)), 4.5))
    bottom = np.zeros(len(results))
    for key in ("crop", "backbone", "neck", "head", "net", "decode"):
        if key == "net":  # back-ends that cannot be split (ONNX Runtime): the whole network
            values = np.array([r["split_ms"]["net"] if r["split_ms"]["backbone"] is None else 0.0 for r in results])
            label = "network (not split)"
        else:
            values = np.array([r["split_ms"][key] or 0.0 for r in results])
            label = key
        ax.bar(labels, values, bottom=bottom, label=label, hatch="//" if key == "net" else None)
        bottom += values
    ax.set_ylabel("ms per track() (median split)")
    ax.set_title(f"SiamRPN++ per-frame time, {report['machine']['cpu']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
