"""Several targets in one tracker node (max_targets > 1), in its own process, over real DDS.

The node runs the alex parity checkpoint on the CPU, like test_node_ros.py, whose client
helpers this test reuses. Frames are published one at a time, each after the node answered
the previous one, so no frame is dropped and every target's boxes must equal what the
single-target tracker gives that target alone on the same frames.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import Log
from rclpy.qos import QoSProfile, ReliabilityPolicy
from test_node_ros import (
    DIAGNOSTICS,
    FRAME_TIMEOUT_S,
    IDLE,
    INITIALIZING,
    LOST,
    TRACKING,
    TrackerClient,
    header_for,
    same_header,
    stop_cleanly,
)

from siamrpnpp_ros.msg import SelectTarget, TrackedBoxArray

pytestmark = [pytest.mark.ros, pytest.mark.slow]

BOX_TOLERANCE_PX = 0.01
SCORE_TOLERANCE = 1e-4


class MultiClient(TrackerClient):
    """TrackerClient plus the tracked_boxes arrays."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.arrays: list[TrackedBoxArray] = []
        self.node.create_subscription(TrackedBoxArray, "tracked_boxes", self.arrays.append, 100)

    def arrays_for(self, header) -> list[TrackedBoxArray]:
        return [a for a in self.arrays if same_header(a.header, header)]

    def boxes_of(self, target_id: int) -> list:
        return [b for b in self.boxes if b.target_id == target_id]

    def track_frame_for_all(self, image, header) -> TrackedBoxArray:
        """Publish one frame and wait for its array and for each of its targets' tracked_box.

        The array and the per-target boxes travel on two topics, so the array arriving first
        says nothing about the boxes; waiting for both keeps the next frame from racing them.
        """
        self.publish_frame(image, header)

        def delivered() -> bool:
            arrays = self.arrays_for(header)
            boxes = [b for b in self.boxes if same_header(b.header, header)]
            return bool(arrays) and len(boxes) >= len(arrays[0].boxes)

        self.spin_until(delivered, FRAME_TIMEOUT_S, f"the array and boxes for the frame stamped {header.stamp.sec}")
        return self.arrays_for(header)[0]


def single_target_rows(weights, frames, first: int, box, last: int) -> np.ndarray:
    """x, y, w, h, score of one target tracked alone on frames first+1 .. last."""
    from siamrpnpp_ros.tracking import build_tracker

    tracker = build_tracker("alex", weights, device="cpu")
    tracker.init(frames[first], box)
    return np.array([[*r.box, r.score] for r in (tracker.track(frames[i]) for i in range(first + 1, last + 1))])


def rows_of(boxes) -> np.ndarray:
    return np.array([[b.x, b.y, b.width, b.height, b.score] for b in boxes])


