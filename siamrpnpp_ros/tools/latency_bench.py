r"""End-to-end latency through ROS: an image's ``publish()`` to its ``/tracked_box``.

    python -m siamrpnpp_ros.tools.latency_bench                # vtest.avi, default model, 640x480, 30 Hz
    python -m siamrpnpp_ros.tools.latency_bench --weights model.pth --model alex --video clip.mp4 \\
        --frames 300 --rate 30 --transports raw,compressed --json out/latency.json

For each transport (``raw``: ``sensor_msgs/Image`` bgr8; ``compressed``: ``CompressedImage``
JPEG) the real tracker node is started in its own process (``python -m
siamrpnpp_ros.tracker_node``) on a private ROS domain with localhost discovery and the Fast
DDS large-image profile (``tools.node_under_test``). This process plays the camera: it publishes
the video's frames (resized to ``--width`` x ``--height``, played forwards then backwards so
the motion never jumps) at ``--rate`` Hz, each stamped with the ROS clock as a driver does,
selects the target on ``/select_target`` once the node is discovered, and records, for every
``/tracked_box``, the time it arrived here minus the time the frame with that header stamp
was handed to ``publish()`` (one clock, ``time.monotonic``, in one process). Messages are
built before the run, so the figures hold no encoding or message-filling work; a real
camera driver pays that before its ``publish()``.

The node keeps one latest-frame slot: while the tracker works on a frame, newer frames
replace each other there and only the newest is processed next. When the tracker is slower
than the camera (a CPU), most frames are dropped, and a processed frame first waits in the
slot until the tracker is free (up to one camera period). Every figure is over the frames
that got a box; ``dropped`` counts the others. The columns (medians unless p90):

``e2e``          ``publish()`` here -> the box received here.
``node``         the box's ``processing_latency``: the frame's arrival in the node's image
                 callback -> the box published (slot wait + decoding + the tracker's step).
``e2e-node``     per frame, ``e2e`` - ``node``: the image's DDS delivery and the node's
                 executor up to its callback, plus the box's delivery and this process's
                 executor: the ROS transport cost.
``wait``         time in the slot, estimated per frame as ``node`` minus the interval since
                 the previous box (the worker takes the next frame as soon as it has
                 published a box); 0 when the tracker was idle when the frame arrived.
``work``         ``node`` - ``wait``: decoding the message + the tracker's step + publishing.
``step``         the model work: the tracker's step as it ran in the node (its /diagnostics
                 means over the measured window), of the frame's kind: a LOST box's frame
                 costs a lost search (several tiles), a TRACKING box's a normal step.
                 Without those figures, ``model`` (below) stands in.
``ros``          per frame, ``e2e`` - ``wait`` - ``step``: the ROS overhead, i.e. the
                 transport both ways plus the node's work around the model (decoding the
                 message, publishing, hand-over between threads), to be kept under 5 ms.
                 The slot wait is left out: it comes from the camera's phase against a
                 tracker slower than the camera, and is 0 where the tracker keeps up.
                 (Before issue #29 this column subtracted ``model`` whatever the frame's
                 kind, so it counted a lost frame's extra network passes as ROS overhead.)

``model`` (under the table) is ``MultiTargetTracker.step()`` timed in this process on the
same frames with the node's settings, before the node starts (``--model-frames``; no ROS).
Under the table, TRACKING and LOST boxes are also reported apart: count, step, e2e p50/p90.

``--vanish-after N`` plays a sequence in which the target vanishes for good: after the
video's first ``N`` frames, the camera pans slowly over the first frame with the target
painted out (the mean colour over its selection box), back and forth, until the run ends,
so the target is LOST on most measured frames (issue #29's "vanishes" case).

``decode`` (under the table) is ``image_to_bgr`` / ``compressed_to_bgr`` timed here on the
same messages: the share of ``work`` that is conversion. Timings on a shared machine are
not comparable; the load average is printed with them.

``--targets N`` selects N targets (the node runs with ``max_targets:=N``): target 1 is the
video's object, the others patches spread over the image (``benchmark.targets.target_boxes``).
The figures are taken on target 1's boxes (all of an image's boxes go out together after one
batched step), and ``model`` is then ``MultiTargetTracker.step()`` with the N targets.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from siamrpnpp_ros.tracker_node import quiet_openmp_waits

# The node's OpenMP wait policy also for the in-process model timing (before torch loads).
quiet_openmp_waits()

from siamrpnpp_ros.benchmark.lost import _target_painted_out  # noqa: E402
from siamrpnpp_ros.benchmark.report import _load, format_cell, markdown_row  # noqa: E402
from siamrpnpp_ros.benchmark.targets import target_boxes  # noqa: E402
from siamrpnpp_ros.models.config import THIN_NAME_HELP, model_name_argument  # noqa: E402
from siamrpnpp_ros.ros.conversions import (  # noqa: E402
    bgr_to_compressed,
    bgr_to_image,
    check_image,
    compressed_to_bgr,
    image_to_bgr,
)
from siamrpnpp_ros.sequences import SequenceError, open_sequence  # noqa: E402
from siamrpnpp_ros.tools.demo import default_video  # noqa: E402
from siamrpnpp_ros.tools.node_under_test import (  # noqa: E402
    isolated_domain,
    node_parameter_argument,
    pick_domain_id,
    ros_arguments,
    tracker_node_under_test,
)
from siamrpnpp_ros.tracking.factory import DEFAULT_MODEL  # noqa: E402
from siamrpnpp_ros.tracking.multi import MultiTargetTracker  # noqa: E402

PROGRAM = "latency_bench"
REPO_ROOT = Path(__file__).resolve().parents[2]
MATERIAL_DIR = REPO_ROOT / "out" / "demo_material"  # the demo's folder: its fallback video is made once
TRANSPORTS = ("raw", "compressed")
FRAME_ID = "camera_optical"
NODE_STARTUP_TIMEOUT_S = 180.0  # importing torch and loading the model on a busy machine
PREROLL_FRAMES = 3  # frames published before the selection, so the node has cached some
SELECT_RETRY_S = 15.0  # re-send the selection if no INITIALIZING box came back by then
INIT_TIMEOUT_S = 90.0
TAIL_TIMEOUT_S = 60.0  # after the last measured frame: until its box or a newer one arrives
DIAGNOSTICS_PERIOD_S = 0.25
COLUMNS = (
    "image",
    "sent",
    "boxes",
    "dropped",
    "e2e p50",
    "e2e p90",
    "node p50",
    "e2e-node p50",
    "wait p50",
    "work p50",
    "step p50",
    "ros p50",
)

STATUS_COLUMNS = ("image, status", "boxes", "step", "e2e p50", "e2e p90", "ros p50")


# ----------------------------------------------------------------------------- input frames
@dataclass
class Material:
    """The frames to publish (BGR, ``--width`` x ``--height``), the target's box on each, the model."""

    frames: list[np.ndarray]
    boxes: np.ndarray | None  # (N, 4) x, y, w, h in the resized frames, from groundtruth.txt
    init_box: tuple[float, float, float, float] | None  # else this box on every frame
    video: str
    model: str
    weights: str | None  # None: the node's bundled weights for ``model``
    vanish_from: int | None = None  # frames from this index on hold no target (``--vanish-after``)

    def play_index(self, index: int) -> int:
        """The frame shown ``index``-th: forwards then backwards; with ``vanish_from``, once the
        target has vanished, back and forth over the frames without it only.
        """
        count = len(self.frames)
        if self.vanish_from is None or index < self.vanish_from:
            return pingpong_index(count, index)
        return self.vanish_from + pingpong_index(count - self.vanish_from, index - self.vanish_from)


