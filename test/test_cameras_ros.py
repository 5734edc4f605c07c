"""Several cameras, one tracker each, and the box in vision_msgs' terms.

- ``launch/cameras.launch.py`` turns a cameras file into one tracker per camera; its parsing is
  checked here with the launch packages stubbed (they have no wheel; the launch file itself runs
  under real ROS 2 elsewhere).
- Two tracker processes in the namespaces of ``config/cameras.yaml``, each fed its own video over
  real DDS, with a selection each: every namespace's boxes are the ROS-free core's on its own
  video, and nothing crosses between them.
- ``detection2d_fields``, the arithmetic of the TrackedBox -> vision_msgs/Detection2D mapping,
  without vision_msgs.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
CAMERA_FRAMES = 12
STARTUP_TIMEOUT_S = 90.0
FRAME_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------- the launch file's parsing


@pytest.fixture
def cameras_launch(monkeypatch):
    """launch/cameras.launch.py as a module, with stand-ins for the launch packages."""
    for name in ("launch", "launch.actions", "launch.launch_description_sources", "launch.substitutions"):
        module = types.ModuleType(name)
        for attribute in (
            "LaunchDescription",
            "DeclareLaunchArgument",
            "GroupAction",
            "IncludeLaunchDescription",
            "OpaqueFunction",
            "PythonLaunchDescriptionSource",
            "LaunchConfiguration",
        ):
            setattr(module, attribute, type(attribute, (), {"__init__": lambda self, *a, **k: None}))
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("cameras_launch", REPO_ROOT / "launch" / "cameras.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_cameras(cameras_launch) -> list[tuple[str, dict[str, str]]]:
    document = yaml.safe_load((REPO_ROOT / "config" / "cameras.yaml").read_text())
    return cameras_launch.camera_arguments(document, {"lifecycle": "false", "autostart": "false"})


def test_the_example_cameras_file_gives_one_tracker_per_camera(cameras_launch):
    cameras = example_cameras(cameras_launch)
    assert [name for name, _ in cameras] == ["front", "rear"]
    for name, values in cameras:
        assert values["namespace"] == name
        assert values["image_topic"] == f"/{name}/camera/image_raw"
        assert values["config"] == "" and values["lifecycle"] == "false"
        assert set(values) - {"namespace"} <= set(cameras_launch.CAMERA_ARGUMENTS)


def test_cameras_file_mistakes_are_named(cameras_launch):
    parse = cameras_launch.camera_arguments
    with pytest.raises(ValueError, match="'cameras:' mapping"):
        parse({"trackers": {}})
    with pytest.raises(ValueError, match="camera left: unknown arguments colour"):
        parse({"cameras": {"left": {"colour": "red"}}})
    with pytest.raises(ValueError, match="not a valid ROS namespace"):
        parse({"cameras": {"left camera": {}}})
    with pytest.raises(ValueError, match="both track /cam/image; one tracker per camera"):
        parse({"cameras": {"a": {"image_topic": "/cam/image"}, "b": {"image_topic": "/cam/image"}}})
    # Shared arguments are defaults; a camera's own value wins; booleans become launch strings.
    cameras = parse({"cameras": {"a": {"lifecycle": False, "max_targets": 3}, "b": None}}, {"lifecycle": "true"})
    assert cameras[0][1]["lifecycle"] == "false" and cameras[0][1]["max_targets"] == "3"
    assert cameras[1][1] == {"lifecycle": "true", "image_topic": "/b/camera/image_raw", "namespace": "b"}


# --------------------------------------------------------------------------- vision_msgs mapping


def test_detection2d_fields_centre_size_id_and_score():
    from siamrpnpp_ros.ros.conversions import detection2d_fields

    box = SimpleNamespace(x=10.0, y=20.0, width=30.0, height=50.0, target_id=7, score=0.8)
    fields = detection2d_fields(box, class_id="person")
    assert (fields.center_x, fields.center_y) == (25.0, 45.0)
    assert (fields.size_x, fields.size_y, fields.theta) == (30.0, 50.0, 0.0)
    assert (fields.id, fields.class_id, fields.score) == ("7", "person", 0.8)
    # Sub-pixel boxes keep their precision; the default class is unknown (empty).
    fields = detection2d_fields(SimpleNamespace(x=-0.25, y=0.5, width=0.5, height=3.0, target_id=0, score=0.0))
    assert (fields.center_x, fields.center_y, fields.class_id) == (0.0, 2.0, "")
    # The TrackedBox's own centre fields agree with the mapping's (the node fills both).
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    from siamrpnpp_ros.msg import TrackedBox

    message = TrackedBox(x=100.5, y=40.0, width=21.0, height=9.0, center_x=111.0, center_y=44.5, target_id=3)
    fields = detection2d_fields(message)
    assert math.isclose(fields.center_x, message.center_x) and math.isclose(fields.center_y, message.center_y)


# --------------------------------------------------------------------------- two cameras over DDS


def _videos(parity_frames) -> dict[str, tuple[list[np.ndarray], tuple[float, ...]]]:
    """Two different videos, with their target on frame 0: vtest's pedestrian (half size) for the
    front camera, the parity video's target (320x240) for the rear one."""
    frames, groundtruth = parity_frames
    rear = [cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA) for f in frames[: CAMERA_FRAMES + 1]]
    rear_box = tuple(float(v) for v in groundtruth[0] / 2.0)
    if VTEST.is_file():
        capture = cv2.VideoCapture(str(VTEST))
        front = []
        while len(front) < CAMERA_FRAMES + 1 and (read := capture.read())[0]:
            front.append(cv2.resize(read[1], (384, 288), interpolation=cv2.INTER_AREA))
        front_box: tuple[float, ...] = (319.0, 120.0, 24.0, 41.0)
    else:  # the parity video mirrored: still another video than the rear camera's
        front = [np.ascontiguousarray(f[:, ::-1]) for f in rear]
        front_box = (320.0 - rear_box[0] - rear_box[2], *rear_box[1:])
    return {"front": (front, front_box), "rear": (rear, rear_box)}


