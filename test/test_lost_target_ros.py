"""The node notices a target that is gone and takes it up again when it returns (issue #11).

Real node process, real footage (Debian's vtest.avi), the bundled model and the node's
defaults: a pedestrian is selected and tracked, then the view goes blank (the target is out
of sight: nothing of it in the image), then the footage resumes. The node must publish LOST
within 10 images of the target's disappearance and TRACKING on the pedestrian again once she
is back, exactly as the ROS-free core does on the same images.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from test_node_ros import DIAGNOSTICS, LOST, TRACKING, TrackerClient, header_for, stop_cleanly

pytestmark = [pytest.mark.ros, pytest.mark.slow]

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
SIZE = (384, 288)  # half of vtest's 768x576: below the size best-effort samples cross reliably
PEDESTRIAN = (319.0, 120.0, 24.0, 41.0)  # on frame 0, at that size
BEFORE, BLANK, AFTER = 20, 15, 15


def _footage() -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(VTEST))
    frames = []
    while len(frames) < BEFORE + AFTER:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, SIZE, interpolation=cv2.INTER_AREA))
    return frames


@pytest.mark.skipif(not VTEST.is_file(), reason="needs Debian's opencv-doc (vtest.avi), installed by make setup")
def test_target_out_of_sight_turns_lost_and_is_tracked_again_on_return(tracker_node, ros_node):
    from siamrpnpp_ros.msg import SelectTarget
    from siamrpnpp_ros.tracking.factory import build_session

    footage = _footage()
    blank = np.full_like(footage[0], 128)
    shown = footage[1:BEFORE] + [blank] * BLANK + footage[BEFORE:]
    first_blank, first_back = BEFORE - 1, BEFORE - 1 + BLANK

    # What the ROS-free core does with the node's defaults on the same images.
    session = build_session("alex-w0.25", None, device="cpu")
    session.start(footage[0], PEDESTRIAN, target_id=7)
    expected = [session.step(frame) for frame in shown]

    # No lost-search budget: the node must then do exactly what the core does (which has none);
    # the budget's own tests are test/test_lost_budget*.py.
    process = tracker_node(DIAGNOSTICS, "image_qos:=reliable", "device:=cpu", "lost_search_budget_ms:=off")
    client = TrackerClient(ros_node, process, image_qos=QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    client.wait_for_node()
    counter = iter(range(10_000))
    primed = client.prime(footage[0], lambda: next(counter))
    client.select(7, PEDESTRIAN, SelectTarget.COMMAND_START, stamp=primed[-1])
    client.spin_until(lambda: client.box_for(primed[-1]) is not None, 30.0, "the INITIALIZING box")

    boxes = [client.track_frame(frame, header_for(next(counter))) for frame in shown]
    statuses = [b.status for b in boxes]
    assert statuses[:first_blank] == [TRACKING] * first_blank
    lost_at = statuses.index(LOST)
    assert first_blank <= lost_at < first_blank + 10, statuses
    assert all(s == LOST for s in statuses[lost_at:first_back]), statuses
    back_at = first_back + statuses[first_back:].index(TRACKING)
    assert back_at < first_back + 5, statuses
    for got, want in zip(boxes, expected, strict=True):
        assert got.status == int(want.status)
        assert np.allclose([got.x, got.y, got.width, got.height], want.box, atol=0.5)
        assert abs(got.score - want.presence) < 1e-3
    # Back on the pedestrian: the box is where the core's is, and that is near where she was.
    x, y, w, h = expected[back_at].box
    before = expected[first_blank - 1].box
    assert abs((x + w / 2) - (before[0] + before[2] / 2)) < 3 * w
    stop_cleanly(process)
