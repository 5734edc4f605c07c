"""The package's messages cross process boundaries over real DDS."""

from __future__ import annotations

import math

import pytest

from siamrpnpp_ros.msg import SelectTarget, TrackedBox


def test_status_and_command_constants_are_distinct():
    statuses = [
        TrackedBox.STATUS_IDLE,
        TrackedBox.STATUS_INITIALIZING,
        TrackedBox.STATUS_TRACKING,
        TrackedBox.STATUS_LOST,
    ]
    commands = [SelectTarget.COMMAND_START, SelectTarget.COMMAND_REPLACE, SelectTarget.COMMAND_CANCEL]
    assert len(set(statuses)) == 4
    assert len(set(commands)) == 3
    assert SelectTarget().command == SelectTarget.COMMAND_START, "a zero-initialised selection means start"


@pytest.mark.ros
def test_select_target_and_tracked_box_cross_processes(ros_peer, ros_node):
    relay = ros_peer("test/ros_peers/select_to_box_relay.py")
    received: list[TrackedBox] = []
    ros_node.node.create_subscription(TrackedBox, "tracked_box", received.append, 10)
    publisher = ros_node.node.create_publisher(SelectTarget, "select_target", 10)

    discovered = ros_node.spin_until(
        lambda: publisher.get_subscription_count() > 0 and ros_node.node.count_publishers("tracked_box") > 0,
        timeout=15.0,
    )
    assert discovered, f"relay not discovered; its output:\n{relay.output()}"

    selection = SelectTarget()
    selection.header.stamp.sec = 1234
    selection.header.stamp.nanosec = 567_000_000
    selection.header.frame_id = "camera_optical"
    selection.target_id = 42
    selection.command = SelectTarget.COMMAND_REPLACE
    selection.x, selection.y, selection.width, selection.height = 10.5, 20.25, 64.0, 48.0
    publisher.publish(selection)

    assert ros_node.spin_until(lambda: bool(received), timeout=10.0), relay.output()
    box = received[0]
    assert (box.header.stamp.sec, box.header.stamp.nanosec) == (1234, 567_000_000)
    assert box.header.frame_id == "camera_optical"
    assert box.target_id == 42
    assert (box.x, box.y, box.width, box.height) == (10.5, 20.25, 64.0, 48.0)
    assert math.isclose(box.center_x, 42.5) and math.isclose(box.center_y, 44.25)
    assert box.status == TrackedBox.STATUS_INITIALIZING