class Camera:
    """The test's side of one camera's tracker: its player, selector and listener."""

    def __init__(self, ros_node, namespace: str, image_topic: str, process) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from siamrpnpp_ros.msg import SelectTarget, TrackedBox

        self.ros, self.node, self.namespace, self.process = ros_node, ros_node.node, namespace, process
        self.frame_id = f"{namespace}_camera_optical"
        self.boxes: list = []
        self.received = 0
        self.node.create_subscription(TrackedBox, f"/{namespace}/tracked_box", self.boxes.append, 100)
        self.images = self.node.create_publisher(
            Image, image_topic, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        )
        self.selections = self.node.create_publisher(SelectTarget, f"/{namespace}/select_target", 10)

    def ready(self) -> bool:
        return (
            self.images.get_subscription_count() > 0
            and self.selections.get_subscription_count() > 0
            and self.node.count_publishers(f"/{self.namespace}/tracked_box") > 0
        )

    def header(self, index: int):
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header

        return Header(stamp=Time(sec=2000 + index, nanosec=index), frame_id=self.frame_id)

    def publish(self, image: np.ndarray, index: int) -> None:
        from siamrpnpp_ros.ros.conversions import bgr_to_image

        self.images.publish(bgr_to_image(image, self.header(index)))

    def box_for(self, index: int):
        header = self.header(index)
        return next(
            (
                b
                for b in self.boxes
                if (b.header.stamp.sec, b.header.stamp.nanosec) == (header.stamp.sec, header.stamp.nanosec)
            ),
            None,
        )

    def select(self, target_id: int, box, index: int) -> None:
        from siamrpnpp_ros.msg import SelectTarget

        message = SelectTarget(header=self.header(index), target_id=target_id, command=SelectTarget.COMMAND_START)
        message.x, message.y, message.width, message.height = (float(v) for v in box)
        self.selections.publish(message)


