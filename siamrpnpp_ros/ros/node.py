"""The SiamRPN++ tracker node: camera images and selections in, ``TrackedBox`` out.

A thin adapter: messages become arrays (``conversions``), the core (``TrackingSession``
around a tracker from ``tracking.factory``) does the work, results become messages.

Threads: the executor thread only takes messages in (a cheap validity check, the frame
cache, the latest-frame slot) and answers services and parameter requests. One worker
thread runs everything heavy, strictly in order: selections, cancels and parameter changes
first, then the newest frame. A frame that is replaced before the worker gets to it is
dropped (counted while a target is active), so the node always works on the newest image
and never builds a backlog, whatever the camera rate.

Bad input never stops the node or costs the active target: such a message is dropped with
a throttled warning. A selection made before any image arrived is rejected (not kept for
later: by the time images come, the box may describe nothing in them).
"""
from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from siamrpnpp_ros.msg import SelectTarget, TrackedBox
from siamrpnpp_ros.ros.conversions import bgr_to_image, check_image, compressed_to_bgr, image_to_bgr
from siamrpnpp_ros.ros.diagnostics import NodeStats, tracker_status
from siamrpnpp_ros.ros.drawing import draw_tracking_overlay
from siamrpnpp_ros.ros.frames import FrameCache, ReceivedFrame, WorkSlot
from siamrpnpp_ros.ros.parameters import NodeSettings, apply_changes, build_tracker_for, declare_node_parameters
from siamrpnpp_ros.ros.qos import COMMAND_QOS, DEBUG_IMAGE_QOS, DIAGNOSTICS_QOS, RESULT_QOS, image_qos
from siamrpnpp_ros.tracking.backends import provider_name
from siamrpnpp_ros.tracking.session import (
    SessionResult,
    TrackingSession,
    TrackStatus,
    align_long_term_thresholds,
    clip_selection,
)

NODE_NAME = "siamrpnpp_tracker"
WARNING_PERIOD_S = 2.0  # at most one warning per reason in this period
# This many older-stamped images in a row means the source restarted (a replayed bag, a
# reset simulation), not a stray late packet: follow the new timeline.
STAMP_RESET_AFTER = 30
CANCEL_SERVICE_TIMEOUT_S = 10.0
_NUMBERS = re.compile(r"[-+]?\d[\d.]*")


