"""The managed (lifecycle) tracker node, driven through its lifecycle services over real DDS.

The node runs in its own process (``tracker_node --lifecycle``) with the bundled model on the
CPU; the test process plays the lifecycle manager (``lifecycle_msgs`` ChangeState and GetState),
the camera and the selector. Every transition must answer within the limit stated below, which
leaves room for a busy 2-core machine; the measured times are printed (``pytest -s``).

The camera is Debian's vtest.avi at half size (a 24x41 pedestrian, as in
``test_lost_target_ros.py``), or the parity video where opencv-doc is not installed; the boxes
must be the ROS-free core's on the same images.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Log, Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import QoSProfile, ReliabilityPolicy
from test_node_ros import (
    DIAGNOSTICS,
    INITIALIZING,
    LOST,
    NODE_NAME,
    STARTUP_TIMEOUT_S,
    TRACKING,
    TrackerClient,
    header_for,
    same_header,
    stop_cleanly,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
VTEST_SIZE = (384, 288)  # half size: below what best-effort samples cross reliably, as in test_lost_target_ros
VTEST_PEDESTRIAN = (319.0, 120.0, 24.0, 41.0)  # on frame 0, at that size
TRACKED_FRAMES = 15

# Limits per transition (seconds from the request to the answer). Configure loads torch's model
# and warms it up (the bundled model: a few seconds on an idle 2-core machine, far more while
# other jobs run); the others only create or destroy ROS entities, or wait for one tracker step.
CONFIGURE_LIMIT_S = 60.0
ACTIVATE_LIMIT_S = 5.0
DEACTIVATE_LIMIT_S = 10.0  # waits for the step in progress, then reports the targets LOST
CLEANUP_LIMIT_S = 10.0
SHUTDOWN_LIMIT_S = 10.0
FAILED_CONFIGURE_LIMIT_S = 30.0  # fails before or while opening the checkpoint
EXIT_LIMIT_S = 15.0  # from the shutdown answer to the process's exit


@pytest.fixture(scope="module")
def footage(parity_frames) -> tuple[list[np.ndarray], tuple[float, float, float, float]]:
    """(frames, the target's box on frame 0): vtest's pedestrian, else the parity video's target."""
    if VTEST.is_file():
        capture = cv2.VideoCapture(str(VTEST))
        frames = []
        while len(frames) < 2 * TRACKED_FRAMES + 10:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.resize(frame, VTEST_SIZE, interpolation=cv2.INTER_AREA))
        return frames, VTEST_PEDESTRIAN
    frames, groundtruth = parity_frames
    small = [cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA) for f in frames]
    return small, tuple(float(v) for v in groundtruth[0] / 2.0)


class LifecycleManager:
    """The test's lifecycle manager: ChangeState and GetState clients of the tracker node."""

    def __init__(self, client: TrackerClient) -> None:
        self.client = client
        node = client.node
        self.change = node.create_client(ChangeState, f"/{NODE_NAME}/change_state")
        self.get = node.create_client(GetState, f"/{NODE_NAME}/get_state")
        self.timings: dict[str, float] = {}

    def wait_for_services(self) -> None:
        self.client.spin_until(
            lambda: self.change.service_is_ready() and self.get.service_is_ready(),
            STARTUP_TIMEOUT_S,
            "the lifecycle services",
        )

    def _call(self, service, request, limit: float, what: str):
        started = time.monotonic()
        future = service.call_async(request)
        self.client.spin_until(future.done, limit, f"the answer to {what} (limit {limit:.0f} s)")
        elapsed = time.monotonic() - started
        assert elapsed <= limit, f"{what} took {elapsed:.1f} s, more than {limit:.0f} s"
        return future.result(), elapsed

    def state(self) -> str:
        response, _ = self._call(self.get, GetState.Request(), 10.0, "get_state")
        return response.current_state.label

    def transition(self, transition_id: int, limit: float, label: str = "") -> bool:
        """Request a transition; returns whether it succeeded, keeping its time under ``label``."""
        request = ChangeState.Request(transition=Transition(id=transition_id))
        response, elapsed = self._call(self.change, request, limit, f"transition {transition_id}")
        if label:
            self.timings[label] = elapsed
        return bool(response.success)


def core_boxes(frames: list[np.ndarray], box) -> list:
    """What the ROS-free core does with the node's defaults: the session results after frame 0."""
    from siamrpnpp_ros.tracking.factory import build_session

    session = build_session("alex-w0.25", None, device="cpu")
    session.start(frames[0], box, target_id=1)
    return [session.step(frame) for frame in frames[1:]]


def frames_received(client: TrackerClient) -> int:
    return max((int(client.diagnostic_value(s, "frames_received")) for s in client.diagnostics), default=0)