@pytest.mark.ros
@pytest.mark.slow
def test_two_cameras_in_two_namespaces_track_their_own_videos(tracker_node, ros_node, parity_frames, cameras_launch):
    from diagnostic_msgs.msg import DiagnosticArray

    from siamrpnpp_ros.msg import TrackedBox
    from siamrpnpp_ros.tracking.factory import build_session

    videos = _videos(parity_frames)
    target_ids = {"front": 1, "rear": 2}
    cameras: dict[str, Camera] = {}
    received: dict[str, int] = {}
    root_boxes: list = []
    ros_node.node.create_subscription(TrackedBox, "/tracked_box", root_boxes.append, 10)

    def on_diagnostics(message) -> None:
        for status in message.status:
            for name in cameras:
                if status.name.startswith(f"/{name}/"):
                    values = {kv.key: kv.value for kv in status.values}
                    received[name] = max(received.get(name, 0), int(values.get("frames_received", "0")))

    ros_node.node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 50)
    # As cameras.launch.py starts them: the namespace, the camera remapped, the camera's params file.
    for name, values in example_cameras(cameras_launch):
        params_file = values["config"] or str(REPO_ROOT / "config" / "default_model.yaml")
        process = tracker_node(
            "device:=cpu",
            "image_qos:=reliable",
            "diagnostics_period:=0.2",
            params_file=params_file,
            remaps=[f"__ns:=/{values['namespace']}", f"image:={values['image_topic']}"],
        )
        cameras[name] = Camera(ros_node, name, values["image_topic"], process)

    def spin_until(condition, timeout: float, what: str) -> None:
        if not ros_node.spin_until(condition, timeout):
            exits = {name: camera.process.process.poll() for name, camera in cameras.items()}
            raise AssertionError(f"timed out waiting for {what}; tracker exit codes: {exits}")

    spin_until(lambda: all(camera.ready() for camera in cameras.values()), STARTUP_TIMEOUT_S, "both trackers")

    expected = {}
    for name, (frames, box) in videos.items():
        session = build_session("alex-w0.25", None, device="cpu")
        session.start(frames[0], box, target_id=target_ids[name])
        expected[name] = [session.step(frame) for frame in frames[1:]]

    for name, camera in cameras.items():
        camera.publish(videos[name][0][0], 0)
    spin_until(lambda: all(received.get(name, 0) >= 1 for name in cameras), FRAME_TIMEOUT_S, "frame 0 at both")
    for name, camera in cameras.items():
        camera.select(target_ids[name], videos[name][1], 0)
    spin_until(lambda: all(c.box_for(0) is not None for c in cameras.values()), FRAME_TIMEOUT_S, "both selections")

    for index in range(1, CAMERA_FRAMES + 1):
        for name, camera in cameras.items():
            camera.publish(videos[name][0][index], index)
        spin_until(
            lambda index=index: all(c.box_for(index) is not None for c in cameras.values()),
            FRAME_TIMEOUT_S,
            f"frame {index}",
        )

    for name, camera in cameras.items():
        assert len(camera.boxes) == CAMERA_FRAMES + 1, f"{name}: one box per frame, none from the other camera"
        assert {b.target_id for b in camera.boxes} == {target_ids[name]}, name
        assert {b.header.frame_id for b in camera.boxes} == {camera.frame_id}, name
        for index, want in enumerate(expected[name], start=1):
            got = camera.box_for(index)
            assert got.status == int(want.status), f"{name} frame {index}"
            assert np.allclose([got.x, got.y, got.width, got.height], want.box, atol=0.5), f"{name} frame {index}"
    assert not root_boxes, "nothing on the root namespace's tracked_box"
    for camera in cameras.values():
        code = camera.process.stop()
        assert code == 0, camera.process.log_path.read_text(errors="replace")
