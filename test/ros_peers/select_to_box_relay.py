"""Test peer: answers every SelectTarget on `select_target` with a TrackedBox on `tracked_box`.

The TrackedBox copies the selection's header, id and box, so a test can check
that both message types cross a process boundary intact.
"""

from __future__ import annotations

import rclpy
from rclpy.node import Node

from siamrpnpp_ros.msg import SelectTarget, TrackedBox


class SelectToBoxRelay(Node):
    def __init__(self) -> None:
        super().__init__("select_to_box_relay")
        self._publisher = self.create_publisher(TrackedBox, "tracked_box", 10)
        self.create_subscription(SelectTarget, "select_target", self._on_select, 10)

    def _on_select(self, selection: SelectTarget) -> None:
        box = TrackedBox()
        box.header = selection.header
        box.target_id = selection.target_id
        box.x, box.y = selection.x, selection.y
        box.width, box.height = selection.width, selection.height
        box.center_x = selection.x + selection.width / 2.0
        box.center_y = selection.y + selection.height / 2.0
        box.score = 1.0
        box.status = TrackedBox.STATUS_INITIALIZING
        box.age = 1
        self._publisher.publish(box)


def main() -> None:
    rclpy.init()
    node = SelectToBoxRelay()
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
