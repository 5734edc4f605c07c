r"""``siamrpnpp-eval``: one-pass evaluation of trackers on an OTB-format benchmark, with a report.

    siamrpnpp-eval --benchmark bench/ --out report/ \
        --tracker alex:runs/alex/model.pth --tracker "shift0=alex:runs/s0/model.pth" \
        --tracker csrt --tracker kcf [--device auto] [--max-frames N] [--reuse]

Tracker specs: ``csrt``, ``kcf``, ``mil`` (OpenCV baselines) or ``[LABEL=]MODEL:WEIGHTS[:CONFIG]``
with MODEL one of r50, mobilev2, alex or a thinner variant such as alex-w0.5, WEIGHTS a
pysot-format checkpoint and CONFIG an optional parameters YAML whose ``tracker`` section
overrides the model's preset (``config/*.yaml``, as the node's). A baseline OpenCV
cannot provide here is skipped with a message (and noted in the report); the run fails only
if no tracker can run. Writes ``report.md``, ``success_plot.png``, ``precision_plot.png``,
``norm_precision_plot.png``, ``results.json`` and ``results/<tracker>/<sequence>.txt`` under
``--out``, and prints the results table.

Long-term benchmarks (``--long-term``, or automatically when the benchmark's ``benchmark.json``
says ``"long_term": true``, as ``python -m siamrpnpp_ros.eval.builder --long-term`` writes it):
the target is absent on some frames (ground truth ``nan``). SiamRPN++ then runs as the ROS node
runs it by default (a ``TrackingSession`` around the long-term tracker, LOST = reported absent),
CSRT / KCF / MIL report their ``update()`` failure flag, and the report gives the VOT-LT tracking
precision, recall and F-score (maximised over the confidence threshold), the share of absent
frames reported absent and of present frames reported absent, the re-acquisition delay and the
success AUC on present frames (``siamrpnpp_ros/eval/longterm_metrics.py`` defines them), with
``pr_plot.png`` and ``success_plot.png``. Runs stored by short-term mode are not told apart from
long-term ones: give each mode its own ``--out`` when using ``--reuse``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from siamrpnpp_ros.eval.ope import (
    benchmark_manifest,
    load_benchmark,
    opencv_runner,
    run_long_term,
    run_ope,
    sequence_attributes,
    siamrpn_runner,
)
from siamrpnpp_ros.eval.report import long_term_table, markdown_table, write_long_term_report, write_report
from siamrpnpp_ros.eval.trackers import OPENCV_TRACKERS, opencv_availability
from siamrpnpp_ros.models.config import THIN_NAME_HELP, is_model_name
from siamrpnpp_ros.requirements_check import require_supported_versions
from siamrpnpp_ros.tracking.config import load_tracker_config

PROGRAM = "siamrpnpp-eval"


class UsageError(ValueError):
    """A command-line mistake, reported as one line."""


@dataclass(frozen=True)
class TrackerSpec:
    """A parsed ``--tracker``: an OpenCV baseline (``weights`` None) or SiamRPN++ weights."""

    label: str
    kind: str
    weights: Optional[str] = None
    config: Optional[str] = None


def parse_tracker_spec(text: str) -> TrackerSpec:
    """``csrt`` | ``kcf`` | ``mil`` | ``[LABEL=]MODEL:WEIGHTS[:CONFIG]`` (CONFIG: a parameters YAML
    whose ``tracker`` section overrides the model's preset, as the node's ``--params-file``).
    """
    label, sep, body = text.partition("=")
    if not sep:
        label, body = "", text
    body = body.strip()
    if body.lower() in OPENCV_TRACKERS:
        return TrackerSpec(label or body.upper(), body.lower())
    model, colon, rest = body.partition(":")
    weights, _, config = rest.partition(":")
    if not colon or not is_model_name(model) or not weights:
        raise UsageError(
            f"bad --tracker {text!r}: use csrt, kcf, mil or [LABEL=]MODEL:WEIGHTS[:CONFIG] "
            f"with MODEL one of {THIN_NAME_HELP}"
        )
    if not Path(weights).is_file():
        raise UsageError(f"--tracker {text!r}: weights file {weights} not found")
    if config and not Path(config).is_file():
        raise UsageError(f"--tracker {text!r}: config file {config} not found")
    return TrackerSpec(
        label or f"SiamRPN++ {model} ({Path(weights).parent.name or Path(weights).stem})",
        model,
        weights,
        config or None,
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``siamrpnpp-eval`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="One-pass evaluation (success AUC, precision@20px, normalised precision, FPS) "
        "of SiamRPN++ models and OpenCV baselines on an OTB-format benchmark; on long-term benchmarks "
        "(absent target) also VOT-LT precision/recall/F-score, absence reporting and re-acquisition delay.",
        epilog="Example: siamrpnpp-eval --benchmark bench --tracker alex:model.pth --tracker csrt --out report",
    )
    parser.add_argument("--benchmark", required=True, help="folder of sequence folders (img/ + groundtruth.txt)")
    parser.add_argument(
        "--tracker",
        action="append",
        required=True,
        metavar="SPEC",
        help="csrt | kcf | mil | [LABEL=]MODEL:WEIGHTS[:CONFIG] (CONFIG: a parameters YAML with a tracker "
        "section; repeat to compare)",
    )
    parser.add_argument("--out", required=True, help="report folder")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N for SiamRPN++ (default auto)")
    parser.add_argument("--sequences", nargs="+", default=None, help="only these sequence names")
    parser.add_argument("--max-sequences", type=int, default=None, help="only the first N sequences")
    parser.add_argument("--max-frames", type=int, default=None, help="only the first N frames of each sequence")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse stored results in OUT/results instead of re-running"
    )
    parser.add_argument("--title", default=None, help="report title (default: the benchmark folder name)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--long-term",
        action="store_true",
        help="long-term measures (absent target: nan ground truth); automatic for benchmarks built "
        "with the builder's --long-term",
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help="frame rate for delays in seconds (default: the benchmark's, from benchmark.json)",
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``siamrpnpp-eval`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    require_supported_versions()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return _run(args)
    except UsageError as exc:
        print(f"{PROGRAM}: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"{PROGRAM}: error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    specs = [parse_tracker_spec(t) for t in args.tracker]
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise UsageError(f"tracker labels must be unique, got {labels}; name them with LABEL=")
    sequences = load_benchmark(args.benchmark, args.sequences, args.max_sequences, args.max_frames)
    manifest = benchmark_manifest(args.benchmark)
    long_term = bool(args.long_term or manifest.get("long_term"))

    notes: list[str] = []
    runners = []
    for spec in specs:
        if spec.weights is None:
            availability = opencv_availability(spec.kind)
            if not availability.available:
                message = f"skipped {spec.label}: {availability.reason}"
                print(f"{PROGRAM}: {message}", file=sys.stderr)
                notes.append(message)
                continue
            if not availability.in_process:
                notes.append(f"{spec.label} ran with OpenCV contrib from {availability.contrib_dir} (child process)")
            runners.append(opencv_runner(spec.kind, availability, spec.label))
        else:
            if args.threads:
                import torch

                torch.set_num_threads(args.threads)
            config = None
            if spec.config:
                _, config = load_tracker_config(spec.config, spec.kind)
            runners.append(
                siamrpn_runner(
                    spec.label, spec.kind, spec.weights, device=args.device, config=config, long_term=long_term
                )
            )
    if not runners:
        raise RuntimeError("no tracker could run (see the messages above)")

    out = Path(args.out)
    if long_term:
        return _report_long_term(args, specs, runners, sequences, manifest, notes, out)
    summaries = run_ope(runners, sequences, out / "results", reuse=args.reuse, progress=not args.no_progress)
    title = args.title or Path(args.benchmark).resolve().name
    files = write_report(summaries.values(), out, title=title, notes=notes, attributes=sequence_attributes(manifest))
    print(markdown_table(summaries.values()))
    print(f"report: {files.markdown}")
    return 0


def _report_long_term(
    args: argparse.Namespace,
    specs: list[TrackerSpec],
    runners: list,
    sequences: list,
    manifest: dict,
    notes: list[str],
    out: Path,
) -> int:
    import numpy as np

    fps = args.fps or manifest.get("fps")
    if not any(np.isnan(sequence.groundtruth).any() for sequence in sequences):
        notes.append("no frame of these sequences has the target absent (no nan ground truth)")
    if any(spec.weights is not None for spec in specs):
        notes.append(
            "SiamRPN++ ran as the ROS node does by default: a TrackingSession with LostPolicy() around the "
            "long-term tracker; confidence = the session's, reported absent = status LOST"
        )
    if any(spec.weights is None for spec in specs):
        notes.append("OpenCV baselines: confidence 1 and present when update() succeeds, 0 and absent when it fails")
    summaries = run_long_term(runners, sequences, out / "results", reuse=args.reuse, progress=not args.no_progress)
    title = args.title or Path(args.benchmark).resolve().name
    files = write_long_term_report(summaries.values(), out, title=title, notes=notes, fps=fps)
    print(long_term_table(summaries.values(), fps))
    print(f"report: {files.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