def pingpong_index(count: int, index: int) -> int:
    """Frame ``index`` of the sequence played forwards, then backwards, and so on (no jump)."""
    if count <= 1:
        return 0
    period = 2 * (count - 1)
    position = index % period
    return position if position < count else period - position


def resolve_model(args: argparse.Namespace) -> tuple[str, str | None]:
    """(model, weights) as the demo picks them: ``--weights`` (with ``--model``), else the
    bundled weights of ``--model`` or of the default model.
    """
    if args.weights and not args.model:
        raise SystemExit(f"{PROGRAM}: --weights needs --model (the network the checkpoint is for)")
    return args.model or DEFAULT_MODEL, args.weights or None


def load_material(args: argparse.Namespace) -> Material:
    """The frames, the selection box and the reference model the run plays (from ``--video``/``--init``)."""
    import cv2

    from siamrpnpp_ros.tools.selector import parse_box  # deferred: the selector loads rclpy (not for --help)

    model, weights = resolve_model(args)
    video, init = args.video, args.init
    if video is None:
        video, default_init, _ = default_video(MATERIAL_DIR)
        init = init or default_init
    try:
        sequence = open_sequence(video)
    except SequenceError as error:
        raise SystemExit(f"{PROGRAM}: {error}") from None
    frames: list[np.ndarray] = []
    scale = np.ones(4)
    for frame in sequence:
        height, width = frame.shape[:2]
        scale = np.array([args.width / width, args.height / height] * 2)
        if (width, height) != (args.width, args.height):
            frame = cv2.resize(frame, (args.width, args.height), interpolation=cv2.INTER_AREA)
        frames.append(np.ascontiguousarray(frame))
        if len(frames) >= args.distinct_frames:
            break
    if not frames:
        raise SystemExit(f"{PROGRAM}: {video} has no frames")
    boxes = init_box = None
    if init:
        init_box = tuple(float(v) for v in np.array(parse_box(init)) * scale)
    elif sequence.groundtruth is not None and len(sequence.groundtruth) >= len(frames):
        boxes = sequence.groundtruth[: len(frames)] * scale
    else:  # no ground truth: the middle of the image
        init_box = (args.width * 3 / 8, args.height * 3 / 8, args.width / 4, args.height / 4)
    return Material(frames, boxes, init_box, str(video), model, weights)  # type: ignore[arg-type]