def prime_until_received(client: TrackerClient, image: np.ndarray, counter) -> list:
    """Send ``image`` until the node's diagnostics count one more received frame than now."""
    before = frames_received(client)
    sent = []
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        header = header_for(next(counter))
        client.publish_frame(image, header)
        sent.append(header)
        if client.ros.spin_until(lambda: frames_received(client) > before, 1.0):
            return sent
    raise AssertionError("the node received none of the frames sent after activation")


def _string_parameter(name: str, value: str) -> Parameter:
    return Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value))


def _integer_parameter(name: str, value: int) -> Parameter:
    return Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value))


def test_configure_activate_track_deactivate_reactivate_cleanup_shutdown(tracker_node, ros_node, footage):
    frames, target = footage
    expected = core_boxes(frames[: TRACKED_FRAMES + 1], target)
    process = tracker_node(DIAGNOSTICS, "image_qos:=reliable", "device:=cpu", lifecycle=True)
    client = TrackerClient(ros_node, process, image_qos=QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    manager = LifecycleManager(client)
    manager.wait_for_services()

    # Unconfigured: nothing loaded, no topics.
    assert manager.state() == "unconfigured"
    assert client.node.count_publishers("tracked_box") == 0
    assert client.images.get_subscription_count() == 0

    assert manager.transition(Transition.TRANSITION_CONFIGURE, CONFIGURE_LIMIT_S, "configure")
    assert manager.state() == "inactive"
    client.spin_until(lambda: client.node.count_publishers("tracked_box") > 0, 10.0, "the lifecycle publishers")
    assert client.images.get_subscription_count() == 0, "inactive: no camera subscription yet"

    assert manager.transition(Transition.TRANSITION_ACTIVATE, ACTIVATE_LIMIT_S, "activate")
    assert manager.state() == "active"
    client.wait_for_node()

    # Track the pedestrian: exactly the core's boxes.
    counter = iter(range(100_000))
    primed = client.prime(frames[0], lambda: next(counter))
    client.select(7, target, stamp=primed[-1])
    client.spin_until(lambda: client.box_for(primed[-1]) is not None, 30.0, "the INITIALIZING box")
    assert client.box_for(primed[-1]).status == INITIALIZING
    boxes = [client.track_frame(frame, header_for(next(counter))) for frame in frames[1 : TRACKED_FRAMES + 1]]
    for index, (got, want) in enumerate(zip(boxes, expected, strict=True)):
        assert got.target_id == 7 and got.status == int(want.status), f"frame {index + 1}"
        assert np.allclose([got.x, got.y, got.width, got.height], want.box, atol=0.5), f"frame {index + 1}"
    assert [b.status for b in boxes].count(TRACKING) >= TRACKED_FRAMES - 2, [b.status for b in boxes]

    # Deactivate: one LOST box for the target, with the reason on /rosout; no camera subscription.
    count = len(client.boxes)
    assert manager.transition(Transition.TRANSITION_DEACTIVATE, DEACTIVATE_LIMIT_S, "deactivate")
    lost = client.wait_for_boxes(count + 1)[-1]
    assert (lost.target_id, lost.status, lost.score) == (7, LOST, 0.0)
    assert (lost.x, lost.y, lost.width, lost.height) == (boxes[-1].x, boxes[-1].y, boxes[-1].width, boxes[-1].height)
    client.wait_for_log(Log.WARN, "reported LOST and ended: the tracker node was deactivated")
    assert manager.state() == "inactive"
    client.spin_until(lambda: client.images.get_subscription_count() == 0, 10.0, "the camera subscription to go")
    client.spin_until(lambda: client.selections.get_subscription_count() == 0, 10.0, "the selection subscription to go")

    # While inactive: frames and a selection go nowhere, and no box comes.
    sent_while_active = client.published  # reliable: every one of them was received
    for frame in frames[TRACKED_FRAMES + 1 : TRACKED_FRAMES + 6]:
        client.publish_frame(frame, header_for(next(counter)))
    client.select(8, target)
    assert manager.state() == "inactive"  # a round trip to the node after the frames
    assert len(client.boxes) == count + 1, "no boxes while inactive"

    # Activate again: images flow, but nothing is tracked until a new selection.
    assert manager.transition(Transition.TRANSITION_ACTIVATE, ACTIVATE_LIMIT_S, "activate again")
    client.wait_for_node()
    resumed = frames[TRACKED_FRAMES + 6]
    primed = prime_until_received(client, resumed, counter)
    assert frames_received(client) <= sent_while_active + len(primed), "frames sent while inactive were taken"
    assert len(client.boxes) == count + 1, "the old target must not come back by itself"
    client.select(8, target, stamp=primed[-1])
    client.spin_until(lambda: client.box_for(primed[-1]) is not None, 30.0, "the new INITIALIZING box")
    assert (client.box_for(primed[-1]).target_id, client.box_for(primed[-1]).status) == (8, INITIALIZING)
    for frame in frames[TRACKED_FRAMES + 7 : TRACKED_FRAMES + 10]:
        box = client.track_frame(frame, header_for(next(counter)))
        assert box.target_id == 8 and box.status in (TRACKING, LOST)

    # Deactivate, clean up (the model is freed, the publishers go), shut down: the process exits 0.
    assert manager.transition(Transition.TRANSITION_DEACTIVATE, DEACTIVATE_LIMIT_S, "deactivate again")
    client.spin_until(lambda: client.boxes[-1].status == LOST and client.boxes[-1].target_id == 8, 10.0, "LOST")
    assert manager.transition(Transition.TRANSITION_CLEANUP, CLEANUP_LIMIT_S, "cleanup")
    assert manager.state() == "unconfigured"
    client.spin_until(lambda: client.node.count_publishers("tracked_box") == 0, 10.0, "the publishers to go")
    assert manager.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN, SHUTDOWN_LIMIT_S, "shutdown")
    started = time.monotonic()
    code = process.process.wait(timeout=EXIT_LIMIT_S)
    manager.timings["exit after shutdown"] = time.monotonic() - started
    output = process.output()
    assert code == 0, output
    assert "Traceback" not in output
    assert not any(same_header(b.header, h) for b in client.boxes for h in primed[:-1]), "idle frames got boxes"
    print("transition times (s): " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in manager.timings.items()))


