r"""Grid search of the tracker's post-processing settings for one set of weights.

    python -m siamrpnpp_ros.eval.tune --model alex-w0.5 --weights model.pth --benchmark data/val \
        --penalty-k 0.05 0.1 0.16 0.25 --window-influence 0.25 0.4 0.5 --lr 0.3 0.5 \
        --max-sequences 12 --max-frames 80 --out reports/tune

pysot tunes ``penalty_k`` (scale/aspect change penalty), ``window_influence`` (cosine window
weight) and ``lr`` (size update rate) per model on its benchmarks. Weights trained here
(fine-tuned or from scratch) deserve their own values: this runs one-pass evaluation for
every combination and ranks them by success AUC. Tune on a
validation split (training sequences favour settings that suit memorised appearance),
never on the sequences you report.

Writes ``OUT/tune.csv`` (one row per combination, best first) and prints the best settings
as a ``tracker:`` block for a ROS parameters file.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from siamrpnpp_ros.models import build_model, load_checkpoint
from siamrpnpp_ros.models.config import THIN_NAME_HELP, model_name_argument
from siamrpnpp_ros.tracking.config import preset_for
from siamrpnpp_ros.tracking.factory import default_weights_path, select_device

from .ope import load_benchmark, run_ope, siamrpn_model_runner

FIELDS = ("penalty_k", "window_influence", "lr", "auc", "precision_20", "norm_precision_02")


def build_parser() -> argparse.ArgumentParser:
    """The tuner's argument parser."""
    parser = argparse.ArgumentParser(prog="python -m siamrpnpp_ros.eval.tune", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--model", required=True, type=model_name_argument, help=f"network of --weights: {THIN_NAME_HELP}")
    add("--weights", help="checkpoint (default: the model's bundled weights)")
    add("--benchmark", required=True, help="OTB-format folder to tune on (not the one you report)")
    add("--penalty-k", type=float, nargs="+", default=None, help="values to try (default: the preset's)")
    add("--window-influence", type=float, nargs="+", default=None, help="values to try (default: the preset's)")
    add("--lr", type=float, nargs="+", default=None, help="values to try (default: the preset's)")
    add("--max-sequences", type=int, default=None)
    add("--max-frames", type=int, default=None)
    add("--device", default="auto")
    add("--out", required=True, help="folder for tune.csv")
    add("--no-progress", action="store_true")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the grid search as ``argv`` (default ``sys.argv[1:]``) says; returns the exit status."""
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    try:
        preset = preset_for(args.model)
        grid = list(
            itertools.product(
                args.penalty_k or [preset.penalty_k],
                args.window_influence or [preset.window_influence],
                args.lr or [preset.lr],
            )
        )
        configs = [preset.replace(penalty_k=p, window_influence=w, lr=lr) for p, w, lr in grid]
        sequences = load_benchmark(args.benchmark, max_sequences=args.max_sequences, max_frames=args.max_frames)
        device = select_device(args.device)
    except (ValueError, OSError) as exc:
        print(f"tune: error: {exc}", file=sys.stderr)
        return 2
    try:
        model = build_model(args.model)
        load_checkpoint(model, args.weights or default_weights_path(args.model))
    except (ValueError, OSError) as exc:  # a missing, corrupt or mismatched checkpoint
        print(f"tune: error: {exc}", file=sys.stderr)
        return 1

    rows = []
    for config in tqdm(configs, desc="settings", disable=args.no_progress, dynamic_ncols=True):
        summary = run_ope([siamrpn_model_runner("tuned", model, config, device)], sequences)["tuned"]
        rows.append(
            {
                "penalty_k": config.penalty_k,
                "window_influence": config.window_influence,
                "lr": config.lr,
                "auc": summary.auc,
                "precision_20": summary.precision_20,
                "norm_precision_02": summary.norm_precision_02,
            }
        )
    rows.sort(key=lambda row: -row["auc"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "tune.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        writer.writerows({k: f"{v:.4g}" for k, v in row.items()} for row in rows)
    for row in rows[:5]:
        print("  ".join(f"{k} {row[k]:.3f}" for k in FIELDS))
    best = rows[0]
    print(
        f"tracker:\n  penalty_k: {best['penalty_k']:g}\n  window_influence: {best['window_influence']:g}\n"
        f"  lr: {best['lr']:g}\n# AUC {best['auc']:.3f} on {len(sequences)} sequences of {args.benchmark}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
