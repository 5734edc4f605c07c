"""Tracker evaluation (ROS-free): OTB-style one-pass evaluation, reports, a benchmark builder.

    from siamrpnpp_ros.eval import load_benchmark, siamrpn_runner, run_ope, write_report
    sequences = load_benchmark("bench/")
    summaries = run_ope([siamrpn_runner("alex", "alex", "model.pth")], sequences, "out/results")
    write_report(summaries.values(), "out/")

Long-term benchmarks (the target is absent for a while; ``builder --long-term``) are scored
with ``run_long_term`` and reported with ``write_long_term_report``.

Command lines: ``siamrpnpp-eval`` (``python -m siamrpnpp_ros.evaluate``) and the benchmark
builder ``python -m siamrpnpp_ros.eval.builder``. Nothing here imports ``training``; the
experiments that train and then evaluate (the shift-range ablation, the default model's
recipe) live in ``training`` and import this package.
"""

from .longterm_metrics import LongTermSequenceScore, LongTermSummary, long_term_score
from .metrics import (
    NORM_PRECISION_THRESHOLDS,
    PRECISION_THRESHOLDS,
    SUCCESS_THRESHOLDS,
    SequenceScore,
    TrackerSummary,
    area_under_curve,
    center_errors,
    normalized_center_errors,
    normalized_precision_curve,
    overlap_ratio,
    precision_curve,
    score_sequence,
    success_curve,
)
from .ope import (
    BenchmarkSequence,
    FrameTrackerRunner,
    RunResult,
    evaluate_model,
    load_benchmark,
    load_sequence,
    opencv_runner,
    run_long_term,
    run_ope,
    siamrpn_runner,
    track_sequence,
)
from .report import ReportFiles, long_term_table, markdown_table, write_long_term_report, write_report
from .trackers import (
    OPENCV_TRACKERS,
    OpenCVFrameTracker,
    PresenceReporter,
    SessionFrameTracker,
    SiamRPNFrameTracker,
    opencv_availability,
)

__all__ = [
    "NORM_PRECISION_THRESHOLDS",
    "OPENCV_TRACKERS",
    "PRECISION_THRESHOLDS",
    "SUCCESS_THRESHOLDS",
    "BenchmarkSequence",
    "FrameTrackerRunner",
    "LongTermSequenceScore",
    "LongTermSummary",
    "OpenCVFrameTracker",
    "PresenceReporter",
    "ReportFiles",
    "RunResult",
    "SequenceScore",
    "SessionFrameTracker",
    "SiamRPNFrameTracker",
    "TrackerSummary",
    "area_under_curve",
    "center_errors",
    "evaluate_model",
    "load_benchmark",
    "load_sequence",
    "long_term_score",
    "long_term_table",
    "markdown_table",
    "normalized_center_errors",
    "normalized_precision_curve",
    "opencv_availability",
    "opencv_runner",
    "overlap_ratio",
    "precision_curve",
    "run_long_term",
    "run_ope",
    "score_sequence",
    "siamrpn_runner",
    "success_curve",
    "track_sequence",
    "write_long_term_report",
    "write_report",
]
