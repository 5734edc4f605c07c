"""An automatic operator: selects a box on the first image it sees once a tracker listens.

    python -m siamrpnpp_ros.tools.selector --box x,y,w,h [--target-id 1] [--compressed]

This is what a detector or a click in a GUI does: the SelectTarget carries the stamp of the
image the box was drawn on, so the tracker initialises on exactly that image. The selection
is sent once the tracker's ``/diagnostics`` report received images: a camera's first frames
can reach this process but not the tracker while discovery settles, and a selection that
arrives before any image is rejected. ``AutoSelector`` is also used inside the demo process.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from siamrpnpp_ros.msg import SelectTarget
from siamrpnpp_ros.ros.qos import COMMAND_QOS, DIAGNOSTICS_QOS, image_qos
from siamrpnpp_ros.ros.shutdown import running_node


class AutoSelector:
    """Publishes one START selection for ``box``, stamped with the first image ``node`` received
    while a tracker listened, as soon as that tracker reports images of its own.
    """

    def __init__(
        self,
        node: Node,
        box: Sequence[float],
        target_id: int = 1,
        compressed: bool = False,
        qos: str = "sensor_data",
        on_image: Callable[[object], None] | None = None,
    ) -> None:
        self.node = node
        self.box = tuple(float(v) for v in box)
        self.target_id = target_id
        self.selected_header: Header | None = None
        self._first_header: Header | None = None
        self._tracker_has_images = False
        self._on_image = on_image
        self.publisher = node.create_publisher(SelectTarget, "select_target", COMMAND_QOS)
        topic, kind = ("image/compressed", CompressedImage) if compressed else ("image", Image)
        self.subscription = node.create_subscription(kind, topic, self._image_received, image_qos(qos, depth=5))
        self._diagnostics = node.create_subscription(
            DiagnosticArray, "/diagnostics", self._diagnostics_received, DIAGNOSTICS_QOS
        )

    @property
    def tracker_listening(self) -> bool:
        """Whether a tracker subscribes to ``select_target``."""
        return self.publisher.get_subscription_count() > 0

    def _diagnostics_received(self, message: DiagnosticArray) -> None:
        for status in message.status:
            received = next((kv.value for kv in status.values if kv.key == "frames_received"), "0")
            if received.isdigit() and int(received) > 0:
                self._tracker_has_images = True

    def _image_received(self, image: Image | CompressedImage) -> None:
        # Until a tracker listens a selection would be lost: the box belongs to the first image after.
        if self._first_header is None and self.tracker_listening:
            self._first_header = image.header
        if self.selected_header is None and self._first_header is not None and self._tracker_has_images:
            self._select(self._first_header)
        if self._on_image is not None:
            self._on_image(image)

    def _select(self, header: Header) -> None:
        selection = SelectTarget()
        selection.header = header
        selection.target_id = self.target_id
        selection.command = SelectTarget.COMMAND_START
        selection.x, selection.y, selection.width, selection.height = self.box
        self.publisher.publish(selection)
        self.selected_header = header
        self.node.get_logger().info(
            f"selected target {self.target_id} at {self.box} on the image stamped "
            f"{header.stamp.sec}.{header.stamp.nanosec:09d}"
        )


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``x,y,w,h`` as four floats; raises ``argparse.ArgumentTypeError`` otherwise."""
    parts = [p for p in text.replace(" ", "").split(",") if p]
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"expected x,y,w,h, got {text!r}")
    try:
        x, y, w, h = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected four numbers x,y,w,h, got {text!r}") from None
    return x, y, w, h


def main(argv: Sequence[str] | None = None) -> int:
    """Wait for a listening tracker with images of its own, select once and return 0 (also on Ctrl-C)."""
    parser = argparse.ArgumentParser(prog="selector", description=__doc__.split("\n")[0])
    parser.add_argument("--box", type=parse_box, required=True, help="x,y,w,h in pixels (top-left corner)")
    parser.add_argument("--target-id", type=int, default=1)
    parser.add_argument("--compressed", action="store_true", help="watch image/compressed instead of image")
    parser.add_argument("--qos", choices=("sensor_data", "reliable"), default="sensor_data")
    args, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=[sys.argv[0], *ros_args])
    node = rclpy.create_node("auto_selector")
    selector = AutoSelector(node, args.box, args.target_id, args.compressed, args.qos)
    with running_node(node):
        while rclpy.ok() and selector.selected_header is None:
            rclpy.spin_once(node, timeout_sec=0.1)
        selector.publisher.wait_for_all_acked(Duration(seconds=5.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
