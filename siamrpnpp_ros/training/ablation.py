r"""Shift-range ablation: SiamRPN++'s spatial-aware sampling, measured on a generated benchmark.

The paper's central observation: a deep, padded backbone trained with the target
always at the centre of the search crop learns a centre bias, and randomly
shifting the target (up to 64 px) during training removes it. This script
trains one model per maximum search shift (default 0, 16, 32, 64 px) with
*exactly* the same budget (config, data, seed, epochs, pairs; only
``search_augment.shift`` differs), evaluates every model with OPE on a test
benchmark, and writes:

    OUT/ablation.md      table: shift vs success AUC, precision@20, norm. precision, train loss/time
    OUT/ablation.png     AUC and precision@20 against the shift (baselines as dashed lines)
    OUT/ablation.json    the same numbers
    OUT/report/          the full OPE report of all variants (success/precision plots)
    OUT/runs/shift_S/    each training run (resumable: an interrupted ablation continues)

Without training data it first builds disjoint train/test benchmarks from the
train/test photo splits (``OUT/data/train``, ``OUT/data/test``)::

    python -m siamrpnpp_ros.training.ablation --out ablation --model mobilev2 --epochs 20 \
        --samples-per-epoch 4000 --train-sequences 60 --test-sequences 20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from siamrpnpp_ros.eval.builder import BuilderConfig, build_benchmark
from siamrpnpp_ros.eval.ope import load_benchmark, opencv_baseline_runners, run_ope, siamrpn_model_runner
from siamrpnpp_ros.eval.report import write_report
from siamrpnpp_ros.models import load_checkpoint
from siamrpnpp_ros.tracking.config import preset_for
from siamrpnpp_ros.tracking.factory import select_device

from .config import TrainConfig, load_train_config
from .model import build_training_model
from .trainer import EPOCH_LOG_FIELDS, CsvLog, Trainer, find_resume_point

DEFAULT_SHIFTS = (0.0, 16.0, 32.0, 64.0)
LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class AblationRow:
    """Result of one shift setting."""

    shift: float
    label: str
    auc: float
    precision_20: float
    norm_precision_02: float
    final_loss: float
    train_seconds: float
    weights: str


def run_label(shift: float) -> str:
    """The label of a shift setting in tables and plots, e.g. ``shift 64px``."""
    return f"shift {shift:g}px"


def train_variant(base: TrainConfig, shift: float, out_dir: Path) -> Path:
    """Train (or resume, or reuse) the model for one shift; returns its weights file."""
    run_dir = out_dir / "runs" / f"shift_{shift:g}"
    config = base.replace(search_augment=dataclasses.replace(base.search_augment, shift=float(shift)), out=str(run_dir))
    final = run_dir / "model.pth"
    epochs_done = _epochs_done(run_dir)
    if final.is_file() and epochs_done >= config.epochs:
        LOGGER.info("%s: already trained (%s)", run_label(shift), final)
        return final
    trainer = Trainer(config)
    try:
        find_resume_point(run_dir)
        resume: Optional[Path] = run_dir
    except FileNotFoundError:
        resume = None
    LOGGER.info("%s: training %s (%s)", run_label(shift), "resumed" if resume else "from scratch", run_dir)
    return trainer.fit(resume=resume).final_weights


def _epochs_done(run_dir: Path) -> int:
    rows = CsvLog(run_dir / "epochs.csv", EPOCH_LOG_FIELDS).rows()
    return max((int(r["epoch"]) for r in rows), default=0)


def _train_stats(run_dir: Path) -> tuple[float, float]:
    rows = CsvLog(run_dir / "epochs.csv", EPOCH_LOG_FIELDS).rows()
    if not rows:
        return math.nan, math.nan
    return float(rows[-1]["loss"]), float(sum(float(r["seconds"] or 0) for r in rows))


def run_ablation(
    base: TrainConfig,
    benchmark: str | Path,
    out_dir: str | Path,
    shifts: Sequence[float] = DEFAULT_SHIFTS,
    baselines: Sequence[str] = (),
    max_sequences: Optional[int] = None,
    max_frames: Optional[int] = None,
    progress: bool = True,
) -> list[AblationRow]:
    """Train every shift variant of ``base`` (a TrainConfig), evaluate all, write the outputs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shifts = [float(s) for s in shifts]
    if len(set(shifts)) != len(shifts) or any(s < 0 for s in shifts):
        raise ValueError(f"shifts must be distinct and >= 0, got {shifts}")
    sequences = load_benchmark(benchmark, max_sequences=max_sequences, max_frames=max_frames)
    device = select_device(base.device)

    weights = {shift: train_variant(base, shift, out) for shift in shifts}
    runners = []
    for shift in shifts:
        model = build_training_model(base.model, base.width_mult)
        load_checkpoint(model, weights[shift])
        runners.append(siamrpn_model_runner(run_label(shift), model, preset_for(base.model), device))
    notes = [
        f"Same budget for every variant: model {base.model}"
        + (f" (width x{base.width_mult:g})" if base.width_mult else "")
        + f", {base.epochs} epochs x {base.samples_per_epoch} pairs, batch {base.batch_size}, seed {base.seed}; "
        "only the maximum search-crop shift differs."
    ]
    baseline_runners, skipped = opencv_baseline_runners(baselines)
    runners += baseline_runners
    notes += skipped
    for note in skipped:
        print(f"ablation: {note}", file=sys.stderr)
    with torch.inference_mode():
        summaries = run_ope(runners, sequences, out / "results", reuse=True, progress=progress)
    write_report(summaries.values(), out / "report", title="shift-range ablation", notes=notes)

    rows = []
    for shift in shifts:
        summary = summaries[run_label(shift)]
        loss, seconds = _train_stats(out / "runs" / f"shift_{shift:g}")
        rows.append(
            AblationRow(
                shift,
                run_label(shift),
                summary.auc,
                summary.precision_20,
                summary.norm_precision_02,
                loss,
                seconds,
                str(weights[shift]),
            )
        )
    baseline_summaries = [summaries[r.name] for r in runners[len(shifts) :]]
    write_ablation_outputs(rows, baseline_summaries, out, notes, Path(benchmark), len(sequences))
    return rows


