"""One-command demo: camera player -> tracker node -> tracked boxes, printed and filmed.

    python tools/demo.py                                   # vtest.avi + the bundled default model
    python tools/demo.py --weights model.pth --model r50 --video clip.mp4 --init x,y,w,h

Three processes on a private ROS domain (localhost discovery, the Fast DDS large-image
profile, sensor-data QoS as a camera driver uses): the tracker node, a camera player
(``tools.player``) and this one, which selects the target on the first image it sees
(``tools.selector.AutoSelector``, echoing the image's stamp, sent once the node reports images
of its own), prints every TrackedBox as it arrives and writes an annotated video of the boxes it
received. It stops the node at the end of the video and exits 0 with a summary line.

Without ``--weights`` it runs the package's bundled default model (``DEFAULT_MODEL``, trained
here on generated data; pysot's released checkpoints track far better). Without ``--video``
it plays Debian's ``vtest.avi`` (package opencv-doc, real pedestrian footage) and follows
the person given by ``VTEST_TARGET``; where that file is missing it falls back to the parity
material's synthetic video (``test/data/parity`` in the repository, or ``$SIAMRPNPP_PARITY_DIR``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siamrpnpp_ros.models.config import THIN_NAME_HELP, model_name_argument
from siamrpnpp_ros.ros.conversions import compressed_to_bgr, image_to_bgr
from siamrpnpp_ros.ros.drawing import draw_tracking_overlay
from siamrpnpp_ros.sequences import SequenceError, open_sequence
from siamrpnpp_ros.tools.environment import isolated_ros_environment
from siamrpnpp_ros.tools.node_under_test import stop_process
from siamrpnpp_ros.tracking.factory import DEFAULT_MODEL
from siamrpnpp_ros.tracking.session import TrackStatus

if TYPE_CHECKING:
    import cv2
    import numpy as np
    from builtin_interfaces.msg import Time
    from rclpy.node import Node
    from sensor_msgs.msg import CompressedImage, Image

    from siamrpnpp_ros.msg import TrackedBox

REPO_ROOT = Path(__file__).resolve().parents[2]
PARITY_DIR = Path(os.environ.get("SIAMRPNPP_PARITY_DIR") or REPO_ROOT / "test" / "data" / "parity")
NODE_STARTUP_TIMEOUT_S = 180.0
END_OF_VIDEO_GRACE_S = 10.0  # after the last frame, how long to wait for its box
MAX_PENDING_FRAMES = 300  # frames waiting for their box before being written anyway


VTEST_VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
VTEST_TARGET = "638,240,48,82"  # the person walking on the right of the first frame
VTEST_FRAMES = 300  # 30 s at the file's 10 fps


def default_video(out_dir: Path) -> tuple[str, str | None, int | None]:
    """(video, init box or None for its groundtruth, frame limit): vtest.avi, else the parity video."""
    if VTEST_VIDEO.is_file():
        return str(VTEST_VIDEO), VTEST_TARGET, VTEST_FRAMES
    if not (PARITY_DIR / "make_video.py").is_file():
        raise SystemExit(
            f"demo: neither {VTEST_VIDEO} (apt install opencv-doc) nor the parity material at {PARITY_DIR} "
            "is here; pass --video PATH (and --init x,y,w,h for a video without groundtruth.txt)"
        )
    video = out_dir / "parity_video_s0"
    if not (video / "groundtruth.txt").is_file():
        subprocess.run(
            [sys.executable, str(PARITY_DIR / "make_video.py"), "--out", str(video), "--frames", "60", "--seed", "0"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return str(video), None, None


class AnnotatedVideoWriter:
    """Writes each received frame with the box the tracker returned for it.

    Frames wait (bounded) until their box arrives; a frame the node skipped gets the last
    box, marked as not tracked.
    """

    def __init__(self, path: Path, fps: float) -> None:
        import cv2

        self._cv2 = cv2
        self.path = path
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None
        self._pending: deque[tuple[int, np.ndarray]] = deque()
        self._last_box: TrackedBox | None = None
        self.written = 0

    def add_frame(self, stamp_ns: int, frame: np.ndarray) -> None:
        """Queue ``frame`` for its box; past ``MAX_PENDING_FRAMES`` queued, the oldest is written without waiting."""
        self._pending.append((stamp_ns, frame))
        while len(self._pending) > MAX_PENDING_FRAMES:
            self._write(*self._pending.popleft(), own_box=False)

    def add_box(self, stamp_ns: int, box: TrackedBox) -> None:
        """Write the queued frames up to ``stamp_ns``: that frame with ``box``, earlier ones as not processed."""
        while self._pending and self._pending[0][0] <= stamp_ns:
            frame_stamp, frame = self._pending.popleft()
            if frame_stamp == stamp_ns:
                self._last_box = box
                self._write(frame_stamp, frame, own_box=True)
            else:
                self._write(frame_stamp, frame, own_box=False)

    def close(self) -> None:
        """Write the frames still queued (as not processed) and finish the video file."""
        while self._pending:
            self._write(*self._pending.popleft(), own_box=False)
        if self._writer is not None:
            self._writer.release()

    def _write(self, stamp_ns: int, frame: np.ndarray, own_box: bool) -> None:
        box = self._last_box
        if box is None:
            image = draw_tracking_overlay(frame, None, "IDLE")
        else:
            status = TrackStatus(box.status).name if own_box else "not processed"
            image = draw_tracking_overlay(
                frame,
                (box.x, box.y, box.width, box.height),
                status,
                box.score if own_box else None,
                None,
                box.target_id,
            )
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            height, width = image.shape[:2]
            self._writer = self._cv2.VideoWriter(
                str(self.path), self._cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (width, height)
            )
        self._writer.write(image)
        self.written += 1


def build_parser() -> argparse.ArgumentParser:
    """The demo's command-line options."""
    parser = argparse.ArgumentParser(prog="demo", description="SiamRPN++ ROS 2 tracking demo (no ROS install needed).")
    parser.add_argument("--video", help="video file or image folder (default: Debian's vtest.avi)")
    parser.add_argument("--init", help="x,y,w,h of the target on the first frame (default: first groundtruth.txt line)")
    parser.add_argument("--weights", help="checkpoint for --model (default: the bundled default model)")
    parser.add_argument(
        "--model",
        default=None,
        type=model_name_argument,
        help=f"network of --weights: {THIN_NAME_HELP} (default {DEFAULT_MODEL})",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--rate", type=float, help="camera frames per second (default: the video's, else 10)")
    parser.add_argument("--frames", type=int, help="play only this many frames")
    parser.add_argument("--compressed", action="store_true", help="send JPEG CompressedImage instead of raw images")
    parser.add_argument(
        "--out", default=str(REPO_ROOT / "out" / "demo.mp4"), help="annotated video (default out/demo.mp4)"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")
    parser.add_argument(
        "--lifecycle",
        action="store_true",
        help="run the managed (lifecycle) node and configure and activate it through its lifecycle services",
    )
    return parser


def _stamp_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def bring_up(node: Node, node_process: subprocess.Popen, quiet: bool = False) -> bool:
    """What a lifecycle manager does for the managed tracker: configure, then activate, through
    its ``change_state`` service. Returns False (with a message) if a transition fails or the
    node exits first.
    """
    import rclpy
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    from rclpy.client import Client

    from siamrpnpp_ros.ros.node import NODE_NAME  # deferred: loads rclpy (see main)

    # ChangeState is untyped (generated messages): its request and response are Any.
    client: Client[Any, Any] = node.create_client(ChangeState, f"/{NODE_NAME}/change_state")
    deadline = time.monotonic() + NODE_STARTUP_TIMEOUT_S
    for label, transition in (
        ("configure", Transition.TRANSITION_CONFIGURE),
        ("activate", Transition.TRANSITION_ACTIVATE),
    ):
        started = time.monotonic()
        future = None
        while future is None or not future.done():
            if node_process.poll() is not None or time.monotonic() > deadline:
                print(f"demo: the tracker node did not {label} (exit code {node_process.poll()})", file=sys.stderr)
                return False
            if future is None and client.service_is_ready():
                started = time.monotonic()
                future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
            rclpy.spin_once(node, timeout_sec=0.1)
        response = future.result()
        if response is None or not response.success:
            print(f"demo: {label} failed; the tracker node logged why", file=sys.stderr)
            return False
        if not quiet:
            print(f"demo: {label} took {time.monotonic() - started:.2f} s", flush=True)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit status."""
    args = build_parser().parse_args(argv)
    # Before rclpy starts, and inherited by the children.
    os.environ.update(isolated_ros_environment(1 + (os.getpid() + 50) % 100))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))

    # deferred: the selector loads rclpy, which must start in the ROS environment set above
    from siamrpnpp_ros.tools.selector import parse_box

    out_path = Path(args.out)
    if args.weights is not None and args.model is None:
        raise SystemExit("demo: --weights needs --model (the network the checkpoint is for)")
    model = args.model or DEFAULT_MODEL
    video, init, frame_limit = args.video, args.init, args.frames
    if video is None:
        video, default_init, default_frames = default_video(out_path.parent / "demo_material")
        init = init or default_init
        frame_limit = frame_limit or default_frames
    try:
        sequence = open_sequence(video)
    except SequenceError as error:
        raise SystemExit(f"demo: {error}") from None
    box: Sequence[float]
    if init:
        box = parse_box(init)
    elif sequence.groundtruth is not None and len(sequence.groundtruth):
        box = tuple(float(v) for v in sequence.groundtruth[0])
    else:
        raise SystemExit(f"demo: {video} has no groundtruth.txt; pass --init x,y,w,h")
    rate = args.rate or sequence.fps or 10.0

    node_command = [
        sys.executable,
        "-m",
        "siamrpnpp_ros.tracker_node",
        *(["--lifecycle"] if args.lifecycle else []),
        "--ros-args",
        "-p",
        f"model:={model}",
        *(["-p", f"weights:={args.weights}"] if args.weights else []),
        "-p",
        f"device:={args.device}",
        "-p",
        f"use_compressed:={'true' if args.compressed else 'false'}",
        # The selector waits for the node's diagnostics to report images: report often.
        "-p",
        "diagnostics_period:=0.2",
        "--log-level",
        "warn" if args.quiet else "info",
    ]
    node_process = subprocess.Popen(node_command, cwd=REPO_ROOT)
    player_process: subprocess.Popen | None = None

    import rclpy

    # deferred: ROS messages and rclpy, loaded in the ROS environment set above (and not for --help)
    from siamrpnpp_ros.msg import TrackedBox
    from siamrpnpp_ros.ros.qos import RESULT_QOS
    from siamrpnpp_ros.tools.selector import AutoSelector

    rclpy.init(args=[sys.argv[0]])
    node = rclpy.create_node("demo_monitor")
    writer = AnnotatedVideoWriter(out_path, rate)
    frame_indices: dict[int, int] = {}  # stamp -> frame index, for printing
    boxes: list[TrackedBox] = []
    latencies: list[float] = []
    first_box_time: list[float] = []

    last_image_at = [time.monotonic()]

    def on_image(image: Image | CompressedImage) -> None:
        last_image_at[0] = time.monotonic()
        stamp = _stamp_ns(image.header.stamp)
        frame_indices.setdefault(stamp, len(frame_indices))
        if len(frame_indices) > 10_000:  # bounded on long videos
            frame_indices.pop(next(iter(frame_indices)))
        writer.add_frame(stamp, compressed_to_bgr(image) if args.compressed else image_to_bgr(image))

    def on_box(box: TrackedBox) -> None:
        if box.status == TrackStatus.IDLE:
            return
        stamp = _stamp_ns(box.header.stamp)
        boxes.append(box)
        first_box_time.append(time.monotonic()) if not first_box_time else None
        latency = box.processing_latency.sec + box.processing_latency.nanosec * 1e-9
        latencies.append(latency)
        writer.add_box(stamp, box)
        if not args.quiet:
            elapsed = time.monotonic() - first_box_time[0]
            fps = (len(boxes) - 1) / elapsed if elapsed > 0 else 0.0
            print(
                f"frame {frame_indices.get(stamp, -1):4d}  {TrackStatus(box.status).name:<12} "
                f"x={box.x:7.1f} y={box.y:7.1f} w={box.width:6.1f} h={box.height:6.1f}  "
                f"score {box.score:.3f}  latency {1000 * latency:5.0f} ms  {fps:5.1f} fps",
                flush=True,
            )

    selector = AutoSelector(node, box, target_id=1, compressed=args.compressed, qos="sensor_data", on_image=on_image)
    node.create_subscription(TrackedBox, "tracked_box", on_box, RESULT_QOS)
    exit_code = 0
    try:
        if args.lifecycle and not bring_up(node, node_process, quiet=args.quiet):
            return 1
        deadline = time.monotonic() + NODE_STARTUP_TIMEOUT_S
        while not (selector.tracker_listening and node.count_publishers("tracked_box") > 0):
            if node_process.poll() is not None:
                print(f"demo: the tracker node exited with {node_process.returncode}", file=sys.stderr)
                return node_process.returncode or 1
            if time.monotonic() > deadline:
                print("demo: the tracker node did not start in time", file=sys.stderr)
                return 1
            rclpy.spin_once(node, timeout_sec=0.1)

        player_command = [
            sys.executable,
            "-m",
            "siamrpnpp_ros.tools.player",
            "--video",
            str(video),
            "--rate",
            str(rate),
            "--wait-subscribers",
            "2",
            "--qos",
            "sensor_data",
        ]
        if frame_limit:
            player_command += ["--frames", str(frame_limit)]
        if args.compressed:
            player_command.append("--compressed")
        player_process = subprocess.Popen(player_command, cwd=REPO_ROOT)
        while player_process.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
            if node_process.poll() is not None:
                print(f"demo: the tracker node exited with {node_process.returncode}", file=sys.stderr)
                exit_code = 1
                break
        # End of the video: the player has exited, but its last frames and their boxes may still
        # be on their way. Wait until no image has come for three frame periods and the box of
        # the newest image is in (or give up after a grace period).
        grace_end = time.monotonic() + END_OF_VIDEO_GRACE_S
        quiet_s = 3.0 / rate
        while time.monotonic() < grace_end and frame_indices:
            newest = max(frame_indices)
            settled = time.monotonic() - last_image_at[0] > quiet_s
            if settled and any(_stamp_ns(b.header.stamp) == newest for b in boxes[-3:]):
                break
            rclpy.spin_once(node, timeout_sec=0.05)
    except KeyboardInterrupt:
        exit_code = 130
    finally:
        if player_process is not None:
            stop_process(player_process)
        node_code = stop_process(node_process)
        writer.close()
        node.destroy_node()
        rclpy.try_shutdown()

    frames = len(frame_indices)
    statuses = [TrackStatus(b.status).name for b in boxes]
    counts = ", ".join(
        f"{name} {statuses.count(name)}" for name in ("INITIALIZING", "TRACKING", "LOST") if statuses.count(name)
    )
    elapsed = (time.monotonic() - first_box_time[0]) if first_box_time else 0.0
    median_latency = 1000 * statistics.median(latencies) if latencies else 0.0
    print(
        f"demo: {frames} frames sent, {len(boxes)} boxes ({counts or 'none'}), "
        f"{max(0, frames - len(boxes))} frames not processed, {len(boxes) / elapsed if elapsed else 0:.1f} fps, "
        f"median latency {median_latency:.0f} ms, video {out_path} ({writer.written} frames); node exit {node_code}",
        flush=True,
    )
    if exit_code == 0 and not boxes:
        print("demo: no tracked boxes were received", file=sys.stderr)
        exit_code = 1
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
