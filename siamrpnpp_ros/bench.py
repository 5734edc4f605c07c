r"""``siamrpnpp-bench``: per-frame ``track()`` speed of the SiamRPN++ tracker, per model and mode.

    python -m siamrpnpp_ros.bench --models r50,mobilev2,alex --device cpu --frames 50
    python -m siamrpnpp_ros.bench --models mobilev2 --weights mobilev2=model.pth \\
        --video seq/ --modes reference,exact,fused,onnxruntime,fast --accuracy --json out.json
    python -m siamrpnpp_ros.bench --targets 1,2,4,8     # the bundled model, N targets at once
    python -m siamrpnpp_ros.bench --lost-tiles 1,2,4    # a lost frame's cost against a normal one

The command line only; the modes, what is measured and how are described in
``siamrpnpp_ros/benchmark/speed.py``, the table and chart in ``benchmark/report.py``;
``--targets`` (the marginal cost of each extra target) in ``benchmark/targets.py``,
``--lost-tiles`` (a lost frame's cost) in ``benchmark/lost.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from siamrpnpp_ros.benchmark.lost import format_lost_table, run_lost
from siamrpnpp_ros.benchmark.report import format_table, save_plot
from siamrpnpp_ros.benchmark.speed import DEFAULT_MODES, MODES, PROGRAM, run_all, run_one
from siamrpnpp_ros.benchmark.targets import format_targets_table, run_targets
from siamrpnpp_ros.requirements_check import require_supported_versions
from siamrpnpp_ros.tracking.factory import DEFAULT_MODEL


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``siamrpnpp-bench``."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Benchmark SiamRPN++ track() per model and mode.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="modes: " + ", ".join(MODES),
    )
    parser.add_argument(
        "--models", help="comma-separated (default all three; with --targets or --lost-tiles the bundled model)"
    )
    parser.add_argument(
        "--modes",
        help=f"comma-separated, see above (default {','.join(DEFAULT_MODES)}; with --targets or --lost-tiles: exact)",
    )
    parser.add_argument(
        "--targets",
        metavar="N,N,...",
        help="multi-target mode: time one step of N targets at once for each N (e.g. 1,2,4,8), "
        "side by side in this process, and the cost of each extra target",
    )
    parser.add_argument(
        "--lost-tiles",
        metavar="K,K,...",
        help="lost-target mode: time the long-term tracker's lost step with K tiles per frame for each K, "
        "side by side with a normal step (with the bundled model unless --models)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--frames", type=int, default=30, help="timed track() calls per run (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed track() calls first (default 3)")
    parser.add_argument("--weights", help="PATH | name=PATH,... | DIR with <name>.pth (default: seeded random)")
    parser.add_argument("--video", help="video file or image folder with groundtruth.txt (default: synthetic 640x480)")
    parser.add_argument("--threads", type=int, help="torch/ORT intra-op threads (default: torch's, = cores)")
    parser.add_argument(
        "--fast-size", help="search size of the fast modes: N or name=N,... (default r50/mobilev2 191, alex 255)"
    )
    parser.add_argument("--accuracy", action="store_true", help="IoU of each mode against the exact mode")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    parser.add_argument("--json", help="write all results (incl. per-frame boxes) to this JSON file")
    parser.add_argument("--plot", help="write a bar chart of the split to this PNG")
    parser.add_argument("--in-process", action="store_true", help="run all modes in this process (no isolation)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-run lines on stderr")
    parser.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--teacher", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints the table to stdout. Exit code 0, 1 on errors, 2 on usage errors."""
    require_supported_versions()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.frames < 1 or args.warmup < 0:
        parser.error("--frames must be >= 1 and --warmup >= 0")

    try:
        side_by_side = None
        if args.lost_tiles:
            side_by_side = (run_lost, format_lost_table)
        elif args.targets:
            side_by_side = (run_targets, format_targets_table)
        if side_by_side is not None:
            # The bundled model in its exact mode unless told otherwise, all counts in this process.
            args.models = args.models or DEFAULT_MODEL
            args.modes = args.modes or "exact"
            run, format_report = side_by_side
            report = run(args)
            print(format_report(report), flush=True)
            if args.json:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")
            return 0
        args.models = args.models or "r50,mobilev2,alex"
        args.modes = args.modes or ",".join(DEFAULT_MODES)
        if args._child:
            record = run_one(args)
            print(json.dumps(record))
            return 0
        report = run_all(args)
    except (ValueError, OSError, RuntimeError, ImportError) as exc:
        print(f"{PROGRAM}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(format_table(report), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")
    if args.plot:
        save_plot(report, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
