"""The lost search's time budget (issue #29): budget -> tiles per frame, and the round robin.

The arithmetic of ``LostSearchBudget`` is checked on its own; the rest runs the bundled model
on the parity video, with the target painted out so that the long-term tracker loses it. Time
is a fake clock that advances a fixed cost per network crop (``SlowClock``), so the tests do
not depend on this machine's speed or load: a budget of ``n`` crops' cost must give ``n``
crops, and the tiles of the successive lost frames must cover the whole image.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from siamrpnpp_ros.benchmark.lost import _target_painted_out
from siamrpnpp_ros.tracking import build_tracker
from siamrpnpp_ros.tracking.longterm import (
    AUTO_MARGIN_FRACTION,
    AUTO_MARGIN_MS,
    LongTermTracker,
    LostSearchBudget,
    parse_lost_search_budget,
)
from siamrpnpp_ros.tracking.multi import MultiTargetTracker
from siamrpnpp_ros.tracking.session import LostPolicy, align_long_term_thresholds

CROP_COST_S = 0.010  # the fake clock's cost of one network crop


class SlowClock:
    """A fake monotonic clock: every network crop the trackers run costs ``CROP_COST_S``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.crops_per_call: list[int] = []

    def __call__(self) -> float:
        return self.now

    def charge(self, crops: int) -> None:
        self.crops_per_call.append(crops)
        self.now += crops * CROP_COST_S


@pytest.fixture
def slow_clock(monkeypatch) -> SlowClock:
    clock = SlowClock()
    run_model = LongTermTracker._run_model

    def charged(self, search_crop, kernels=None):
        clock.charge(int(search_crop.shape[0]))
        return run_model(self, search_crop, kernels)

    monkeypatch.setattr(LongTermTracker, "_run_model", charged)
    return clock


@pytest.fixture(scope="module")
def lost_sequence(parity_frames):
    """(init frame, init box, frames to track: 3 with the target, then 30 with it painted out)."""
    frames, groundtruth = parity_frames
    box = tuple(float(v) for v in groundtruth[0])
    painted = [_target_painted_out(frame, tuple(groundtruth[i])) for i, frame in enumerate(frames[4:34], start=4)]
    return frames[0], box, frames[1:4] + painted


def _targets(budget: LostSearchBudget | None, clock: SlowClock) -> MultiTargetTracker:
    tracker = build_tracker("alex-w0.25", None, device="cpu", long_term=True)
    policy = LostPolicy()
    tracker.config = align_long_term_thresholds(tracker.config, policy)
    return MultiTargetTracker(tracker, policy, max_targets=1, lost_budget=budget, clock=clock)


def _run(targets: MultiTargetTracker, sequence) -> list[tuple[bool, tuple[tuple[float, float], ...]]]:
    """Track ``sequence``; per frame, whether it was a lost search and the centres it searched
    (the held state's for a normal search, else the tiles').
    """
    init_frame, box, frames = sequence
    targets.add(init_frame, box, target_id=1, frame_index=0)
    tracker = targets.get(1).tracker
    searched = []
    prepare = tracker.prepare_search

    def recorded(frame):
        request = prepare(frame)
        searched.append((request.search_wide, request.centers))
        return request

    tracker.prepare_search = recorded  # this target's copy only
    for index, frame in enumerate(frames, start=1):
        targets.step(frame, index)
        assert targets.last_step_crops == len(searched[-1][1])
    return searched


def _first_loss(searched) -> list[tuple[tuple[float, float], ...]]:
    """The tiles of the lost frames in a row from the first lost frame on."""
    start = next(i for i, (lost, _) in enumerate(searched) if lost)
    run = []
    for lost, centres in searched[start:]:
        if not lost:
            break
        run.append(centres)
    return run


# ---------------------------------------------------------------------------- the arithmetic
def test_budget_spellings_and_refusals():
    assert parse_lost_search_budget("auto") == "auto" and parse_lost_search_budget(" OFF ") == "off"
    assert parse_lost_search_budget(False) == "off"  # what YAML (a ROS command line) makes of off
    assert parse_lost_search_budget("25") == 25.0 and parse_lost_search_budget(12) == 12.0
    for bad in ("fast", "0", -5, 0.0, math.nan, math.inf, True, None):
        with pytest.raises(ValueError, match="lost_search_budget"):
            parse_lost_search_budget(bad)
    with pytest.raises(ValueError):
        LostSearchBudget("-1")