def write_ablation_outputs(
    rows: Sequence[AblationRow],
    baselines: Sequence[Any],
    out: Path,
    notes: Sequence[str],
    benchmark: Path,
    sequences: int,
) -> None:
    """``ablation.md``, ``ablation.png`` and ``ablation.json`` for the rows (and baseline summaries)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    def fmt(value: float, digits: int = 3) -> str:
        return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"

    lines = [
        "# Shift-range ablation (spatial-aware sampling)",
        "",
        f"OPE on `{benchmark}` ({sequences} sequences). Each row trains the same network with the target "
        "shifted uniformly by up to *shift* pixels (per axis) in the 255 px search crop; shift 0 is the "
        "always-centred baseline.",
        "",
        "| Max search shift (px) | Success AUC | Precision @20px | Norm. precision @0.2 "
        "| Final train loss | Train time (min) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.shift:g} | {fmt(r.auc)} | {fmt(r.precision_20)} | {fmt(r.norm_precision_02)} | "
            f"{fmt(r.final_loss)} | {fmt(r.train_seconds / 60, 1)} |"
        )
    for b in baselines:
        lines.append(
            f"| {b.tracker} (baseline) | {fmt(b.auc)} | {fmt(b.precision_20)} | {fmt(b.norm_precision_02)} | | |"
        )
    lines += ["", "![ablation plot](ablation.png)", "", "Full OPE report: [report/report.md](report/report.md)", ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    (out / "ablation.md").write_text("\n".join(lines), encoding="utf-8")

    figure, axis = plt.subplots(figsize=(6.4, 4.4))
    x = [r.shift for r in rows]
    axis.plot(x, [r.auc for r in rows], "o-", linewidth=2, label="success AUC")
    axis.plot(x, [r.precision_20 for r in rows], "s-", linewidth=2, label="precision @20px")
    for index, b in enumerate(baselines):
        axis.axhline(b.auc, linestyle="--", linewidth=1, color=f"C{index + 2}", label=f"{b.tracker} AUC")
    axis.set_xlabel("maximum target shift in the search crop during training (px)")
    axis.set_ylabel("score")
    axis.set_xticks(x)
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.set_title("Spatial-aware sampling ablation")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "ablation.png", dpi=110)
    plt.close(figure)

    (out / "ablation.json").write_text(
        json.dumps(
            {
                "rows": [dataclasses.asdict(r) for r in rows],
                "baselines": [{"tracker": b.tracker, "auc": b.auc, "precision_20": b.precision_20} for b in baselines],
                "notes": list(notes),
            },
            indent=2,
        ),
        encoding="utf-8",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ablation's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m siamrpnpp_ros.training.ablation",
        description="Train one SiamRPN++ per maximum search shift (same budget) and compare them with OPE.",
    )
    add = parser.add_argument
    add("--out", required=True, help="ablation folder (runs, results, report, table, plot)")
    add(
        "--shifts",
        type=float,
        nargs="+",
        default=list(DEFAULT_SHIFTS),
        help="maximum search shifts, px (default 0 16 32 64)",
    )
    add("--config", help="YAML TrainConfig for every variant (its search shift is overridden)")
    add(
        "--train-data",
        action="append",
        default=None,
        metavar="SPEC",
        help="training data spec (as siamrpnpp-train --data)",
    )
    add("--benchmark", default=None, help="test benchmark (default OUT/data/test, generated if missing)")
    add("--train-sequences", type=int, default=60, help="sequences of the generated training set")
    add("--test-sequences", type=int, default=20, help="sequences of the generated test benchmark")
    add("--frames", type=int, default=150, help="frames per generated sequence")
    add("--model", choices=("r50", "mobilev2", "alex"), default=None, help="network (default: config's, else alex)")
    add("--width-mult", type=float, default=None, help="thinner alex/mobilev2 (cheaper runs)")
    add("--epochs", type=int, default=None)
    add("--samples-per-epoch", type=int, default=None)
    add("--batch-size", type=int, default=None)
    add("--lr", type=float, default=None)
    add("--device", default=None, help="auto | cpu | cuda (default auto)")
    add("--workers", type=int, default=None)
    add("--threads", type=int, default=None)
    add("--seed", type=int, default=None)
    add("--max-sequences", type=int, default=None, help="evaluate on the first N sequences only")
    add("--max-frames", type=int, default=None, help="evaluate the first N frames of each sequence only")
    add("--baselines", nargs="*", default=["csrt", "kcf"], help="OpenCV baselines to add (skipped if unavailable)")
    add("--no-progress", action="store_true")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ablation with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        base = load_train_config(args.config) if args.config else TrainConfig()
        changes: dict[str, Any] = {}
        for name in (
            "model",
            "width_mult",
            "epochs",
            "samples_per_epoch",
            "batch_size",
            "lr",
            "device",
            "workers",
            "threads",
            "seed",
        ):
            if getattr(args, name) is not None:
                changes[name] = getattr(args, name)
        if args.no_progress:
            changes["progress"] = False
        out = Path(args.out)
        seed = args.seed if args.seed is not None else base.seed
        if args.train_data:
            changes["data"] = tuple(args.train_data)
        elif not base.data:
            train_dir = out / "data" / "train"
            if not (train_dir / "benchmark.json").is_file():
                print(f"ablation: building the training set in {train_dir}", file=sys.stderr)
                build_benchmark(
                    train_dir,
                    BuilderConfig(
                        sequences=args.train_sequences,
                        frames=args.frames,
                        seed=seed + 1000,
                        photo_split="train",
                        name_prefix="train",
                    ),
                    progress=not args.no_progress,
                )
            changes["data"] = (str(train_dir),)
        benchmark = Path(args.benchmark) if args.benchmark else out / "data" / "test"
        if args.benchmark is None and not (benchmark / "benchmark.json").is_file():
            print(f"ablation: building the test benchmark in {benchmark}", file=sys.stderr)
            build_benchmark(
                benchmark,
                BuilderConfig(
                    sequences=args.test_sequences, frames=args.frames, seed=seed, photo_split="test", name_prefix="test"
                ),
                progress=not args.no_progress,
            )
        base = base.replace(**changes)
        rows = run_ablation(
            base,
            benchmark,
            out,
            args.shifts,
            args.baselines,
            args.max_sequences,
            args.max_frames,
            progress=not args.no_progress,
        )
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"ablation: error: {exc}", file=sys.stderr)
        return 2
    for r in rows:
        print(f"shift={r.shift:g} auc={r.auc:.3f} precision20={r.precision_20:.3f}")
    print(f"table: {out / 'ablation.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
