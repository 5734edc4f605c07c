"""Check how many camera-sized images survive between two processes with a DDS set-up.

    python -m siamrpnpp_ros.tools.transport_check                    # the package's large-image profile
    python -m siamrpnpp_ros.tools.transport_check --builtin LARGE_DATA  # Fast DDS built-in transports instead
    python -m siamrpnpp_ros.tools.transport_check --qos reliable --size 1280x720

Starts a subscriber process, then publishes ``--frames`` bgr8 images at ``--rate`` Hz from
this one (after the subscription matched), and prints how many arrived. Runs on its own
ROS domain with localhost discovery, so it does not disturb a running system.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from siamrpnpp_ros.ros.qos import IMAGE_QOS_CHOICES, image_qos
from siamrpnpp_ros.tools.environment import isolated_ros_environment

SUBSCRIBER_WINDOW_S = 3.0  # the subscriber listens this long after the last frame is due


def _subscribe(qos: str, seconds: float) -> int:
    import rclpy
    from sensor_msgs.msg import Image

    received = 0

    def count(_: Image) -> None:
        nonlocal received
        received += 1

    rclpy.init()
    node = rclpy.create_node("transport_check_subscriber")
    node.create_subscription(Image, "transport_check", count, image_qos(qos, depth=5))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.try_shutdown()
    return received


def _publish(qos: str, frames: int, rate: float, width: int, height: int) -> None:
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("transport_check_publisher")
    publisher = node.create_publisher(Image, "transport_check", image_qos(qos, depth=5))
    deadline = time.monotonic() + 15.0
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            raise SystemExit("transport_check: the subscriber was not discovered within 15 s")
        time.sleep(0.05)
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8).tobytes()
    for index in range(frames):
        image = Image(height=height, width=width, encoding="bgr8", step=3 * width)
        image.header.frame_id = str(index)
        image.data = pixels
        publisher.publish(image)
        time.sleep(1.0 / rate)
    node.destroy_node()
    rclpy.try_shutdown()


def main(argv: list[str] | None = None) -> int:
    """Run the check (or, with the hidden ``--subscriber-seconds``, be its subscriber); returns 0."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--builtin",
        metavar="TRANSPORTS",
        help="use FASTDDS_BUILTIN_TRANSPORTS=TRANSPORTS (e.g. DEFAULT, SHM, LARGE_DATA) "
        "instead of the package's profile",
    )
    parser.add_argument("--qos", choices=IMAGE_QOS_CHOICES, default="sensor_data")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second")
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT")
    parser.add_argument("--subscriber-seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.subscriber_seconds is not None:
        print(_subscribe(args.qos, args.subscriber_seconds))
        return 0
    width, height = (int(v) for v in args.size.lower().split("x"))

    env = isolated_ros_environment(1 + (os.getpid() + 25) % 100)
    if args.builtin:
        del env["FASTDDS_DEFAULT_PROFILES_FILE"]
        env["FASTDDS_BUILTIN_TRANSPORTS"] = args.builtin
    os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    os.environ.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    os.environ.update(env)
    window = args.frames / args.rate + 15.0 + SUBSCRIBER_WINDOW_S
    subscriber = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "siamrpnpp_ros.tools.transport_check",
            "--qos",
            args.qos,
            "--subscriber-seconds",
            str(window),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    _publish(args.qos, args.frames, args.rate, width, height)
    received = int(subscriber.communicate()[0].strip() or 0)
    transport = (
        f"FASTDDS_BUILTIN_TRANSPORTS={args.builtin}"
        if args.builtin
        else f"profile {env['FASTDDS_DEFAULT_PROFILES_FILE']}"
    )
    print(
        f"received {received}/{args.frames} {width}x{height} bgr8 images at {args.rate:g} Hz, "
        f"{args.qos} QoS, {transport}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
