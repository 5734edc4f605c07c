"""The ROS-free status logic (TrackingSession) and the node's frame bookkeeping, without ROS."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from siamrpnpp_ros.ros.frames import FrameCache, ReceivedFrame, WorkSlot
from siamrpnpp_ros.tracking.session import (
    LostPolicy,
    SessionResult,
    TrackingSession,
    TrackStatus,
    align_long_term_thresholds,
    clip_selection,
)
from siamrpnpp_ros.tracking.tracker import TrackResult

BOX_TOLERANCE_PX = 0.01


@pytest.fixture(scope="module")
def alex_checkpoint(parity_checkpoint):
    return parity_checkpoint("alex")


class ScriptedTracker:
    """A tracker whose scores come from a script: the controlled score source for status tests.

    Every ``track`` moves the box one pixel right, so tests can tell which frame a box is from.
    """

    def __init__(self, scores: list[float]) -> None:
        self.scores = list(scores)
        self.box: list[float] | None = None
        self.resets = 0

    def init(self, frame: np.ndarray, box) -> None:
        x, y, w, h = (float(v) for v in box)
        if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
            raise ValueError("bad box")
        self.box = [x, y, w, h]

    def track(self, frame: np.ndarray) -> TrackResult:
        assert self.box is not None, "track before init"
        self.box[0] += 1.0
        x, y, w, h = self.box
        score = self.scores.pop(0)
        return TrackResult(box=(x, y, w, h), score=score, center=(x + w / 2, y + h / 2), presence=score)

    def reset(self) -> None:
        self.box = None
        self.resets += 1


FRAME = np.zeros((48, 64, 3), np.uint8)


def run_scores(scores: list[float], policy: LostPolicy) -> list[SessionResult]:
    session = TrackingSession(ScriptedTracker(scores), policy)
    session.start(FRAME, (10, 10, 20, 20), target_id=3)
    return [session.step(FRAME) for _ in scores]


# --------------------------------------------------------------------------- status logic


def test_start_reports_initializing_with_the_selection_itself():
    session = TrackingSession(ScriptedTracker([]))
    assert session.status == TrackStatus.IDLE and not session.is_active
    result = session.start(FRAME, (10, 12, 20, 22), target_id=9)
    assert result == SessionResult(TrackStatus.INITIALIZING, 9, (10.0, 12.0, 20.0, 22.0), 1.0, 1)
    assert result.center == (20.0, 23.0)
    assert session.is_active and session.target_id == 9


def test_lost_after_n_consecutive_low_frames_and_not_before():
    policy = LostPolicy(lost_score_threshold=0.5, lost_frames=3, recover_score_threshold=0.6)
    results = run_scores([0.9, 0.4, 0.4, 0.9, 0.4, 0.4, 0.4, 0.4], policy)
    statuses = [r.status for r in results]
    T, L = TrackStatus.TRACKING, TrackStatus.LOST
    # Two lows then a high reset the count; the next three lows in a row make it LOST.
    assert statuses == [T, T, T, T, T, T, L, L]
    assert [r.age for r in results] == list(range(2, 10))


def test_lost_box_is_the_last_confident_estimate():
    policy = LostPolicy(lost_score_threshold=0.5, lost_frames=2, recover_score_threshold=0.6)
    results = run_scores([0.9, 0.3, 0.3, 0.3], policy)
    confident = results[0].box  # moved one pixel: x = 11
    assert confident[0] == 11.0
    assert results[1].status == TrackStatus.TRACKING and results[1].box[0] == 12.0, "grace frame: tracker's box"
    assert [r.status for r in results[2:]] == [TrackStatus.LOST, TrackStatus.LOST]
    assert all(r.box == confident for r in results[2:])
    assert results[3].score == pytest.approx(0.3), "the score stays the tracker's, for the controller to see"


def test_recovery_needs_the_recover_threshold_not_just_the_lost_one():
    policy = LostPolicy(lost_score_threshold=0.5, lost_frames=1, recover_score_threshold=0.7)
    results = run_scores([0.2, 0.55, 0.69, 0.7, 0.45, 0.8], policy)
    T, L = TrackStatus.TRACKING, TrackStatus.LOST
    assert [r.status for r in results] == [L, L, L, T, L, T]
    assert results[3].box[0] == 14.0, "recovered: the tracker's box again"


def test_recovery_can_require_several_frames():
    policy = LostPolicy(lost_score_threshold=0.5, lost_frames=1, recover_score_threshold=0.6, recover_frames=3)
    results = run_scores([0.1, 0.9, 0.9, 0.1, 0.9, 0.9, 0.9], policy)
    T, L = TrackStatus.TRACKING, TrackStatus.LOST
    assert [r.status for r in results] == [L, L, L, L, L, L, T]


def test_score_exactly_at_the_threshold_counts_as_confident():
    policy = LostPolicy(lost_score_threshold=0.5, lost_frames=1, recover_score_threshold=0.5)
    results = run_scores([0.5, 0.49, 0.5], policy)
    assert [r.status for r in results] == [TrackStatus.TRACKING, TrackStatus.LOST, TrackStatus.TRACKING]


def test_cancel_goes_idle_once_and_resets_the_tracker():
    tracker = ScriptedTracker([0.9])
    session = TrackingSession(tracker)
    session.start(FRAME, (1, 1, 5, 5), target_id=4)
    session.step(FRAME)
    idle = session.cancel()
    assert idle == SessionResult(TrackStatus.IDLE, 4, (0.0, 0.0, 0.0, 0.0), 0.0, 0, presence=0.0)
    assert tracker.resets == 1 and not session.is_active
    assert session.cancel() is None, "nothing to cancel the second time"
    with pytest.raises(RuntimeError, match="without an active target"):
        session.step(FRAME)


def test_a_refused_box_keeps_the_active_target():
    tracker = ScriptedTracker([0.9, 0.9])
    session = TrackingSession(tracker)
    session.start(FRAME, (1, 1, 5, 5), target_id=4)
    session.step(FRAME)
    with pytest.raises(ValueError):
        session.start(FRAME, (float("nan"), 1, 5, 5), target_id=5)
    result = session.step(FRAME)
    assert (result.status, result.target_id, result.age) == (TrackStatus.TRACKING, 4, 3)


def test_restart_replaces_the_target_and_restarts_age():
    session = TrackingSession(ScriptedTracker([0.9, 0.9]))
    session.start(FRAME, (1, 1, 5, 5), target_id=1)
    session.step(FRAME)
    result = session.start(FRAME, (2, 2, 6, 6), target_id=2)
    assert (result.status, result.target_id, result.age) == (TrackStatus.INITIALIZING, 2, 1)
    assert session.step(FRAME).age == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lost_score_threshold": 1.5}, "lost_score_threshold must be in"),
        ({"lost_frames": 0}, "lost_frames must be an integer >= 1"),
        ({"recover_frames": 2.5}, "recover_frames must be an integer"),
        ({"lost_score_threshold": 0.7, "recover_score_threshold": 0.6}, "must be >= lost_score_threshold"),
    ],
)
def test_policy_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LostPolicy(**kwargs)


def test_clip_selection():
    assert clip_selection((10, 20, 30, 40), 100, 100) == ((10.0, 20.0, 30.0, 40.0), False)
    assert clip_selection((-10, 90, 30, 40), 100, 100) == ((0.0, 90.0, 20.0, 10.0), True)
    with pytest.raises(ValueError, match="wholly outside"):
        clip_selection((100, 10, 5, 5), 100, 100)
    with pytest.raises(ValueError, match="wholly outside"):
        clip_selection((-5, 10, 5, 5), 100, 100)
    with pytest.raises(ValueError, match="non-finite"):
        clip_selection((float("nan"), 10, 5, 5), 100, 100)
    with pytest.raises(ValueError, match="positive width and height"):
        clip_selection((1, 1, 0, 5), 100, 100)


# --------------------------------------------------------------------------- with the real tracker


@pytest.mark.slow
def test_real_tracker_session_follows_pysot(parity_frames, alex_checkpoint, parity_golden):
    from siamrpnpp_ros.tracking.factory import build_tracker

    frames, groundtruth = parity_frames
    golden = parity_golden("alex")
    session = TrackingSession(build_tracker("alex", alex_checkpoint, device="cpu"))
    first = session.start(frames[0], groundtruth[0], target_id=1)
    assert first.status == TrackStatus.INITIALIZING
    np.testing.assert_allclose(first.box, golden[0, 1:5], atol=BOX_TOLERANCE_PX)
    for index in range(1, 8):
        result = session.step(frames[index])
        # pysot's scores on these frames are all above 0.5: never LOST with the defaults.
        assert result.status == TrackStatus.TRACKING and result.age == index + 1
        np.testing.assert_allclose(result.box, golden[index, 1:5], atol=BOX_TOLERANCE_PX)
        assert result.score == pytest.approx(golden[index, 5], abs=1e-4)


@pytest.mark.slow
def test_real_long_term_tracker_searches_wide_while_lost(parity_frames, alex_checkpoint):
    """With thresholds above this untrained model's scores, the session goes LOST and the
    long-term tracker widens its search, publishing the last confident box meanwhile."""
    from siamrpnpp_ros.tracking.config import preset_for
    from siamrpnpp_ros.tracking.factory import build_tracker

    frames, groundtruth = parity_frames
    policy = LostPolicy(lost_score_threshold=0.9, lost_frames=1, recover_score_threshold=0.999)
    config = align_long_term_thresholds(preset_for("alex"), policy)
    assert (config.confidence_low, config.confidence_high) == (0.9, 0.999)
    tracker = build_tracker("alex", alex_checkpoint, device="cpu", config=config, long_term=True)
    session = TrackingSession(tracker, policy)
    session.start(frames[0], groundtruth[0], target_id=1)
    results = [session.step(frames[i]) for i in range(1, 8)]
    # pysot's scores: frames 1-4 above 0.97, frame 5 is 0.856 (the first below 0.9).
    assert [r.status for r in results[:4]] == [TrackStatus.TRACKING] * 4
    assert not any(r.search_wide for r in results[:5]), "narrow search until the first low score"
    assert all(r.status == TrackStatus.LOST for r in results[4:]), [round(r.score, 3) for r in results]
    assert all(r.search_wide for r in results[5:]), "after the low score the search is wide"
    assert all(r.box == results[3].box for r in results[4:]), "LOST publishes the last confident box (frame 4)"


# --------------------------------------------------------------------------- node bookkeeping


def make_frame(sequence: int, stamp_ns: int | None = None, nbytes: int = 100) -> ReceivedFrame:
    return ReceivedFrame(
        message=None,
        stamp_ns=stamp_ns if stamp_ns is not None else 1000 + sequence,
        sequence=sequence,
        received=time.monotonic(),
        nbytes=nbytes,
        decode=lambda: None,
    )


def test_frame_cache_is_bounded_in_count_and_bytes():
    cache = FrameCache(max_frames=5, max_bytes=350)
    for sequence in range(1000):
        cache.add(make_frame(sequence))
    assert len(cache) == 3 and cache.nbytes == 300, "350 bytes hold three 100-byte frames"
    assert [f.sequence for f in cache.after(0)] == [997, 998, 999]
    assert cache.newest().sequence == 999
    assert cache.find(1000 + 998).sequence == 998
    assert cache.find(1000 + 5) is None, "evicted"
    big = FrameCache(max_frames=5, max_bytes=10)
    big.add(make_frame(0, nbytes=50))
    assert len(big) == 1, "the newest frame is kept even when it alone exceeds the byte limit"
    count_bound = FrameCache(max_frames=4, max_bytes=10**9)
    for sequence in range(10):
        count_bound.add(make_frame(sequence))
    assert [f.sequence for f in count_bound.after(-1)] == [6, 7, 8, 9]


def test_work_slot_keeps_only_the_newest_frame_and_all_commands():
    slot = WorkSlot()
    assert slot.put_frame(make_frame(0)) is None
    replaced = slot.put_frame(make_frame(1))
    assert replaced.sequence == 0
    slot.put_command("select")
    slot.put_command("cancel")
    commands, frame = slot.take(timeout=0)
    assert commands == ["select", "cancel"] and frame.sequence == 1
    assert slot.take(timeout=0) == ([], None)


def test_work_slot_wakes_a_waiting_worker_and_closes():
    slot = WorkSlot()
    taken = []
    worker = threading.Thread(target=lambda: taken.append(slot.take(timeout=10)))
    worker.start()
    slot.put_frame(make_frame(7))
    worker.join(5)
    assert taken and taken[0][1].sequence == 7
    waiting = threading.Thread(target=lambda: taken.append(slot.take(timeout=10)))
    waiting.start()
    slot.close()
    waiting.join(5)
    assert not waiting.is_alive() and taken[-1] == ([], None)
