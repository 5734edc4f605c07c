"""A camera stand-in: publishes a video file or image folder as stamped images at a fixed rate.

    python -m siamrpnpp_ros.tools.player --video clip.mp4 [--rate 15] [--compressed] [--qos reliable] [--loop]

Each image is stamped with the node clock when it is published, like a camera driver, and
carries ``--frame-id``. Publishing starts once ``--wait-subscribers`` subscribers are
matched (so nothing is lost to discovery) and the program exits 0 after the last frame (with
``--loop``, it starts the video over until stopped).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from siamrpnpp_ros.ros.conversions import bgr_to_compressed, bgr_to_image
from siamrpnpp_ros.ros.qos import IMAGE_QOS_CHOICES, image_qos
from siamrpnpp_ros.ros.shutdown import running_node
from siamrpnpp_ros.sequences import FrameSequence, SequenceError, open_sequence

DEFAULT_RATE_HZ = 10.0


class CameraPlayer(Node):
    """Publishes the frames of a ``FrameSequence`` on ``image`` (or ``image/compressed``)."""

    def __init__(
        self,
        sequence: FrameSequence,
        compressed: bool = False,
        qos: str = "sensor_data",
        frame_id: str = "camera_optical",
    ) -> None:
        super().__init__("camera_player")
        self.sequence = sequence
        self.compressed = compressed
        self.frame_id = frame_id
        topic, kind = ("image/compressed", CompressedImage) if compressed else ("image", Image)
        self.publisher = self.create_publisher(kind, topic, image_qos(qos, depth=2))
        self.published = 0

    def wait_for_subscribers(self, count: int, timeout: float) -> bool:
        """Spin until ``count`` subscribers are matched; False if ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while self.publisher.get_subscription_count() < count:
            if time.monotonic() > deadline:
                return False
            rclpy.spin_once(self, timeout_sec=0.05)
        return True

    def play(self, rate_hz: float, max_frames: int | None = None, loop: bool = False) -> int:
        """Publish every frame, ``rate_hz`` per second (over and over with ``loop``, until
        ``max_frames`` in all); returns how many were published.
        """
        period = 1.0 / rate_hz
        next_time = time.monotonic()
        for index, frame in enumerate(self._frames(loop)):
            if max_frames is not None and index >= max_frames:
                break
            header = self._header()
            message = bgr_to_compressed(frame, header) if self.compressed else bgr_to_image(frame, header)
            self.publisher.publish(message)
            self.published += 1
            next_time += period
            # Keep the executor turning while waiting, as a driver's node would.
            while (remaining := next_time - time.monotonic()) > 0:
                rclpy.spin_once(self, timeout_sec=min(remaining, 0.05))
        return self.published

    def _frames(self, loop: bool) -> Iterator[np.ndarray]:
        while True:
            played = 0
            for frame in self.sequence:
                played += 1
                yield frame
            if not loop or played == 0:
                return

    def _header(self) -> Header:
        return Header(stamp=self.get_clock().now().to_msg(), frame_id=self.frame_id)


def build_parser() -> argparse.ArgumentParser:
    """The player's command-line options (``main`` passes unknown ones to ROS)."""
    parser = argparse.ArgumentParser(prog="player", description=__doc__.split("\n")[0])
    parser.add_argument("--video", required=True, help="video file or image folder")
    parser.add_argument(
        "--rate", type=float, help=f"frames per second (default: the video's, else {DEFAULT_RATE_HZ:g})"
    )
    parser.add_argument("--frames", type=int, help="stop after this many frames")
    parser.add_argument("--loop", action="store_true", help="start the video over after its last frame, until stopped")
    parser.add_argument("--compressed", action="store_true", help="publish JPEG CompressedImage on image/compressed")
    parser.add_argument(
        "--qos",
        choices=IMAGE_QOS_CHOICES,
        default="sensor_data",
        help="publisher reliability (reliable also serves best-effort subscribers)",
    )
    parser.add_argument("--frame-id", default="camera_optical")
    parser.add_argument(
        "--wait-subscribers",
        type=int,
        default=1,
        metavar="N",
        help="wait for N matched subscribers before the first frame (default 1)",
    )
    parser.add_argument("--wait-timeout", type=float, default=60.0, help="seconds to wait for them (default 60)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Play the video; returns the exit status (2 for an unreadable video or a bad rate, 1 without subscribers)."""
    args, ros_args = build_parser().parse_known_args(argv)
    try:
        sequence = open_sequence(args.video)
    except SequenceError as error:
        print(f"player: {error}", file=sys.stderr)
        return 2
    rate = args.rate or sequence.fps or DEFAULT_RATE_HZ
    if rate <= 0:
        print(f"player: --rate must be positive, got {rate}", file=sys.stderr)
        return 2
    rclpy.init(args=[sys.argv[0], *ros_args])
    player = CameraPlayer(sequence, args.compressed, args.qos, args.frame_id)
    with running_node(player):
        if args.wait_subscribers > 0 and not player.wait_for_subscribers(args.wait_subscribers, args.wait_timeout):
            print(
                f"player: no {args.wait_subscribers} subscriber(s) on {player.publisher.topic_name} "
                f"after {args.wait_timeout:g} s",
                file=sys.stderr,
            )
            return 1
        count = player.play(rate, args.frames, args.loop)
        # Reliable samples still in flight would be lost if the process exited right away.
        player.publisher.wait_for_all_acked(Duration(seconds=5.0))
        print(f"player: published {count} frames at {rate:g} fps on {player.publisher.topic_name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