def test_a_failed_configure_leaves_the_node_alive_and_unconfigured(tracker_node, ros_node):
    """A bad parameter, then a bad checkpoint: each fails configure with the plain node's one
    line; the node stays unconfigured, takes the fixed value and configures."""
    missing = "/nonexistent/siamrpnpp/model.pth"
    process = tracker_node(DIAGNOSTICS, "backend:=tensorrt", f"weights:={missing}", "device:=cpu", lifecycle=True)
    client = TrackerClient(ros_node, process)
    manager = LifecycleManager(client)
    manager.wait_for_services()

    def set_parameters(*parameters: Parameter):
        return client.parameter_call(SetParameters, "set_parameters", SetParameters.Request(parameters=parameters))

    assert not manager.transition(Transition.TRANSITION_CONFIGURE, FAILED_CONFIGURE_LIMIT_S, "bad backend")
    client.wait_for_log(Log.ERROR, "configure failed: invalid configuration: parameter backend must be one of torch")
    assert manager.state() == "unconfigured" and process.process.poll() is None

    assert set_parameters(_string_parameter("backend", "torch")).results[0].successful
    assert not manager.transition(Transition.TRANSITION_CONFIGURE, FAILED_CONFIGURE_LIMIT_S, "bad weights")
    error = client.wait_for_log(Log.ERROR, "configure failed: cannot load weights")
    assert missing in error.msg
    assert manager.state() == "unconfigured" and process.process.poll() is None
    assert client.node.count_publishers("tracked_box") == 0

    # Fixed while unconfigured (the empty path: the bundled weights), configure succeeds.
    assert set_parameters(_string_parameter("weights", "")).results[0].successful
    assert manager.transition(Transition.TRANSITION_CONFIGURE, CONFIGURE_LIMIT_S, "configure")
    assert manager.state() == "inactive"
    # Configured: what needs a reload is refused until cleanup; runtime settings are taken.
    refused = set_parameters(_string_parameter("weights", missing)).results[0]
    assert not refused.successful and "unconfigured" in refused.reason
    assert set_parameters(_integer_parameter("lost_frames", 3)).results[0].successful

    errors = [m.msg for m in client.logs if m.level >= Log.ERROR]
    assert len(errors) == 2, errors
    assert manager.transition(Transition.TRANSITION_INACTIVE_SHUTDOWN, SHUTDOWN_LIMIT_S, "shutdown")
    assert process.process.wait(timeout=EXIT_LIMIT_S) == 0, process.output()
    print("transition times (s): " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in manager.timings.items()))


def test_ctrl_c_stops_the_managed_node_cleanly_in_any_state(tracker_node, ros_node):
    """SIGINT while active (with the model loaded) exits 0 without a traceback."""
    process = tracker_node(DIAGNOSTICS, "device:=cpu", lifecycle=True)
    client = TrackerClient(ros_node, process)
    manager = LifecycleManager(client)
    manager.wait_for_services()
    assert manager.transition(Transition.TRANSITION_CONFIGURE, CONFIGURE_LIMIT_S)
    assert manager.transition(Transition.TRANSITION_ACTIVATE, ACTIVATE_LIMIT_S)
    client.wait_for_node()
    assert manager.state() == "active"
    stop_cleanly(process)