def vanish_frames(material: Material, after: int, count: int) -> None:
    """Keep the first ``after`` frames, then ``count`` frames of a slow pan over the first frame
    with the target painted out (``--vanish-after``): the target is gone for good.
    """
    import cv2

    if after < 1 or after >= len(material.frames):
        raise SystemExit(f"{PROGRAM}: --vanish-after must be in 1..{len(material.frames) - 1}")
    empty = _target_painted_out(material.frames[0], _box_for(material, 0))
    height, width = empty.shape[:2]
    zoom = 1.25  # a crop 1/1.25 of the frame, moved sideways: a camera panning slowly
    crop_w, crop_h = int(width / zoom), int(height / zoom)
    pan = [
        cv2.resize(
            empty[(height - crop_h) // 2 : (height - crop_h) // 2 + crop_h, x : x + crop_w],
            (width, height),
            interpolation=cv2.INTER_LINEAR,
        )
        for x in np.linspace(0, width - crop_w, max(2, count)).astype(int)
    ]
    material.frames = material.frames[:after] + pan
    material.vanish_from = after
    if material.boxes is not None:  # boxes are only read for the selection, on the first frames
        material.boxes = material.boxes[:after]


def build_messages(frames: Sequence[np.ndarray], transport: str, jpeg_quality: int) -> list[Any]:
    """One message per distinct frame, built now so that no encoding happens while measuring."""
    if transport == "raw":
        return [bgr_to_image(frame) for frame in frames]
    return [bgr_to_compressed(frame, codec="jpeg", quality=jpeg_quality) for frame in frames]


# ----------------------------------------------------------------------------- node
def node_parameters(args: argparse.Namespace, material: Material, transport: str) -> list[str]:
    """``name:=value`` for the node; ``--param`` entries come last and win."""
    return [
        f"model:={material.model}",
        *([f"weights:={material.weights}"] if material.weights else []),
        f"device:={args.device}",
        f"use_compressed:={'true' if transport == 'compressed' else 'false'}",
        f"image_qos:={args.qos}",
        # A selection's catch-up over cached frames is not what is measured here.
        "max_catch_up_frames:=0",
        *([f"max_targets:={args.targets}"] if args.targets > 1 else []),
        f"diagnostics_period:={DIAGNOSTICS_PERIOD_S}",
        *args.param,
    ]


# ----------------------------------------------------------------------------- model reference
def measure_reference(
    args: argparse.Namespace,
    material: Material,
    transports: Sequence[str],
    messages: dict[str, list[Any]],
    domain_id: int,
) -> dict[str, Any]:
    """The tracker's step and the message decoding, timed in this process without ROS transport.

    The node's settings come from the node's own parameter code (``declare_node_parameters``
    on a throw-away node given the same ``-p`` arguments), and the tracker is built as the
    node builds it, so the step is the one the node runs.
    """
    reference: dict[str, Any] = {}
    for transport in transports:
        decode = (lambda m: image_to_bgr(m, check_image(m))) if transport == "raw" else compressed_to_bgr
        samples = []
        for index in range(max(10, min(60, len(messages[transport]) * 3))):
            message = messages[transport][index % len(messages[transport])]
            start = time.perf_counter()
            decode(message)
            samples.append(time.perf_counter() - start)
        reference[f"decode_{transport}_ms"] = 1e3 * statistics.median(samples)
    if args.model_frames <= 0:
        return reference

    import rclpy

    # deferred: ros.parameters loads ROS messages (not for --help)
    from siamrpnpp_ros.ros.parameters import build_tracker_for, declare_node_parameters

    with isolated_domain(domain_id):
        context = rclpy.Context()
        rclpy.init(context=context, domain_id=domain_id)
        try:
            node = rclpy.create_node(
                "latency_bench_reference",
                context=context,
                use_global_arguments=False,
                cli_args=ros_arguments(node_parameters(args, material, "raw")),
            )
            settings = declare_node_parameters(node)
            node.destroy_node()
        finally:
            context.try_shutdown()
    # The node's core: one target is exactly TrackingSession.step(); N share a batched pass.
    targets = MultiTargetTracker(build_tracker_for(settings), settings.policy, max(1, args.targets))
    for target_id, box in enumerate(_boxes_for(material, 0, args.targets), start=1):
        targets.add(material.frames[0], box, target_id, 0)
    targets.step(material.frames[material.play_index(1)], 1)  # warm-up, as the node does
    samples, wide = [], 0
    for index in range(2, 2 + args.model_frames):
        frame = material.frames[material.play_index(index)]
        start = time.perf_counter()
        results = targets.step(frame, index)
        samples.append(time.perf_counter() - start)
        wide += bool(results[0].search_wide)
    reference.update(
        {
            "model_ms": 1e3 * statistics.median(samples),
            "model_p90_ms": 1e3 * float(np.percentile(samples, 90)),
            "model_frames": len(samples),
            "model_wide_searches": wide,
        }
    )
    return reference


def _boxes_for(material: Material, frame_index: int, count: int) -> list[tuple[float, ...]]:
    """The target's box on that frame, then ``count - 1`` more spread over the image."""
    height, width = material.frames[0].shape[:2]
    return target_boxes(_box_for(material, frame_index), count, width, height)


def _box_for(material: Material, frame_index: int) -> tuple[float, float, float, float]:
    if material.init_box is not None:
        return material.init_box
    assert material.boxes is not None
    return tuple(float(v) for v in material.boxes[frame_index])  # type: ignore[return-value]


# ----------------------------------------------------------------------------- one run
@dataclass
class RunRecord:
    """What one transport's run observed (times: ``time.monotonic`` seconds in this process)."""

    transport: str
    message_bytes: int
    published_total: int = 0
    window: list[tuple[int, float]] = field(default_factory=list)  # measured frames: (stamp_ns, publish time)
    # Every non-IDLE box in arrival order: (stamp_ns, arrival time, processing_latency s, status).
    boxes: list[tuple[int, float, float, int]] = field(default_factory=list)
    node_stats: dict[str, str] = field(default_factory=dict)  # the node's last /diagnostics values
    # Every /diagnostics period of the node: (arrival time here, its values).
    node_periods: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    startup_s: float = 0.0  # node start -> matched both ways
    window_publish_rate: float = math.nan  # Hz actually achieved over the measured frames


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def run_transport(
    args: argparse.Namespace, material: Material, transport: str, messages: list[Any], domain_id: int, log_dir: Path
) -> RunRecord:
    """Start a node for ``transport``, stream frames at ``args.rate`` and record every box."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CompressedImage, Image
    from tqdm import tqdm

    # deferred: ROS messages and rclpy, only needed when a run starts (not for --help)
    from siamrpnpp_ros.msg import SelectTarget, TrackedBox
    from siamrpnpp_ros.ros.qos import COMMAND_QOS, DIAGNOSTICS_QOS, RESULT_QOS, image_qos

    record = RunRecord(transport, len(messages[0].data))
    log_path = log_dir / f"node_{transport}.log"
    say = (lambda text: None) if args.quiet else (lambda text: tqdm.write(f"{PROGRAM}: {text}", file=sys.stderr))

    with tracker_node_under_test(
        node_parameters(args, material, transport),
        log_path,
        domain_id=domain_id,
        observer_name="latency_bench_camera",
        log_level="warn",
    ) as under_test:
        process, observer, node = under_test.process, under_test.observer, under_test.observer.node
        progress: Any = None  # the tqdm bar while streaming

        def fail(reason: str) -> SystemExit:
            return SystemExit(f"{PROGRAM}: {transport}: {process.failure(reason)}")

        try:
            kind, topic = (Image, "image") if transport == "raw" else (CompressedImage, "image/compressed")
            images = node.create_publisher(kind, topic, image_qos(args.qos, depth=2))
            selections = node.create_publisher(SelectTarget, "select_target", COMMAND_QOS)
            init_received: list[float] = []
            initialized: set[int] = set()  # targets whose INITIALIZING box came back

            def on_box(box: TrackedBox) -> None:
                arrived = time.monotonic()
                if box.status == TrackedBox.STATUS_IDLE:
                    return
                if box.status == TrackedBox.STATUS_INITIALIZING:
                    initialized.add(box.target_id)
                    if len(initialized) == args.targets and not init_received:
                        init_received.append(arrived)
                if box.target_id != 1:  # the figures are target 1's (see the module docstring)
                    return
                latency = box.processing_latency.sec + box.processing_latency.nanosec * 1e-9
                record.boxes.append((_stamp_ns(box.header.stamp), arrived, latency, int(box.status)))
                if progress is not None:
                    progress.set_postfix(boxes=len(record.boxes), refresh=False)

            def on_diagnostics(array: DiagnosticArray) -> None:
                for status in array.status:
                    if "siamrpnpp_tracker" in status.name:
                        record.node_stats = {kv.key: kv.value for kv in status.values}
                        record.node_periods.append((time.monotonic(), record.node_stats))

            box_subscription = node.create_subscription(TrackedBox, "tracked_box", on_box, RESULT_QOS)
            node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, DIAGNOSTICS_QOS)

            def matched() -> bool:
                return (
                    images.get_subscription_count() > 0
                    and selections.get_subscription_count() > 0
                    and box_subscription.get_publisher_count() > 0
                )

            say(f"{transport}: starting the tracker node (domain {domain_id})")
            record.startup_s = observer.wait_for_endpoints(process, matched, NODE_STARTUP_TIMEOUT_S, fail)
            say(
                f"{transport}: node matched after {record.startup_s:.1f} s; streaming {args.width}x{args.height} "
                f"at {args.rate:g} Hz"
            )

            period = 1.0 / args.rate
            published: dict[int, float] = {}  # stamp -> publish time, every frame of the run
            headers: list[Any] = []
            last_stamp = 0
            selected_at: float | None = None
            window_index = 0  # frames published after the INITIALIZING box arrived
            last_measured: int | None = None
            progress = tqdm(
                total=args.frames,
                desc=f"{transport} {args.width}x{args.height}@{args.rate:g}Hz",
                unit="frame",
                file=sys.stderr,
                leave=False,
                disable=args.quiet,
            )

            def publish() -> None:
                nonlocal last_stamp, window_index, last_measured
                index = record.published_total
                message = messages[material.play_index(index)]
                stamp_ns = max(node.get_clock().now().nanoseconds, last_stamp + 1)
                last_stamp = stamp_ns
                message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
                message.header.frame_id = FRAME_ID
                now = time.monotonic()
                images.publish(message)
                published[stamp_ns] = now
                headers.append((index, stamp_ns))
                record.published_total += 1
                if init_received and now > init_received[0]:
                    if args.warmup <= window_index < args.warmup + args.frames:
                        record.window.append((stamp_ns, now))
                        last_measured = stamp_ns
                        progress.update(1)
                    window_index += 1

            def resolved() -> bool:
                """The last measured frame has its box, or a newer frame has one (it was dropped)."""
                return (
                    last_measured is not None
                    and len(record.window) == args.frames
                    and any(stamp >= last_measured for stamp, *_ in record.boxes[-3:])
                )

            def select() -> None:
                nonlocal selected_at
                frame_index, stamp_ns = headers[-1]
                boxes = _boxes_for(material, material.play_index(frame_index), args.targets)
                for target_id, box in enumerate(boxes, start=1):
                    if target_id in initialized:
                        continue
                    selection = SelectTarget()
                    selection.header.stamp.sec, selection.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
                    selection.header.frame_id = FRAME_ID
                    selection.target_id = target_id
                    selection.command = SelectTarget.COMMAND_START
                    selection.x, selection.y, selection.width, selection.height = box
                    selections.publish(selection)
                selected_at = time.monotonic()

            next_due = time.monotonic()
            streaming_since = next_due
            tail_deadline: float | None = None
            while True:
                now = time.monotonic()
                if process.process.poll() is not None:
                    raise fail("the tracker node stopped")
                if len(record.window) == args.frames:
                    if resolved():
                        break
                    tail_deadline = tail_deadline or now + TAIL_TIMEOUT_S
                    if now > tail_deadline:
                        say(f"{transport}: no box for the last measured frame within {TAIL_TIMEOUT_S:.0f} s")
                        break
                if not init_received:
                    if record.published_total >= PREROLL_FRAMES and (
                        selected_at is None or now - selected_at > SELECT_RETRY_S
                    ):
                        select()
                    if now - streaming_since > INIT_TIMEOUT_S:
                        raise fail(f"no INITIALIZING box within {INIT_TIMEOUT_S:.0f} s of streaming")
                if now >= next_due:
                    publish()
                    next_due += period
                    if time.monotonic() > next_due + period:  # fell behind: go on at the rate, no burst
                        next_due = time.monotonic()
                    continue
                observer.spin_once(min(next_due - now, 0.05))
            progress.close()
            progress = None
            # The node's counters (frames received, skipped, rejected) once the last frames are in.
            end = time.monotonic() + 3 * DIAGNOSTICS_PERIOD_S
            while time.monotonic() < end:
                observer.spin_once()
            record.window_publish_rate = _rate([t for _, t in record.window])
            return record
        finally:
            if progress is not None:
                progress.close()


def _rate(times: Sequence[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else math.nan


# ----------------------------------------------------------------------------- statistics
def analyse(record: RunRecord, reference: dict[str, Any]) -> dict[str, Any]:
    """Per processed frame in the measured window: e2e, node, e2e-node, wait, work, step, ros (ms);
    the run's percentiles, and the same for TRACKING and LOST boxes apart.
    """
    from siamrpnpp_ros.msg import TrackedBox  # deferred: ROS messages (not for --help)

    tracking, lost = TrackedBox.STATUS_TRACKING, TrackedBox.STATUS_LOST
    publish_times = dict(record.window)
    model_ms = reference.get("model_ms", math.nan)

    # The node's own split (its /diagnostics means per period, over the measured window): the
    # tracker step as it ran inside the node, for lost and for normal frames apart, so that
    # e2e - wait - step is what ROS adds around the model whatever the frame's kind and the
    # machine's load, and node step - model is how much slower the step ran in the node.
    window_start = record.window[0][1] if record.window else math.inf
    window_end = max((arrived for _, arrived, _, _ in record.boxes), default=-math.inf)
    periods = [
        values
        for arrived, values in record.node_periods
        if window_start <= arrived <= window_end + DIAGNOSTICS_PERIOD_S
        and float(values.get("tracker_step_mean_ms", "0") or 0) > 0
    ]

    def node_mean(key: str, weight: str | None = None) -> float:
        """The median over the periods of ``key``; with ``weight``, only periods where it is > 0.
        A mean of 0 is a period without such frames (the node writes 0.0 then), not a sample.
        """
        values = [
            float(v[key])
            for v in periods
            if v.get(key) and float(v[key]) > 0 and (weight is None or int(v.get(weight, "0")) > 0)
        ]
        return float(np.median(values)) if values else math.nan

    node_step_ms = node_mean("tracker_step_mean_ms")
    lost_frames_key = "lost_frames_in_period"
    step_by_status = {
        lost: node_mean("lost_step_mean_ms", lost_frames_key),
        tracking: node_mean("tracking_step_mean_ms"),
    }
    for status, value in list(step_by_status.items()):
        if not math.isfinite(value) or value <= 0:  # an older node, or no such frames: the reference
            step_by_status[status] = node_step_ms if math.isfinite(node_step_ms) else model_ms

    frames: list[dict[str, Any]] = []
    previous_arrival: float | None = None
    for stamp_ns, arrived, latency, status in record.boxes:
        if previous_arrival is not None and stamp_ns in publish_times and status in (tracking, lost):
            e2e = arrived - publish_times[stamp_ns]
            wait = max(0.0, latency - (arrived - previous_arrival))
            step_ms = step_by_status[status]
            frames.append(
                {
                    "stamp_ns": stamp_ns,
                    "status": status,
                    "e2e_ms": 1e3 * e2e,
                    "node_ms": 1e3 * latency,
                    "ros_ms": 1e3 * (e2e - latency),
                    "wait_ms": 1e3 * wait,
                    "work_ms": 1e3 * (latency - wait),
                    "step_ms": step_ms,
                    "overhead_ms": 1e3 * (e2e - wait) - step_ms,
                }
            )
        previous_arrival = arrived

    def p(key: str, q: float = 50, status: int | None = None) -> float:
        values = [f[key] for f in frames if math.isfinite(f[key]) and (status is None or f["status"] == status)]
        return float(np.percentile(values, q)) if values else math.nan

    around_step = [f["e2e_ms"] - f["wait_ms"] - node_step_ms for f in frames]
    stats = record.node_stats
    node_received = int(stats["frames_received"]) if "frames_received" in stats else None
    statuses = [f["status"] for f in frames]
    by_status = {
        name: {
            "boxes": statuses.count(status),
            "step_ms": step_by_status[status],
            "e2e_p50_ms": p("e2e_ms", status=status),
            "e2e_p90_ms": p("e2e_ms", 90, status=status),
            "work_p50_ms": p("work_ms", status=status),
            "overhead_p50_ms": p("overhead_ms", status=status),
        }
        for name, status in (("TRACKING", tracking), ("LOST", lost))
    }
    return {
        "image": record.transport,
        "message_kib": record.message_bytes / 1024,
        "sent": len(record.window),
        "boxes": len(frames),
        "dropped": len(record.window) - len(frames),
        "publish_rate_hz": record.window_publish_rate,
        "published_in_run": record.published_total,
        "node_received_in_run": node_received,
        "node_skipped_in_run": int(stats["dropped_frames"]) if "dropped_frames" in stats else None,
        "node_rejected_in_run": int(stats["rejected_images"]) if "rejected_images" in stats else None,
        "tracking": statuses.count(tracking),
        "lost": statuses.count(lost),
        "by_status": by_status,
        "startup_s": record.startup_s,
        "e2e_p50_ms": p("e2e_ms"),
        "e2e_p90_ms": p("e2e_ms", 90),
        "e2e_max_ms": p("e2e_ms", 100),
        "node_p50_ms": p("node_ms"),
        "ros_p50_ms": p("ros_ms"),
        "ros_p90_ms": p("ros_ms", 90),
        "wait_p50_ms": p("wait_ms"),
        "work_p50_ms": p("work_ms"),
        "step_p50_ms": p("step_ms"),
        "model_p50_ms": model_ms,
        "overhead_p50_ms": p("overhead_ms"),
        "overhead_p90_ms": p("overhead_ms", 90),
        "decode_p50_ms": reference.get(f"decode_{record.transport}_ms", math.nan),
        "node_step_ms": node_step_ms,
        "node_decode_ms": node_mean("decode_mean_ms"),
        "around_step_p50_ms": (
            float(np.median(around_step)) if around_step and math.isfinite(node_step_ms) else math.nan
        ),
        "frames": frames,
    }


def format_table(report: dict[str, Any]) -> str:
    """The report as the printed table: a header of settings, one row per transport, notes under it."""
    s = report["settings"]
    lines = [
        f"# {s['width']}x{s['height']} at {s['rate']:g} Hz, {s['targets']} target{'s' if s['targets'] > 1 else ''}, "
        f"model {s['model']} on {s['device']}, image QoS {s['qos']}, {os.cpu_count()} cores, "
        f"load average start {_load(report['loadavg_start'])}, end {_load(report['loadavg_end'])}",
        "# times in ms over the frames that got a box; e2e = publish() -> /tracked_box received; node = its "
        "processing_latency; e2e-node = the transport; wait = in the node's slot (est.); work = node - wait; "
        "step = the model work, the node's tracker step for the frame's kind (TRACKING or LOST); "
        "ros = e2e - wait - step, the ROS overhead (transport + the node's work around the model)",
        markdown_row(COLUMNS),
        "|" + "---|" * len(COLUMNS),
    ]
    for r in report["runs"]:
        cells = [
            r["image"],
            r["sent"],
            r["boxes"],
            r["dropped"],
            format_cell(r["e2e_p50_ms"]),
            format_cell(r["e2e_p90_ms"]),
            format_cell(r["node_p50_ms"]),
            format_cell(r["ros_p50_ms"]),
            format_cell(r["wait_p50_ms"]),
            format_cell(r["work_p50_ms"]),
            format_cell(r["step_p50_ms"]),
            format_cell(r["overhead_p50_ms"]),
        ]
        lines.append(markdown_row(cells))
    lines.append("# the boxes by status: TRACKING frames run a normal step, LOST frames a lost-target search")
    lines.append(markdown_row(STATUS_COLUMNS))
    lines.append("|" + "---|" * len(STATUS_COLUMNS))
    for r in report["runs"]:
        for name, figures in r["by_status"].items():
            cells = [
                f"{r['image']}, {name}",
                figures["boxes"],
                format_cell(figures["step_ms"] if figures["boxes"] else math.nan),
                format_cell(figures["e2e_p50_ms"]),
                format_cell(figures["e2e_p90_ms"]),
                format_cell(figures["overhead_p50_ms"]),
            ]
            lines.append(markdown_row(cells))
    for r in report["runs"]:
        received = r["node_received_in_run"]
        lost = "?" if received is None else r["published_in_run"] - received
        lines.append(
            f"# {r['image']}: {r['message_kib']:.0f} KiB per message, "
            f"decode {format_cell(r['decode_p50_ms'], 2)} ms; published at {format_cell(r['publish_rate_hz'])} Hz; "
            f"whole run: {r['published_in_run']} frames published, {format_cell(received)} reached the node "
            f"({lost} lost in transport), {format_cell(r['node_skipped_in_run'])} "
            f"replaced in the slot, {format_cell(r['node_rejected_in_run'])} rejected; boxes TRACKING {r['tracking']}, "
            f"LOST {r['lost']}; node discovered {r['startup_s']:.1f} s after its start"
        )
        lines.append(
            f"# {r['image']}: the node's own split (/diagnostics medians): tracker step "
            f"{format_cell(r.get('node_step_ms'))} ms (model here {format_cell(r['model_p50_ms'])}), decode "
            f"{format_cell(r.get('node_decode_ms'), 2)} ms; e2e - wait - node step (ROS around the step) p50 "
            f"{format_cell(r.get('around_step_p50_ms'))} ms"
        )
    return "\n".join(lines)


def _finite(value: Any) -> Any:
    """``value`` with NaN/inf replaced by None, so the JSON is standard."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _loadavg() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


# ----------------------------------------------------------------------------- command line
def add_camera_and_node_options(parser: argparse.ArgumentParser, distinct_frames: int) -> None:
    """The options of this bench and the soak: the node's model and device, the footage the
    camera plays, its size, encoding and QoS, and extra node parameters.
    """
    parser.add_argument(
        "--model",
        type=model_name_argument,
        help=f"network of --weights: {THIN_NAME_HELP} (default {DEFAULT_MODEL}, bundled)",
    )
    parser.add_argument("--weights", help="checkpoint for --model (default: the bundled weights, as the demo)")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--video", help="video file or image folder (default: the demo's, vtest.avi)")
    parser.add_argument(
        "--init",
        help="x,y,w,h of the target in the video's own pixels (default: its "
        "groundtruth.txt, else the middle of the image)",
    )
    parser.add_argument(
        "--distinct-frames",
        type=int,
        default=distinct_frames,
        help=f"frames read from the video (played forwards and backwards; default {distinct_frames})",
    )
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument(
        "--qos",
        choices=("sensor_data", "reliable"),
        default="sensor_data",
        help="image QoS of this camera and of the node (default sensor_data, as a driver)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        type=node_parameter_argument,
        metavar="NAME:=VALUE",
        help="extra node parameter, e.g. long_term:=false (repeatable; wins over the tool's own)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m siamrpnpp_ros.tools.latency_bench``."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring (and docs/performance.md, Latency through ROS) for the columns.",
    )
    add_camera_and_node_options(parser, distinct_frames=120)
    parser.add_argument("--frames", type=int, default=300, help="measured frames per transport (default 300)")
    parser.add_argument(
        "--warmup", type=int, default=5, help="frames after the selection that are not measured (default 5)"
    )
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate in Hz (default 30)")
    parser.add_argument(
        "--transports",
        default="raw,compressed",
        help="comma-separated: raw (Image bgr8), compressed (CompressedImage jpeg)",
    )
    parser.add_argument(
        "--targets",
        type=int,
        default=1,
        metavar="N",
        help="targets selected at once (node max_targets:=N; figures on target 1; default 1)",
    )
    parser.add_argument(
        "--model-frames",
        type=int,
        default=30,
        help="frames for the in-process model timing before the runs; 0 = skip (default 30)",
    )
    parser.add_argument(
        "--vanish-after",
        type=int,
        metavar="N",
        help="the target vanishes for good after the video's first N frames: then a slow pan over the first "
        "frame with the target painted out (see the module docstring)",
    )
    parser.add_argument("--json", help="write the report (with per-frame figures) to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; prints the table, returns the exit code (2 on bad arguments or input)."""
    args = build_parser().parse_args(argv)
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    unknown = sorted(set(transports) - set(TRANSPORTS))
    if unknown or not transports:
        raise SystemExit(f"{PROGRAM}: --transports takes {', '.join(TRANSPORTS)}, got {args.transports!r}")
    if args.rate <= 0 or args.frames < 1 or args.warmup < 0 or args.width < 16 or args.height < 16:
        raise SystemExit(f"{PROGRAM}: --rate, --frames, --width and --height must be positive")
    if args.targets < 1:
        raise SystemExit(f"{PROGRAM}: --targets must be >= 1")

    loadavg_start = _loadavg()
    material = load_material(args)
    if args.vanish_after is not None:  # a bench option only: the soak plays its own absences
        vanish_frames(material, args.vanish_after, args.distinct_frames)
    messages = {t: build_messages(material.frames, t, args.jpeg_quality) for t in transports}
    if not args.quiet:
        print(
            f"{PROGRAM}: {len(material.frames)} frames of {material.video}; model {material.model}, "
            f"weights {material.weights or 'bundled'}",
            file=sys.stderr,
        )
    reference = measure_reference(args, material, transports, messages, pick_domain_id(75))
    runs = []
    with tempfile.TemporaryDirectory(prefix="latency_bench_") as log_dir:
        for number, transport in enumerate(transports, start=1):
            record = run_transport(
                args, material, transport, messages[transport], pick_domain_id(75 + number), Path(log_dir)
            )
            runs.append(analyse(record, reference))
    report = {
        "settings": {
            key: getattr(args, key)
            for key in (
                "device",
                "rate",
                "frames",
                "warmup",
                "width",
                "height",
                "qos",
                "jpeg_quality",
                "param",
                "transports",
                "targets",
                "vanish_after",
            )
        }
        | {"model": material.model, "weights": material.weights or "bundled", "video": material.video},
        "reference": reference,
        "loadavg_start": loadavg_start,
        "loadavg_end": _loadavg(),
        "runs": runs,
    }
    print(format_table(report), flush=True)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_finite(report), indent=2) + "\n", encoding="utf-8")
    return 0 if all(r["boxes"] > 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