def stamp_to_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _duration(seconds: float) -> Duration:
    nanoseconds = max(0, int(round(seconds * 1e9)))
    return Duration(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


@dataclass
class _Selection:
    message: SelectTarget


@dataclass
class _Cancel:
    reason: str
    done: threading.Event = field(default_factory=threading.Event)
    cancelled_target: int | None = None


@dataclass
class _ApplySettings:
    settings: NodeSettings


@dataclass
class _FrameTiming:
    """Seconds one frame spent waiting in the slot, being decoded and in the tracker step."""

    wait: float = 0.0
    decode: float = 0.0
    step: float = 0.0


class TrackerNode(Node):
    """ROS interface of the tracker; see the module docstring and the README's topic table."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        # May raise (bad parameter, missing or mismatched checkpoint): main() reports it.
        self.settings = declare_node_parameters(self)
        self._session = TrackingSession(self._build_tracker(self.settings), self.settings.policy)
        self._warm_up()

        self._cache = FrameCache(self.settings.frame_cache_size, self.settings.frame_cache_max_mb * 1024 * 1024)
        self._slot = WorkSlot()
        self._stats = NodeStats()
        self._last_warning: dict[str, float] = {}
        # Executor-thread state.
        self._sequence = 0
        self._newest_stamp_ns = 0
        self._older_stamps_in_a_row = 0
        # Worker-thread state.
        self._last_sequence = -1  # sequence of the last frame processed for the current target
        self._last_frame_id = ""
        self._fps = 0.0
        self._last_processed_at: float | None = None
        self._status_for_diagnostics = TrackStatus.IDLE
        self._score_for_diagnostics = 0.0

        self._box_publisher = self.create_publisher(TrackedBox, "tracked_box", RESULT_QOS)
        self._debug_publisher = self.create_publisher(Image, "debug_image", DEBUG_IMAGE_QOS)
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        camera_qos = image_qos(self.settings.image_qos, self.settings.image_qos_depth)
        if self.settings.use_compressed:
            self._image_subscription = self.create_subscription(
                CompressedImage, "image/compressed", self._on_compressed_image, camera_qos
            )
        else:
            self._image_subscription = self.create_subscription(Image, "image", self._on_image, camera_qos)
        self._select_subscription = self.create_subscription(
            SelectTarget, "select_target", self._on_select_target, COMMAND_QOS
        )
        self.create_service(Trigger, "cancel_tracking", self._on_cancel_service)
        self._diagnostics_snapshot = self._stats.snapshot()
        self.create_timer(self.settings.diagnostics_period, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._worker = threading.Thread(target=self._work, name="siamrpnpp_tracking", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: model {self.settings.model} on {self._device_name}"
            f"{' (long-term)' if self.settings.long_term else ''}; images from "
            f"{self._image_subscription.topic_name} ({self.settings.image_qos}), selections on "
            f"{self._select_subscription.topic_name}, boxes on {self._box_publisher.topic_name}"
        )

    # ------------------------------------------------------------------ set-up and shut-down
    def _build_tracker(self, settings: NodeSettings) -> Any:
        tracker = build_tracker_for(settings)
        providers = getattr(tracker.model, "providers", None)  # ONNX Runtime: what really runs it
        self._device_name = f"onnxruntime {provider_name(providers[0])}" if providers else str(tracker.device)
        return tracker

    def _warm_up(self) -> None:
        # The first inference pays for kernel selection and allocations; pay it now rather
        # than on the first frame a controller waits for. reset() leaves no trace.
        tracker = self._session.tracker
        frame = np.full((256, 256, 3), 114, np.uint8)
        tracker.init(frame, (100.0, 100.0, 40.0, 40.0))
        tracker.track(frame)
        tracker.reset()

    def destroy_node(self) -> None:
        """Stop the worker before the node's publishers go away."""
        self._slot.close()
        if self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join(timeout=10.0)
        super().destroy_node()

    # ------------------------------------------------------------------ executor thread: input
    def _warn(self, message: str) -> None:
        """A warning at most once per WARNING_PERIOD_S for each kind of message.

        Messages that differ only in numbers (sizes, stamps) are the same kind, so a camera
        streaming bad images gets one warning every few seconds, not thirty a second.
        """
        kind = _NUMBERS.sub("#", message)
        now = time.monotonic()
        if now - self._last_warning.get(kind, -math.inf) >= WARNING_PERIOD_S:
            if len(self._last_warning) > 256:  # bounded, whatever the input
                self._last_warning.clear()
            self._last_warning[kind] = now
            self.get_logger().warning(message)

    def _on_image(self, msg: Image) -> None:
        received = time.monotonic()
        self._stats.image_received(received)
        try:
            layout = check_image(msg)
        except ValueError as error:
            self._reject(f"dropped image on {self._image_subscription.topic_name}: {error}")
            return
        if layout.pixel_count > self.settings.max_image_pixels:
            self._reject(
                f"dropped {layout.width}x{layout.height} image: more than max_image_pixels "
                f"({self.settings.max_image_pixels}) pixels"
            )
            return
        self._accept(msg, len(msg.data), received, lambda: image_to_bgr(msg, layout))

    def _on_compressed_image(self, msg: CompressedImage) -> None:
        received = time.monotonic()
        self._stats.image_received(received)
        if len(msg.data) == 0:
            self._reject("dropped empty compressed image")
            return
        max_pixels = self.settings.max_image_pixels

        def decode() -> np.ndarray:
            image = compressed_to_bgr(msg)
            if image.shape[0] * image.shape[1] > max_pixels:
                raise ValueError(
                    f"{image.shape[1]}x{image.shape[0]} image has more than max_image_pixels ({max_pixels}) pixels"
                )
            return image

        self._accept(msg, len(msg.data), received, decode)

    def _reject(self, message: str) -> None:
        self._stats.image_rejected()
        self._warn(message)

    def _accept(self, msg: Any, nbytes: int, received: float, decode: Any) -> None:
        stamp_ns = stamp_to_ns(msg.header.stamp)
        # Zero stamps (an unstamped source) cannot be ordered; take them as they come.
        if stamp_ns and stamp_ns <= self._newest_stamp_ns:
            self._older_stamps_in_a_row += 1
            if self._older_stamps_in_a_row < STAMP_RESET_AFTER:
                self._reject(
                    f"dropped image stamped {stamp_ns / 1e9:.9f} s: not newer than the last one "
                    f"({self._newest_stamp_ns / 1e9:.9f} s)"
                )
                return
            self.get_logger().warning(
                f"{STAMP_RESET_AFTER} images in a row stamped before the newest: assuming the source "
                "restarted its clock; following the new stamps"
            )
            self._cache.clear()
        self._older_stamps_in_a_row = 0
        if stamp_ns:
            self._newest_stamp_ns = stamp_ns
        frame = ReceivedFrame(msg, stamp_ns, self._sequence, received, nbytes, decode)
        self._sequence += 1
        self._cache.add(frame)
        self._slot.put_frame(frame)

    def _on_select_target(self, msg: SelectTarget) -> None:
        self._slot.put_command(_Selection(msg))

    def _on_cancel_service(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        cancel = _Cancel("cancel_tracking service")
        self._slot.put_command(cancel)
        if not cancel.done.wait(CANCEL_SERVICE_TIMEOUT_S):
            response.success = False
            response.message = "the tracker did not answer in time; the cancel is still queued"
        else:
            response.success = True
            response.message = (
                "no target was active" if cancel.cancelled_target is None
                else f"cancelled target {cancel.cancelled_target}"
            )
        return response

    def _on_set_parameters(self, parameters: list[Any]) -> SetParametersResult:
        try:
            settings = apply_changes(self.settings, parameters)
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        self.settings = settings
        self._slot.put_command(_ApplySettings(settings))
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ worker thread
    def _work(self) -> None:
        while not self._slot.closed:
            commands, frame = self._slot.take(timeout=0.5)
            try:
                for command in commands:
                    self._run_command(command)
                if frame is not None:
                    self._process(frame)
            except Exception as error:  # noqa: BLE001 - the worker must outlive any one bad frame
                if self._slot.closed or not self.context.ok():
                    break
                self._warn(f"tracking step failed ({type(error).__name__}: {error}); continuing")

    def _run_command(self, command: Any) -> None:
        if isinstance(command, _Selection):
            self._select(command.message)
        elif isinstance(command, _Cancel):
            try:
                command.cancelled_target = self._cancel(command.reason)
            finally:
                command.done.set()
        elif isinstance(command, _ApplySettings):
            settings = command.settings
            self._session.policy = settings.policy
            tracker = self._session.tracker
            tracker.config = (
                align_long_term_thresholds(settings.tracker, settings.policy) if settings.long_term else settings.tracker
            )

    def _select(self, msg: SelectTarget) -> None:
        if msg.command == SelectTarget.COMMAND_CANCEL:
            self._cancel("select_target CANCEL")
            return
        if msg.command not in (SelectTarget.COMMAND_START, SelectTarget.COMMAND_REPLACE):
            self.get_logger().warning(f"selection ignored: unknown command {msg.command}")
            return
        if msg.command == SelectTarget.COMMAND_START and self._session.is_active:
            self.get_logger().warning(
                f"START for target {msg.target_id} refused: target {self._session.target_id} is being tracked "
                "(send REPLACE to switch, or CANCEL first)"
            )
            return
        box = (msg.x, msg.y, msg.width, msg.height)
        if not all(math.isfinite(v) for v in box) or msg.width <= 0 or msg.height <= 0:
            self.get_logger().warning(
                f"selection of target {msg.target_id} rejected: box must be finite with positive size, got {box}"
            )
            return

        frame = self._frame_for_selection(msg)
        if frame is None:
            return
        started = time.monotonic()
        try:
            image = frame.decode()
            decoded = time.monotonic()
            height, width = image.shape[:2]
            clipped_box, clipped = clip_selection(box, width, height)
            result = self._session.start(image, clipped_box, msg.target_id)
            # The wait of an init frame is its time in the cache, not in the slot: left out.
            timing = _FrameTiming(decode=decoded - started, step=time.monotonic() - decoded)
        except ValueError as error:
            self.get_logger().warning(f"selection of target {msg.target_id} rejected: {error}")
            return
        if clipped:
            self.get_logger().warning(
                f"selection of target {msg.target_id} reaches outside the {width}x{height} image; clipped "
                f"({msg.x:g}, {msg.y:g}, {msg.width:g}, {msg.height:g}) to "
                f"({clipped_box[0]:g}, {clipped_box[1]:g}, {clipped_box[2]:g}, {clipped_box[3]:g})"
            )
        self.get_logger().info(f"tracking target {msg.target_id} from the image stamped {frame.stamp_ns / 1e9:.3f} s")
        self._last_sequence = frame.sequence
        self._publish(result, frame, image, timing)
        self._catch_up(frame.sequence)

    def _frame_for_selection(self, msg: SelectTarget) -> ReceivedFrame | None:
        stamp_ns = stamp_to_ns(msg.header.stamp)
        newest = self._cache.newest()
        if newest is None:
            self.get_logger().warning(
                f"selection of target {msg.target_id} rejected: no image received yet on "
                f"{self._image_subscription.topic_name}"
            )
            return None
        if stamp_ns == 0:
            return newest
        frame = self._cache.find(stamp_ns)
        if frame is None:
            oldest = self._cache.after(-1)[0]
            self.get_logger().warning(
                f"selection of target {msg.target_id}: no cached image stamped {stamp_ns / 1e9:.9f} s "
                f"(cache holds {oldest.stamp_ns / 1e9:.3f} .. {newest.stamp_ns / 1e9:.3f} s); "
                "using the newest image"
            )
            return newest
        return frame

    def _catch_up(self, init_sequence: int) -> None:
        """Track through the cached frames newer than the init frame, then rejoin the live stream.

        Following the target through the gap keeps it inside the search region even if it
        moved a lot while the selection travelled; beyond ``max_catch_up_frames`` frames are
        sampled evenly (always ending on the newest) to bound the delay.
        """
        backlog = self._cache.after(init_sequence)
        limit = self.settings.max_catch_up_frames
        if len(backlog) > limit:
            if limit == 0:
                backlog = []
            else:
                picks = np.linspace(0, len(backlog) - 1, limit).round().astype(int)
                backlog = [backlog[i] for i in sorted(set(picks.tolist()))]
        for frame in backlog:
            if not self._session.is_active:
                break
            self._process(frame)

    def _process(self, frame: ReceivedFrame) -> None:
        if not self._session.is_active or frame.sequence <= self._last_sequence:
            return
        started = time.monotonic()
        try:
            image = frame.decode()
        except ValueError as error:
            self._stats.image_rejected()
            self._warn(f"dropped image: {error}")
            return
        decoded = time.monotonic()
        previous_status = self._session.status
        result = self._session.step(image)
        timing = _FrameTiming(wait=started - frame.received, decode=decoded - started, step=time.monotonic() - decoded)
        dropped = max(0, frame.sequence - self._last_sequence - 1)
        self._last_sequence = frame.sequence
        if result.status != previous_status and result.status in (TrackStatus.LOST, TrackStatus.TRACKING) and (
            previous_status != TrackStatus.INITIALIZING
        ):
            self.get_logger().info(f"target {result.target_id} {result.status.name} (score {result.score:.2f})")
        self._publish(result, frame, image, timing, dropped)

    def _cancel(self, reason: str) -> int | None:
        idle = self._session.cancel()
        if idle is None:
            return None
        self.get_logger().info(f"stopped tracking target {idle.target_id} ({reason})")
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self._last_frame_id)
        self._box_publisher.publish(self._box_message(idle, header, latency=0.0))
        self._status_for_diagnostics = TrackStatus.IDLE
        return idle.target_id

    # ------------------------------------------------------------------ worker thread: output
    def _box_message(self, result: SessionResult, header: Header, latency: float) -> TrackedBox:
        msg = TrackedBox()
        msg.header = header
        msg.target_id = int(result.target_id)
        msg.x, msg.y, msg.width, msg.height = (float(v) for v in result.box)
        msg.center_x, msg.center_y = (float(v) for v in result.center)
        msg.score = float(result.score)
        msg.status = int(result.status)
        msg.age = int(result.age)
        msg.processing_latency = _duration(latency)
        return msg

    def _publish(
        self, result: SessionResult, frame: ReceivedFrame, image: np.ndarray, timing: _FrameTiming, dropped: int = 0
    ) -> None:
        now = time.monotonic()
        if self._last_processed_at is not None and now > self._last_processed_at:
            rate = 1.0 / (now - self._last_processed_at)
            # Exponential average over ~10 frames: a steady, readable FPS figure.
            self._fps = rate if self._fps == 0.0 else 0.9 * self._fps + 0.1 * rate
        self._last_processed_at = now
        self._last_frame_id = frame.header.frame_id
        self._box_publisher.publish(self._box_message(result, frame.header, now - frame.received))
        self._stats.frame_processed(
            time.monotonic() - frame.received, dropped, wait=timing.wait, decode=timing.decode, step=timing.step
        )
        self._status_for_diagnostics = result.status
        self._score_for_diagnostics = result.score
        # Drawn and converted only while someone watches: otherwise it costs nothing.
        if self._debug_publisher.get_subscription_count() > 0:
            overlay = draw_tracking_overlay(
                image, result.box, result.status.name, result.score, self._fps, result.target_id
            )
            self._debug_publisher.publish(bgr_to_image(overlay, frame.header))

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        previous, current = self._diagnostics_snapshot, self._stats.snapshot()
        self._diagnostics_snapshot = current
        status = self._status_for_diagnostics
        diagnostics = DiagnosticArray()
        diagnostics.header.stamp = self.get_clock().now().to_msg()
        diagnostics.status.append(
            tracker_status(
                name=f"{self.get_fully_qualified_name()}: tracking",
                hardware_id=self._device_name,
                previous=previous,
                current=current,
                tracking_status=status.name,
                target_id=self._session.target_id,
                extra={
                    "model": self.settings.model,
                    "device": self._device_name,
                    "score": f"{self._score_for_diagnostics:.3f}" if status != TrackStatus.IDLE else "",
                    "age": str(self._session.age),
                    "cached_frames": str(len(self._cache)),
                    "cached_mb": f"{self._cache.nbytes / 2**20:.1f}",
                },
                worker_alive=self._worker.is_alive(),
            )
        )
        self._diagnostics_publisher.publish(diagnostics)
