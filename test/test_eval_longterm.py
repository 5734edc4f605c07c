"""Long-term benchmark and measures: absences with nan ground truth, VOT-LT precision/recall/F,
absence reporting, re-acquisition delay, presence storage, and the CLI end to end."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from siamrpnpp_ros import evaluate
from siamrpnpp_ros.eval import (
    RunResult,
    SessionFrameTracker,
    load_benchmark,
    long_term_score,
    opencv_availability,
    opencv_runner,
    run_long_term,
)
from siamrpnpp_ros.eval.builder import main as builder_main
from siamrpnpp_ros.eval.longterm_builder import (
    ABSENCE_KINDS,
    LongTermConfig,
    absent_runs,
    build_long_term_benchmark,
    render_long_term_sequence,
)
from siamrpnpp_ros.eval.longterm_metrics import LongTermSummary, reacquisition_delays
from siamrpnpp_ros.eval.ope import load_result, save_result
from siamrpnpp_ros.material.photos import find_photos

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "siamrpnpp_ros" / "data" / "default_alex-w0.25.pth"
# Toy sequences: 10 fps, so an absence of 1-3 s is 10-30 frames.
TOY = {"frames": 70, "fps": 10.0, "width": 160, "height": 120, "image_format": "png", "attributes": ()}


# ------------------------------------------------------------------ builder
@pytest.mark.parametrize("kind", ABSENCE_KINDS)
def test_absences_have_nan_groundtruth_exactly_where_the_target_is_invisible(kind):
    config = LongTermConfig(sequences=1, seed=4, absence_kinds=(kind,), absences=(1, 1), lookalike_prob=1.0, **TOY)
    pool = find_photos()
    frames, groundtruth, visible, plan = render_long_term_sequence(pool, config, 0)
    bare, bare_gt, _, bare_plan = render_long_term_sequence(pool, config, 0, draw_target=False)
    assert np.array_equal(groundtruth, bare_gt, equal_nan=True) and bare_plan == plan

    absent = np.isnan(groundtruth).all(axis=1)
    assert np.array_equal(absent, visible < config.visibility_threshold)
    assert np.isfinite(groundtruth[~absent]).all() and not absent[0]
    [absence] = plan.absences
    assert absence.kind == kind and absence.lookalike
    assert absent_runs(absent) == [(absence.start, absence.end)]
    assert 10 <= absence.frames == absence.end - absence.start + 1 <= 30  # 1-3 s at 10 fps

    # The target's own pixels: where the frames with and without it differ.
    area = groundtruth[0, 2] * groundtruth[0, 3]  # whole and unscaled in frame 0
    for t, (frame, without) in enumerate(zip(frames, bare, strict=True)):
        changed = np.abs(frame.astype(np.int16) - without.astype(np.int16)).max(axis=2) > 12
        if absent[t]:
            assert changed.sum() <= config.visibility_threshold * area, t
            if visible[t] == 0:
                assert not changed.any(), t
        else:
            assert changed.sum() > 0.02 * area, t
            ys, xs = np.nonzero(changed)
            x, y, w, h = groundtruth[t]
            assert xs.min() >= x - 2 and xs.max() <= x + w + 1 and ys.min() >= y - 2 and ys.max() <= y + h + 1, t
    assert bool(plan.extra_photos) == (kind == "occluder")  # the occluder's photo


@pytest.mark.slow
def test_long_term_builder_is_reproducible_and_writes_a_manifest(tmp_path):
    config = LongTermConfig(sequences=2, seed=7, lookalike_prob=0.5, **{**TOY, "frames": 100})
    pool = find_photos()
    first = build_long_term_benchmark(tmp_path / "a", config, pool)
    build_long_term_benchmark(tmp_path / "b", config, pool)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 2 * (100 + 2) + 1
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert first["long_term"] and first["fps"] == 10.0 and first["visibility_threshold"] == 0.1
    for entry in first["sequences"]:
        gt = np.loadtxt(tmp_path / "a" / entry["name"] / "groundtruth.txt", delimiter=",")
        runs = absent_runs(np.isnan(gt).all(axis=1))
        assert runs == [(a["start"], a["end"]) for a in entry["absences"]] and 1 <= len(runs) <= 2
        assert all(a["kind"] in ABSENCE_KINDS for a in entry["absences"])
    assert first["totals"]["absent_frames"] == sum(a["frames"] for s in first["sequences"] for a in s["absences"])
    other = build_long_term_benchmark(tmp_path / "c", LongTermConfig(sequences=1, seed=8, **TOY), pool)
    assert other["sequences"][0] != first["sequences"][0]
    with pytest.raises(ValueError, match="cannot hold one absence"):
        LongTermConfig(frames=40, fps=30.0)


# ------------------------------------------------------------------ measures
# 10 frames, the target absent on frames 4-6 (it returns on frame 7).
GT = np.array([[10, 10, 20, 20]] * 10, dtype=float)
GT[4:7] = np.nan
PRESENT = ~np.isnan(GT).all(axis=1)
STALE = np.where(PRESENT[:, None], GT, [[10, 10, 20, 20]])  # right box while present, a guess while absent


def _summary(*scores) -> LongTermSummary:
    return LongTermSummary("t", tuple(scores))


def test_perfect_long_term_tracker():
    summary = _summary(long_term_score("s", GT, STALE, PRESENT.astype(float), PRESENT))
    assert summary.f_score == 1.0 and summary.precision == 1.0 and summary.recall == 1.0
    assert summary.threshold == 1.0
    assert summary.absent_reported_absent == 1.0 and summary.present_reported_absent == 0.0
    assert summary.delays == [(0, True)] and summary.mean_delay == 0.0 and summary.not_reacquired == 0
    assert summary.auc == pytest.approx(20 / 21)  # success AUC over the 7 present frames
    assert summary.frames == 9 and summary.absent_frames == 3


def test_tracker_that_never_reports_absence():
    summary = _summary(long_term_score("s", GT, STALE))  # no confidence/presence: 1 and present everywhere
    # Frames 1..9: 6 present (IoU 1), 3 absent (IoU 0): precision 6/9, recall 1.
    assert summary.precision == pytest.approx(6 / 9) and summary.recall == 1.0
    assert summary.f_score == pytest.approx(2 * (6 / 9) / (6 / 9 + 1))
    assert summary.absent_reported_absent == 0.0 and summary.present_reported_absent == 0.0
    assert summary.mean_delay == 0.0


def test_tracker_that_reports_absence_everywhere():
    nothing = np.zeros_like(GT)
    summary = _summary(long_term_score("s", GT, nothing, np.zeros(10), np.zeros(10, dtype=bool)))
    assert summary.f_score == 0.0 and summary.precision == 0.0 and summary.recall == 0.0
    assert summary.absent_reported_absent == 1.0 and summary.present_reported_absent == 1.0
    # Never re-acquired: the remaining length, frames 7..9.
    assert summary.delays == [(3, False)] and summary.not_reacquired == 1 and summary.mean_delay == 3.0


def test_confidence_threshold_and_reacquisition_delay():
    # Confident (0.9) on the target, unsure (0.3) on a wrong box while it is absent and on
    # the first frame back, where it also reports absence: the best threshold is 0.9.
    boxes = STALE.copy()
    boxes[4:8] = [100, 100, 20, 20]
    confidence = np.where(PRESENT, 0.9, 0.3)
    confidence[7] = 0.3
    reported = PRESENT.copy()
    reported[7] = False
    summary = _summary(long_term_score("s", GT, boxes, confidence, reported))
    assert summary.threshold == 0.9 and summary.precision == 1.0
    assert summary.recall == pytest.approx(5 / 6)  # frame 7 is missed
    assert summary.delays == [(1, True)]
    assert summary.present_reported_absent == pytest.approx(1 / 6)  # of the present frames 1..9
    # Precision is undefined where no frame reaches the threshold: such sequences are left out
    # of the precision (but count 0 recall).
    quiet = long_term_score("quiet", GT, STALE, np.full(10, 0.1), PRESENT)
    both = _summary(long_term_score("s", GT, STALE, PRESENT.astype(float), PRESENT), quiet)
    at_one = list(both.thresholds).index(1.0)
    assert both.precision_curve[at_one] == 1.0 and both.recall_curve[at_one] == pytest.approx(0.5)
    assert both.threshold == pytest.approx(0.1)  # there: precision (1 + 6/9) / 2, recall 1
    assert both.f_score == pytest.approx(2 * (5 / 6) / (5 / 6 + 1))


def test_reacquisition_delay_definition():
    present = np.array([1, 0, 0, 1, 1, 1, 0, 1, 1], dtype=bool)
    iou = np.array([1, 0, 0, 0, 0.5, 0.5, 0, 0, 0])
    reported = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    # First return at frame 3: present with IoU > 0 at frame 4 -> 1. Second at 7: never -> 9 - 7.
    assert reacquisition_delays(present, reported, iou) == [(1, True), (2, False)]
    with pytest.raises(ValueError, match="confidence and presence need 10"):
        long_term_score("s", GT, STALE, np.ones(9))


# ------------------------------------------------------------------ runners and storage
@dataclass
class _Outcome:
    box: tuple
    score: float
    presence: float
    search_wide: bool = False
    lost: bool = False


class _ScriptedTracker:
    """Answers a fixed box with scripted scores (what a TrackingSession needs)."""

    def __init__(self, scores):
        self.scores = list(scores)

    def init(self, frame, box):
        self.box = tuple(box)

    def track(self, frame):
        score = self.scores.pop(0)
        return _Outcome(self.box, score, score)

    def reset(self):
        pass


def test_session_frame_tracker_reports_lost_as_absent():
    frame = np.zeros((48, 64, 3), np.uint8)
    adapter = SessionFrameTracker(_ScriptedTracker([0.9] + [0.1] * 5 + [0.95]))
    adapter.init(frame, (10, 10, 8, 8))
    assert adapter.presence() == (1.0, True)
    reports = []
    for _ in range(7):
        adapter.update(frame)
        reports.append(adapter.presence())
    assert [present for _, present in reports] == [True] * 5 + [False, True]  # LOST after 5 low frames
    assert reports[0][0] == pytest.approx(0.9) and reports[5][0] == pytest.approx(0.1)


def test_presence_is_stored_and_old_results_still_load(tmp_path):
    boxes = np.tile([[1.0, 2.0, 3.0, 4.0]], (5, 1))
    result = RunResult(boxes, np.full(5, 0.01), np.array([1, 0.5, 0.2, 0, 1]), np.array([1, 1, 0, 0, 1], bool))
    save_result(tmp_path, "trk", "s", result)
    assert (tmp_path / "trk" / "s_confidence.txt").is_file() and (tmp_path / "trk" / "s_present.txt").is_file()
    loaded = load_result(tmp_path, "trk", "s", 5, need_presence=True)
    assert np.allclose(loaded.confidence, result.confidence) and np.array_equal(loaded.present, result.present)
    save_result(tmp_path, "old", "s", RunResult(boxes, np.full(5, 0.01)))  # as before presence existed
    assert not (tmp_path / "old" / "s_present.txt").exists()
    old = load_result(tmp_path, "old", "s", 5)
    assert old.confidence is None and np.allclose(old.boxes, boxes)
    assert load_result(tmp_path, "old", "s", 5, need_presence=True) is None  # the long-term measures re-run it


@pytest.fixture(scope="module")
def toy_long_term(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lt_bench")
    assert (
        builder_main(
            [
                "--long-term",
                "--out",
                str(out),
                "--sequences",
                "2",
                "--frames",
                "60",
                "--fps",
                "10",
                "--size",
                "128x96",
                "--format",
                "png",
                "--seed",
                "3",
                "--no-progress",
            ]
        )
        == 0
    )
    return out


@pytest.mark.slow
def test_opencv_baseline_reports_its_failure_flag(toy_long_term):
    sequence = load_benchmark(toy_long_term, max_sequences=1)[0]
    mil = opencv_availability("mil")
    result = opencv_runner("mil", mil).run(sequence)
    assert result.present is not None and result.present.shape == (len(sequence),) and result.present[0]
    assert np.array_equal(result.confidence, result.present.astype(float))
    summaries = run_long_term([opencv_runner("mil", mil, "MIL")], [sequence])
    assert 0.0 <= summaries["MIL"].f_score <= 1.0 and summaries["MIL"].returns >= 1


@pytest.mark.slow
def test_evaluate_cli_long_term_end_to_end(toy_long_term, tmp_path, capsys):
    manifest = json.loads((toy_long_term / "benchmark.json").read_text())
    assert manifest["long_term"] and manifest["fps"] == 10.0
    csrt = opencv_availability("csrt")
    trackers = ["--tracker", f"ours=alex-w0.25:{DEFAULT_WEIGHTS}", "--tracker", "mil"]
    if csrt.available:
        trackers += ["--tracker", "csrt"]
    out = tmp_path / "report"
    # Long-term mode is picked up from benchmark.json: no --long-term needed.
    code = evaluate.main([
        "--benchmark", str(toy_long_term),
        *trackers,
        "--out", str(out),
        "--device", "cpu", "--threads", "1", "--no-progress",
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "| F-score |" in captured.out and "| ours |" in captured.out and "| MIL |" in captured.out
    report = (out / "report.md").read_text()
    assert "re-acq. delay" in report and "at 10 fps" in report and "TrackingSession" in report
    assert (out / "pr_plot.png").read_bytes()[:8] == PNG_SIGNATURE
    assert (out / "success_plot.png").read_bytes()[:8] == PNG_SIGNATURE
    results = json.loads((out / "results.json").read_text())
    for entry in results["trackers"]:
        assert 0.0 <= entry["f_score"] <= 1.0 and entry["returns"] >= 2 and entry["absent_frames"] > 0
    for label in ("ours", "MIL"):
        present = np.loadtxt(out / "results" / label / "lt001_present.txt")
        assert present.shape == (60,) and present[0] == 1
    # Stored runs are reused and give the same numbers.
    assert (
        evaluate.main(
            ["--benchmark", str(toy_long_term), "--tracker", "mil", "--out", str(out), "--reuse", "--no-progress"]
        )
        == 0
    )
    again = json.loads((out / "results.json").read_text())["trackers"][0]
    assert math.isclose(again["f_score"], next(t for t in results["trackers"] if t["tracker"] == "MIL")["f_score"])
    if not csrt.available:
        pytest.skip(f"CSRT part skipped: {csrt.reason}")
    assert "| CSRT |" in captured.out
    assert np.loadtxt(out / "results" / "CSRT" / "lt000_confidence.txt").shape == (60,)


def test_builder_cli_long_term_options(tmp_path, capsys):
    assert builder_main(["--long-term", "--out", str(tmp_path), "--attributes", "occlusion", "--no-progress"]) == 2
    assert "--long-term supports the attributes" in capsys.readouterr().err
    assert builder_main(["--long-term", "--out", str(tmp_path), "--frames", "30", "--no-progress"]) == 2
    assert "cannot hold one absence" in capsys.readouterr().err
