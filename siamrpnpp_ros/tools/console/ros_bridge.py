"""The console's ROS side: one rclpy node, spun by its own executor in its own thread.

Its callbacks only store: the newest camera message (undecoded) in ``FrameStore`` and the
newest box of each target in ``TargetBoard``, then poke the web server (``on_change``).
They never wait for a browser. Selections are published from the web server's thread
(rclpy publishers may be used from any thread).

Topics, relative to the node's namespace (so ``-r __ns:=/drone1`` follows a namespaced
tracker, and the tracker's remappings apply the same way): the camera (``image_topic``, or
its ``/compressed`` sibling), ``tracked_box`` in, ``select_target`` out. From ``/rosout`` it
keeps the lines the tracker node of its namespace logs (``tracker_name``): a refused START
or a selection before any image would otherwise go unnoticed by the operator.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from rcl_interfaces.msg import Log
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from siamrpnpp_ros.msg import SelectTarget, TrackedBox
from siamrpnpp_ros.ros.conversions import compressed_to_bgr, image_to_bgr
from siamrpnpp_ros.ros.qos import COMMAND_QOS, RESULT_QOS, image_qos
from siamrpnpp_ros.tools.console.frames import CameraFrame, FrameStore
from siamrpnpp_ros.tools.console.settings import NODE_NAME, declare_console_parameters
from siamrpnpp_ros.tools.console.targets import TargetBoard, TargetUpdate
from siamrpnpp_ros.tools.console.validation import Selection

COMMAND_CONSTANTS = {
    "start": SelectTarget.COMMAND_START,
    "replace": SelectTarget.COMMAND_REPLACE,
    "cancel": SelectTarget.COMMAND_CANCEL,
}
# TrackedBox.STATUS_* by value, read from the message so new statuses get their names.
STATUS_NAMES = {
    getattr(TrackedBox, name): name[len("STATUS_") :] for name in dir(TrackedBox) if name.startswith("STATUS_")
}
LOG_LEVELS = {Log.DEBUG: "DEBUG", Log.INFO: "INFO", Log.WARN: "WARN", Log.ERROR: "ERROR", Log.FATAL: "FATAL"}
# New lines only (volatile); /rosout publishers are reliable.
ROSOUT_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


class ConsoleNode(Node):
    """The console's rclpy node: camera, ``tracked_box`` and ``/rosout`` in, ``select_target`` out."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        # May raise (bad parameter): main() reports it.
        self.settings = declare_console_parameters(self)
        self.frames = FrameStore()
        self.targets = TargetBoard(received_at=self.frames.received_at)
        self.on_change: Callable[[], None] = lambda: None
        # Frame numbers start at random, so a page still showing a frame of an earlier run of the
        # console cannot name a different frame of this one.
        self._sequence = secrets.randbelow(2**40)
        camera_qos = image_qos(self.settings.image_qos, 1)  # only the newest image is of use
        if self.settings.compressed:
            self.camera = self.create_subscription(
                CompressedImage, self.settings.camera_topic, self._on_compressed_image, camera_qos
            )
        else:
            self.camera = self.create_subscription(Image, self.settings.camera_topic, self._on_image, camera_qos)
        self.boxes = self.create_subscription(TrackedBox, "tracked_box", self._on_box, RESULT_QOS)
        self.selections = self.create_publisher(SelectTarget, "select_target", COMMAND_QOS)
        # Logger names are the node's namespace and name joined with dots: /drone1 -> drone1.siamrpnpp_tracker.
        namespace = self.get_namespace().strip("/").replace("/", ".")
        self.tracker_logger = ".".join(part for part in (namespace, self.settings.tracker_name) if part)
        self.create_subscription(Log, "/rosout", self._on_log, ROSOUT_QOS)

    # ------------------------------------------------------------------ ROS thread
    def _store(self, msg: Any, decode: Callable[[], Any]) -> None:
        header = msg.header
        self.frames.put(
            CameraFrame(
                self._sequence,
                int(header.stamp.sec),
                int(header.stamp.nanosec),
                str(header.frame_id),
                time.monotonic(),
                decode,
            )
        )
        self._sequence += 1
        self.on_change()

    def _on_image(self, msg: Image) -> None:
        self._store(msg, lambda: image_to_bgr(msg))

    def _on_compressed_image(self, msg: CompressedImage) -> None:
        self._store(msg, lambda: compressed_to_bgr(msg))

    def _on_box(self, msg: TrackedBox) -> None:
        latency = msg.processing_latency.sec + msg.processing_latency.nanosec * 1e-9
        self.targets.update(
            TargetUpdate(
                target_id=int(msg.target_id),
                status=STATUS_NAMES.get(msg.status, f"STATUS_{msg.status}"),
                x=float(msg.x),
                y=float(msg.y),
                width=float(msg.width),
                height=float(msg.height),
                score=float(msg.score),
                age=int(msg.age),
                stamp_sec=int(msg.header.stamp.sec),
                stamp_nanosec=int(msg.header.stamp.nanosec),
                latency=float(latency),
                received=time.monotonic(),
            )
        )
        self.on_change()

    def _on_log(self, msg: Log) -> None:
        if msg.name == self.tracker_logger and msg.level >= Log.INFO:
            self.targets.note(LOG_LEVELS.get(msg.level, str(msg.level)), str(msg.msg), time.monotonic())
            self.on_change()

    # ------------------------------------------------------------------ web server thread
    @property
    def tracker_listening(self) -> bool:
        """Whether a tracker subscribes to ``select_target`` (else a selection would go nowhere)."""
        return self.selections.get_subscription_count() > 0

    def publish_selection(self, selection: Selection) -> SelectTarget:
        """Publish ``selection``: the header is an exact copy of the shown frame's (zero for cancel)."""
        msg = SelectTarget()
        msg.target_id = selection.target_id
        msg.command = COMMAND_CONSTANTS[selection.command]
        if selection.frame is not None and selection.box is not None:
            msg.header.stamp.sec = selection.frame.stamp_sec
            msg.header.stamp.nanosec = selection.frame.stamp_nanosec
            msg.header.frame_id = selection.frame.frame_id
            msg.x, msg.y, msg.width, msg.height = selection.box
        self.selections.publish(msg)
        return msg

    def topic_names(self) -> dict[str, str]:
        """The resolved names of the camera, ``tracked_box`` and ``select_target`` topics."""
        return {
            "camera": self.camera.topic_name,
            "tracked_box": self.boxes.topic_name,
            "select_target": self.selections.topic_name,
        }


class SpinThread:
    """Spins ``node`` in a daemon thread until ``stop()``."""

    def __init__(self, node: Node) -> None:
        self.executor = SingleThreadedExecutor(context=node.context)
        self.executor.add_node(node)
        self.thread = threading.Thread(target=self._spin, name="console_ros", daemon=True)

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def start(self) -> None:
        """Start spinning in the thread."""
        self.thread.start()

    def stop(self) -> None:
        """Shut the executor down and wait (up to 5 s) for the thread to end."""
        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(timeout=5.0)