def assert_rows_match(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert got.shape == expected.shape, f"{what}: {got.shape} vs {expected.shape}"
    box_error = np.abs(got[:, :4] - expected[:, :4]).max()
    score_error = np.abs(got[:, 4] - expected[:, 4]).max()
    assert box_error <= BOX_TOLERANCE_PX and score_error <= SCORE_TOLERANCE, (
        f"{what}: max box error {box_error:.3g} px, max score error {score_error:.3g}"
    )


def test_three_targets_one_cancelled_midway_match_single_target_runs(
    tracker_node, ros_node, parity_frames, parity_checkpoint, two_torch_threads
):
    frames, groundtruth = parity_frames
    last, third_at, cancel_at = 40, 10, 25
    weights = parity_checkpoint("alex")
    plan = {1: (0, tuple(groundtruth[0])), 2: (0, (40.0, 30.0, 80.0, 100.0)), 3: (third_at, (420.0, 300.0, 60.0, 50.0))}
    ends = {1: last, 2: cancel_at, 3: last}
    expected = {tid: single_target_rows(weights, frames, first, box, ends[tid]) for tid, (first, box) in plan.items()}

    node = tracker_node(
        DIAGNOSTICS,
        "model:=alex",
        f"weights:={weights}",
        "device:=cpu",
        "long_term:=false",
        "image_qos:=reliable",
        "max_targets:=3",
    )
    client = MultiClient(ros_node, node, image_qos=QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    client.wait_for_node()
    client.publish_frame(frames[0], header_for(0))
    client.wait_for_frames_received(1)

    # Targets 1 and 2 on frame 0; each START waits for its INITIALIZING box, so the order is fixed.
    for count, target_id in enumerate((1, 2), start=1):
        client.select(target_id, plan[target_id][1], stamp=header_for(0))
        client.wait_for_boxes(count)
    client.select(1, plan[1][1], stamp=header_for(0))  # an id in use
    client.wait_for_log(Log.WARN, "START for target 1 refused: target 1 is being tracked already")

    for index in range(1, last + 1):
        array = client.track_frame_for_all(frames[index], header_for(index))
        if index == third_at:
            # Target 3 starts on a frame the others have passed: INITIALIZING on tracked_box only.
            client.select(3, plan[3][1], stamp=header_for(index))
            client.spin_until(lambda: client.boxes_of(3), FRAME_TIMEOUT_S, "target 3's INITIALIZING box")
        if index == cancel_at:
            before_cancel = len(client.arrays)
            client.select(2, (0, 0, 0, 0), command=SelectTarget.COMMAND_CANCEL)
            client.spin_until(lambda n=before_cancel: len(client.arrays) > n, FRAME_TIMEOUT_S, "the IDLE array")
            idle_array = client.arrays[-1]
            assert [(b.target_id, b.status) for b in idle_array.boxes] == [(2, IDLE)]
        assert array.boxes, f"frame {index}: empty array"

    # One array per frame (plus the IDLE one), with the image's header and every target in order.
    image_arrays = [a for a in client.arrays if any(b.status != IDLE for b in a.boxes)]
    assert len(image_arrays) == last + 1, [a.header.stamp.sec for a in client.arrays]
    for index, array in enumerate(image_arrays):
        assert same_header(array.header, header_for(index)), f"array {index} carries another header"
        ids = [b.target_id for b in array.boxes]
        want = [1] if index == 0 else [1, 2] if index <= third_at else [1, 2, 3] if index <= cancel_at else [1, 3]
        assert ids == want, f"frame {index}: targets {ids}, expected {want}"
        assert all(same_header(b.header, array.header) for b in array.boxes)
    assert image_arrays[0].boxes[0].status == INITIALIZING

    # tracked_box: one box per target per processed image, the same as in the arrays.
    for target_id, (first, box) in plan.items():
        own = client.boxes_of(target_id)
        initializing, tracked = own[0], [b for b in own[1:] if b.status != IDLE]
        assert initializing.status == INITIALIZING and same_header(initializing.header, header_for(first))
        assert (initializing.x, initializing.y, initializing.width, initializing.height) == box
        assert [b.age for b in tracked] == list(range(2, ends[target_id] - first + 2)), f"target {target_id} ages"
        assert all(b.status in (TRACKING, LOST) for b in tracked)
        assert [b.header.stamp.sec for b in tracked] == [
            header_for(i).stamp.sec for i in range(first + 1, ends[target_id] + 1)
        ]
        assert_rows_match(rows_of(tracked), expected[target_id], f"target {target_id} on tracked_box")
        in_arrays = [b for a in image_arrays[first + 1 :] for b in a.boxes if b.target_id == target_id]
        assert_rows_match(rows_of(in_arrays), expected[target_id], f"target {target_id} in the arrays")
    assert client.boxes_of(2)[-1].status == IDLE and len(client.boxes_of(2)) == cancel_at + 2

    # /diagnostics reports each target, and the cancel of 0 ends the rest.
    final_age = str(last + 1)  # target 1's age after the last frame

    def latest_diagnostics() -> DiagnosticStatus | None:
        return next(
            (
                s
                for s in reversed(client.diagnostics)
                if client.diagnostic_value(s, "targets") == "2"
                and client.diagnostic_value(s, "target_1.age") == final_age
            ),
            None,
        )

    client.spin_until(lambda: latest_diagnostics() is not None, FRAME_TIMEOUT_S, "diagnostics after the last frame")
    latest = latest_diagnostics()
    assert latest.message.startswith("2 targets: 1 ") and ", 3 " in latest.message
    for target_id in (1, 3):
        assert client.diagnostic_value(latest, f"target_{target_id}.status") in ("TRACKING", "LOST")
        assert int(client.diagnostic_value(latest, f"target_{target_id}.age")) == last - plan[target_id][0] + 1
    count = len(client.arrays)
    client.select(0, (0, 0, 0, 0), command=SelectTarget.COMMAND_CANCEL)
    client.spin_until(lambda: len(client.arrays) > count, FRAME_TIMEOUT_S, "the IDLE array of the cancel-all")
    assert [(b.target_id, b.status) for b in client.arrays[-1].boxes] == [(1, IDLE), (3, IDLE)]
    stop_cleanly(node)


def test_limits_replace_and_overload(tracker_node, ros_node, parity_frames, parity_checkpoint):
    """START beyond max_targets and REPLACE beyond it are refused, REPLACE re-selects a tracked
    id; a camera far faster than three targets' step: every array still has all targets, the
    newest frame is answered promptly, and /diagnostics report the fallen rate."""
    frames, groundtruth = parity_frames
    frames = [cv2.resize(f, (160, 120), interpolation=cv2.INTER_AREA) for f in frames]
    box = tuple(groundtruth[0] / 4.0)
    node = tracker_node(
        DIAGNOSTICS,
        "model:=alex",
        f"weights:={parity_checkpoint('alex')}",
        "device:=cpu",
        "max_targets:=3",
        "frame_cache_size:=30",
    )
    client = MultiClient(ros_node, node)  # sensor-data QoS, as a camera driver
    client.wait_for_node()
    frame_number = iter(range(10_000))
    client.prime(frames[0], frame_number.__next__)
    for count, target_id in enumerate((4, 5, 6), start=1):
        client.select(target_id, (box[0] + 10 * count, box[1], box[2], box[3]))
        client.wait_for_boxes(count)
    client.select(7, box)
    client.wait_for_log(Log.WARN, "START for target 7 refused: targets 4, 5, 6 are being tracked and max_targets is 3")
    client.select(8, box, command=SelectTarget.COMMAND_REPLACE)
    client.wait_for_log(Log.WARN, "REPLACE for target 8 refused")
    count = len(client.boxes)
    client.select(5, (60, 40, 30, 30), command=SelectTarget.COMMAND_REPLACE)
    replaced = client.wait_for_boxes(count + 1)[-1]
    assert (replaced.target_id, replaced.status, replaced.age) == (5, INITIALIZING, 1)
    client.select(9, box, command=SelectTarget.COMMAND_CANCEL)
    client.wait_for_log(Log.WARN, "CANCEL for target 9 ignored")

    def burst(count: int) -> float:
        for _ in range(count - 1):
            index = next(frame_number)
            client.publish_frame(frames[index % len(frames)], header_for(index))
            ros_node.spin_once(0.002)
        newest = header_for(next(frame_number))
        client.publish_frame(frames[1], newest)
        sent_at = time.monotonic()
        client.spin_until(lambda: client.arrays_for(newest), FRAME_TIMEOUT_S, "the newest frame's array")
        return time.monotonic() - sent_at

    delay = burst(400)
    assert delay < 10.0, f"the newest frame waited {delay:.1f} s: a backlog"
    live = [a for a in client.arrays if all(b.status in (TRACKING, LOST) for b in a.boxes)]
    assert live and all([b.target_id for b in a.boxes] == [4, 5, 6] for a in live), "every array has every target"
    assert len(live) < 300, "most frames were skipped, not queued"
    stamps = [(a.header.stamp.sec, a.header.stamp.nanosec) for a in client.arrays if a.boxes[0].status != IDLE]
    assert stamps == sorted(stamps), "arrays come in camera order"
    client.spin_until(
        lambda: any(
            s.level == DiagnosticStatus.WARN
            and "overloaded" in s.message
            and client.diagnostic_value(s, "overloaded") == "true"
            for s in client.diagnostics
        ),
        FRAME_TIMEOUT_S,
        "a diagnostics period reporting the overload",
    )
    overloaded = next(s for s in client.diagnostics if client.diagnostic_value(s, "overloaded") == "true")
    assert float(client.diagnostic_value(overloaded, "processing_rate_hz")) < float(
        client.diagnostic_value(overloaded, "input_rate_hz")
    )
    assert overloaded.message.startswith("3 targets: 4 ")
    stop_cleanly(node)