def test_auto_follows_the_measured_frame_period_and_tiles_follow_the_crop_cost():
    budget = LostSearchBudget("auto")
    assert budget.seconds() is None and budget.tiles_per_lost_target(0, 1) is None  # no period yet
    for k in range(20):
        budget.observe_frame(k / 30.0)
    budget.observe_frame(100.0)  # a paused stream is no period sample
    assert budget.frame_period_s == pytest.approx(1 / 30.0)
    expected = (1 / 30.0) * (1 - AUTO_MARGIN_FRACTION) - AUTO_MARGIN_MS / 1e3
    assert budget.seconds() == pytest.approx(expected)
    assert budget.tiles_per_lost_target(0, 1) == 1  # no cost measured yet: the safe minimum
    budget.observe_step(0.008, 1)
    assert budget.tiles_per_lost_target(0, 1) == math.floor(expected / 0.008)
    # Two lost targets and one tracked share the crops; each lost target keeps at least one.
    assert budget.tiles_per_lost_target(1, 2) == max(1, (math.floor(expected / 0.008) - 1) // 2)
    assert budget.tiles_per_lost_target(10, 1) == 1

    slow, fast = LostSearchBudget("auto"), LostSearchBudget("auto")
    for k in range(5):
        slow.observe_frame(k / 10.0)
        fast.observe_frame(k / 60.0)
    for b in (slow, fast):
        b.observe_step(0.005, 1)
    assert slow.tiles_per_lost_target(0, 1) > fast.tiles_per_lost_target(0, 1) >= 1

    assert LostSearchBudget("off").seconds() is None
    explicit = LostSearchBudget(25.0)
    explicit.observe_step(0.010, 1)
    assert explicit.seconds() == pytest.approx(0.025) and explicit.tiles_per_lost_target(0, 1) == 2


# ---------------------------------------------------------------------------- real tracker
@pytest.mark.parametrize("budget_ms, crops", [(15.0, 1), (25.0, 2)])
def test_small_budget_searches_fewer_tiles_and_covers_every_tile(slow_clock, lost_sequence, budget_ms, crops):
    full = _first_loss(_run(_targets(None, slow_clock), lost_sequence))
    assert full and all(len(centres) == 4 for centres in full), "without a budget: lost_tiles_per_frame tiles"

    slow_clock.crops_per_call.clear()
    budget = LostSearchBudget(budget_ms)  # ``crops`` crops at the fake clock's cost
    targets = _targets(budget, slow_clock)
    searched = _run(targets, lost_sequence)
    # The budget bounds every frame's work: at most ``crops`` crops of the fake clock's cost.
    assert max(slow_clock.crops_per_call) <= crops
    assert budget.crop_cost_s == pytest.approx(CROP_COST_S)

    run = _first_loss(searched)
    tiles = targets.get(1).tracker._tiles  # the tiles of this loss, nearest the held box first
    assert len(tiles) > crops, "the image needs more tiles than the budget allows per frame"
    frames_needed = math.ceil(len(tiles) / crops)
    assert len(run) >= 2 * frames_needed, "the target must stay lost long enough to visit every tile twice"
    assert all(len(centres) == crops for centres in run)
    # Fewer tiles per frame still cover the image: the one around the held box first, and
    # every tile within the loss (the colour priority decides the order, and a tile left
    # unsearched gains priority with every frame).
    flat = [centre for centres in run for centre in centres]
    assert flat[0] == tiles[0]
    assert set(flat) == set(tiles)
    assert all(len(set(centres)) == len(centres) for centres in run), "a frame's tiles are distinct"


def test_the_first_tile_is_the_one_around_the_last_box(slow_clock, lost_sequence):
    targets = _targets(LostSearchBudget(15.0), slow_clock)  # one crop per frame
    run = _first_loss(_run(targets, lost_sequence))
    tracker = targets.get(1).tracker
    assert tracker.is_lost  # still the same loss: the state is held where the target was lost
    held = tracker.center
    tiles = tracker._tiles
    distances = [np.hypot(x - held[0], y - held[1]) for x, y in tiles]
    assert distances == sorted(distances)
    assert run[0] == (tiles[0],)


def test_tracking_frames_are_untouched_by_the_budget(slow_clock, parity_frames):
    """While tracking, a budget changes nothing: one crop per frame and the very same boxes."""
    frames, groundtruth = parity_frames
    boxes = []
    for budget in (None, LostSearchBudget(1.0)):  # the tightest budget there is
        targets = _targets(budget, slow_clock)
        targets.add(frames[0], tuple(groundtruth[0]), target_id=1, frame_index=0)
        run = []
        for index in range(1, 12):
            (result,) = targets.step(frames[index], index)
            assert targets.last_step_crops == 1 and not result.search_wide
            run.append(result.box)
        boxes.append(run)
    assert boxes[0] == boxes[1]


def test_phase_breakdown_splits_a_lost_step(parity_video, parity_frames):
    """``python -m siamrpnpp_ros.benchmark.lost`` (docs/performance.md, A lost frame) runs and adds up."""
    from siamrpnpp_ros.benchmark.lost import PHASES, format_breakdown, phase_breakdown

    _, groundtruth = parity_frames
    report = phase_breakdown(str(parity_video), tuple(float(v) for v in groundtruth[0]), 12, (2,), threads=1)
    assert "lost, 2 tiles" in report
    lost = report["lost, 2 tiles"]
    assert lost["frames"] >= 1 and lost["network"] > 0 and lost["crops"] > 0
    assert set(PHASES) <= set(lost)
    assert "| step / tracking |" in format_breakdown(report) or "tracking" not in report


def test_diagnostics_split_the_step_into_lost_and_tracking_frames():
    """/diagnostics report a lost frame's step apart from a tracking frame's (what latency_bench reads)."""
    pytest.importorskip("diagnostic_msgs", reason="the ROS messages are not installed")
    from siamrpnpp_ros.ros.diagnostics import NodeStats, tracker_status

    stats = NodeStats()
    before = stats.snapshot()
    for step, wide in ((0.010, 0), (0.012, 0), (0.040, 1), (0.050, 1)):
        stats.frame_processed(step + 0.002, step=step, wide_searches=wide)
    status = tracker_status(
        name="t", hardware_id="cpu", previous=before, current=stats.snapshot(), tracking_status="LOST",
        target_id=1, extra={}, worker_alive=True,
    )  # fmt: skip
    values = {kv.key: kv.value for kv in status.values}
    assert values["lost_frames_in_period"] == "2"
    assert values["lost_step_mean_ms"] == "45.0" and values["tracking_step_mean_ms"] == "11.0"
    assert values["tracker_step_mean_ms"] == "28.0"
