"""The SiamRPN++ tracker node: camera images and selections in, ``TrackedBox`` out.

A thin adapter: messages become arrays (``conversions``), the core does the work, results
become messages. The core is one ``MultiTargetTracker`` (``tracking/multi.py``) around a tracker
from ``tracking.factory``: it holds every target's state (id, template kernels, box, status,
LOST counters, age, the last frame it saw) and tracks all targets with one batched network
pass per image, so the node keeps no per-target state of its own. With the default
``max_targets`` of 1 it behaves as the single-target node always did.

Threads: the executor thread only takes messages in (a cheap validity check, the frame
cache, the latest-frame slot) and answers services and parameter requests. One worker
thread runs everything heavy, strictly in order: selections, cancels and parameter changes
first, then the newest frame. A frame that is replaced before the worker gets to it is
dropped (counted while a target is active), so the node always works on the newest image
and never builds a backlog, whatever the camera rate.

Two nodes share these parts (``_TrackerParts``): ``TrackerNode``, the default, which loads the
model and starts taking images in its constructor, and ``LifecycleTrackerNode``, the managed
node, which does the same steps one lifecycle transition at a time (docs/ros.md).

Bad input never stops the node or costs the active target: such a message is dropped with
a throttled warning. A selection made before any image arrived is rejected (not kept for
later: by the time images come, the box may describe nothing in them).
"""

from __future__ import annotations

import dataclasses
import gc
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
from rclpy.exceptions import ParameterException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.task import Future
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from siamrpnpp_ros.models import CheckpointError
from siamrpnpp_ros.msg import SelectTarget, TrackedBox, TrackedBoxArray
from siamrpnpp_ros.ros.conversions import bgr_to_image, check_image, compressed_to_bgr, image_to_bgr
from siamrpnpp_ros.ros.diagnostics import NodeStats, RuntimeMonitor, tracker_status
from siamrpnpp_ros.ros.drawing import draw_targets_overlay
from siamrpnpp_ros.ros.frames import FrameCache, ReceivedFrame, WorkSlot
from siamrpnpp_ros.ros.parameters import (
    NodeSettings,
    apply_changes,
    build_tracker_for,
    declare_node_parameters,
    needs_configure,
)
from siamrpnpp_ros.ros.qos import COMMAND_QOS, DEBUG_IMAGE_QOS, DIAGNOSTICS_QOS, RESULT_QOS, image_qos
from siamrpnpp_ros.tracking.backends import provider_name
from siamrpnpp_ros.tracking.longterm import LostSearchBudget
from siamrpnpp_ros.tracking.multi import MultiTargetTracker
from siamrpnpp_ros.tracking.session import SessionResult, TrackStatus, align_long_term_thresholds, clip_selection

NODE_NAME = "siamrpnpp_tracker"
WARNING_PERIOD_S = 2.0  # at most one warning per reason in this period
# Long-term warm-up on a CPU: rounds of a few normal searches followed by a wide one (_warm_up).
LONG_TERM_WARM_UP_ROUNDS = 3
LONG_TERM_WARM_UP_NORMAL_STEPS = 3
# This many older-stamped images in a row means the source restarted (a replayed bag, a
# reset simulation), not a stray late packet: follow the new timeline.
STAMP_RESET_AFTER = 30
CANCEL_SERVICE_TIMEOUT_S = 10.0
_NUMBERS = re.compile(r"[-+]?\d[\d.]*")


def stamp_to_ns(stamp: Any) -> int:
    """A ROS ``builtin_interfaces/Time`` as integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _duration(seconds: float) -> Duration:
    nanoseconds = max(0, int(round(seconds * 1e9)))
    return Duration(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


@dataclass
class _Selection:
    message: SelectTarget


@dataclass
class _EndTargets:
    """A request to end every target, answered by the worker: it sets ``done`` once it ran, with
    the ids of the targets it ended in ``targets``.
    """

    reason: str
    done: threading.Event = field(default_factory=threading.Event)
    targets: list[int] = field(default_factory=list)


class _Cancel(_EndTargets):
    """The cancel_tracking service: end every target."""


@dataclass
class _ApplySettings:
    settings: NodeSettings


class _Suspend(_EndTargets):
    """The managed node is being deactivated: report every target LOST and end it."""


@dataclass
class _FrameTiming:
    """Seconds one frame spent waiting in the slot, being decoded and in the tracker step."""

    wait: float = 0.0
    decode: float = 0.0
    step: float = 0.0


class _TrackerParts(Node):
    """Everything the tracker node does, in steps that both nodes run: the plain ``TrackerNode``
    all at once in its constructor, the managed ``LifecycleTrackerNode`` one lifecycle transition
    at a time. There is one copy of the node's logic; the two classes only order the steps.

    The steps, in order: ``_load_tracker`` (the model, warmed up, the frame cache and the worker
    thread), ``_create_outputs`` (publishers), ``_open_inputs`` (camera and selection
    subscriptions, the cancel service, the diagnostics timer); and back: ``_close_inputs``,
    ``_suspend_targets`` (the managed node's deactivation), ``_destroy_outputs``,
    ``_unload_tracker``.
    """

    def _init_parts(self) -> None:
        """Attributes that exist in every state, before anything is loaded."""
        self.settings: NodeSettings | None = None
        self._loaded = False
        self._last_warning: dict[str, float] = {}
        self._device_name = ""
        self._outputs: list[Any] = []
        self._inputs: list[tuple[str, Any]] = []  # (kind, entity) to destroy in _close_inputs
        self._image_topic = "image"
        self._select_topic = "select_target"
        self._worker: threading.Thread | None = None
        self._reset_stream_state()

    @property
    def _loaded_settings(self) -> NodeSettings:
        """``settings`` while a tracker is loaded, when the worker, the inputs and the timers run."""
        settings = self.settings
        if settings is None:
            raise RuntimeError("no tracker loaded")
        return settings

    def _reset_stream_state(self) -> None:
        # Executor-thread state: the order of the camera's stamps.
        self._sequence = getattr(self, "_sequence", 0)  # frame sequences never repeat in a process
        self._newest_stamp_ns = 0
        self._older_stamps_in_a_row = 0

    # ------------------------------------------------------------------ set-up and shut-down
    def _load_tracker(self, settings: NodeSettings) -> None:
        """Build the tracker for ``settings``, start the worker and warm it up.

        Raises what loading raises (a bad checkpoint, a setting the network cannot take), with
        nothing left running, so the caller can report it and the node stays as it was.
        """
        # The lost search's time budget (tracking.longterm.LostSearchBudget): the executor thread
        # feeds it each image's arrival time (the camera's period), the worker the step times.
        self._lost_budget = LostSearchBudget(settings.lost_search_budget_ms)
        self._targets = MultiTargetTracker(
            self._build_tracker(settings), settings.policy, settings.max_targets, lost_budget=self._lost_budget
        )
        self.settings = settings
        self._cache = FrameCache(settings.frame_cache_size, settings.frame_cache_max_mb * 1024 * 1024)
        self._slot = WorkSlot()
        self._stats = NodeStats()
        self._runtime = RuntimeMonitor()
        # Worker-thread state (the targets' own state lives in self._targets).
        self._last_sequence = -1  # the newest frame processed for any target
        self._last_array_sequence = -1  # the newest frame whose tracked_boxes array went out
        # Boxes of this worker cycle, per frame sequence, for the tracked_boxes arrays.
        self._pending_arrays: dict[int, tuple[Header, list[TrackedBox]]] = {}
        self._last_frame_id = ""
        self._fps = 0.0
        self._last_processed_at: float | None = None
        # Every target's latest result, replaced as a whole by the worker, read by /diagnostics.
        self._results_for_diagnostics: tuple[SessionResult, ...] = ()

        self._worker = threading.Thread(target=self._work, name="siamrpnpp_tracking", daemon=True)
        self._warm_up_done = threading.Event()
        self._warm_up_error: BaseException | None = None
        self._worker.start()  # it warms the tracker up first (see _warm_up)
        self._warm_up_done.wait()
        if self._warm_up_error is not None:
            error = self._warm_up_error
            self._unload_tracker()
            raise error
        self._loaded = True

    def _create_outputs(self, lifecycle: bool) -> None:
        """The publishers; the managed node's are lifecycle publishers, which publish only while
        the node is active, and which it creates once per configure so that its subscribers stay
        matched across deactivate and activate (as in ros2/demos' lifecycle_py).
        """
        create = self.create_lifecycle_publisher if lifecycle else self.create_publisher  # type: ignore[attr-defined]
        self._box_publisher = create(TrackedBox, "tracked_box", RESULT_QOS)
        self._array_publisher = create(TrackedBoxArray, "tracked_boxes", RESULT_QOS)
        self._debug_publisher = create(Image, "debug_image", DEBUG_IMAGE_QOS)
        self._diagnostics_publisher = create(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self._outputs = [self._box_publisher, self._array_publisher, self._debug_publisher, self._diagnostics_publisher]

    def _destroy_outputs(self) -> None:
        destroy = getattr(self, "destroy_lifecycle_publisher", self.destroy_publisher)
        for publisher in self._outputs:
            destroy(publisher)
        self._outputs = []

    def _open_inputs(self) -> None:
        """Start taking images, selections and cancels, and publishing /diagnostics."""
        settings = self.settings
        assert settings is not None and self._loaded
        self._reset_stream_state()
        camera_qos = image_qos(settings.image_qos, settings.image_qos_depth)
        if settings.use_compressed:
            images = self.create_subscription(
                CompressedImage, "image/compressed", self._on_compressed_image, camera_qos
            )
        else:
            images = self.create_subscription(Image, "image", self._on_image, camera_qos)
        selections = self.create_subscription(SelectTarget, "select_target", self._on_select_target, COMMAND_QOS)
        self._image_topic, self._select_topic = images.topic_name, selections.topic_name
        cancel = self.create_service(Trigger, "cancel_tracking", self._on_cancel_service)
        self._diagnostics_snapshot = self._stats.snapshot()
        timer = self.create_timer(settings.diagnostics_period, self._publish_diagnostics)
        self._inputs = [("subscription", images), ("subscription", selections), ("service", cancel), ("timer", timer)]

    def _close_inputs(self) -> None:
        """Stop taking anything in: no image, selection, cancel or diagnostics timer callback runs
        after this (it runs on the executor thread, where those callbacks run too).
        """
        for kind, entity in self._inputs:
            getattr(self, f"destroy_{kind}")(entity)
        self._inputs = []

    def _ready_message(self) -> str:
        settings = self.settings
        assert settings is not None
        return (
            f"model {settings.model} on {self._device_name}"
            f"{' (long-term)' if settings.long_term else ''}, up to {settings.max_targets} "
            f"target{'s' if settings.max_targets > 1 else ''}; images from "
            f"{self._image_topic} ({settings.image_qos}), selections on "
            f"{self._select_topic}, boxes on {self._box_publisher.topic_name}"
        )

    def _unload_tracker(self) -> None:
        """Stop the worker and let the model go (what on_cleanup frees)."""
        self._stop_worker()
        if hasattr(self, "_runtime"):
            self._runtime.close()
        for name in ("_targets", "_cache", "_pending_arrays", "_results_for_diagnostics"):
            if hasattr(self, name):
                delattr(self, name)
        self._loaded = False
        self.settings = None
        gc.collect()  # the network's tensors are in reference cycles with their modules
        if self._device_name.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()  # hand the freed blocks back to the driver, not only torch's cache

    def _stop_worker(self) -> None:
        if hasattr(self, "_slot"):
            self._slot.close()
        worker = self._worker
        if worker is not None and worker.is_alive() and threading.current_thread() is not worker:
            worker.join(timeout=10.0)
        self._worker = None

    def _build_tracker(self, settings: NodeSettings) -> Any:
        tracker = build_tracker_for(settings)
        providers = getattr(tracker.model, "providers", None)  # ONNX Runtime: what really runs it
        self._device_name = f"onnxruntime {provider_name(providers[0])}" if providers else str(tracker.device)
        return tracker

    def _warm_up(self) -> None:
        # The first inference pays for kernel selection and allocations; pay it now rather
        # than on the first frame a controller waits for. reset() leaves no trace. It runs in
        # the worker thread, before the node takes any message: glibc serves each thread from
        # its own malloc arena, and the tuned allocator (tracking.backends.tune_allocator)
        # keeps freed blocks there, so the worker's arena reaches its working size now.
        tracker = self._targets.network_tracker
        frame = np.full((256, 256, 3), 114, np.uint8)
        tracker.init(frame, (100.0, 100.0, 40.0, 40.0))
        tracker.track(frame)
        tracker.reset()
        batches = [batch for batch in self._targets.batch_sizes() if batch > 1]  # 1: the step above
        if batches:
            # Every batch size the targets and a lost target's tiles can form (ONNX Runtime:
            # exports its graphs now, not on the first frame with that many crops).
            self._targets.warm_up(batches)
        if self._loaded_settings.long_term and tracker.config.lost_search == "wide":
            # The wide search of a lost target (tracker.lost_instance_size, 831 px by default)
            # needs ~10x the normal search's memory: the first target lost minutes into a run
            # raised RSS by ~35-55 MB in one step (README "Long runs"). On a CPU, where the tuned
            # allocator keeps what it freed, one wide pass here is not enough (the normal searches
            # after it carve up the blocks it freed): a few rounds of normal searches (a textured
            # frame) and a wide one (the target gone: a blank frame makes it lost) bring the
            # worker's arena to the size it keeps afterwards. Costs about 12 normal and 3 wide
            # steps at start-up.
            lost_size = tracker.config.lost_instance_size
            if tracker.device.type == "cpu":
                texture = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
                blank = np.full_like(texture, 114)
                for _ in range(LONG_TERM_WARM_UP_ROUNDS):
                    tracker.init(texture, (296.0, 199.0, 48.0, 82.0))
                    for _ in range(LONG_TERM_WARM_UP_NORMAL_STEPS):
                        tracker.track(texture)
                    tracker.track(blank)  # lost: the next search is the wide one
                    tracker.track(blank)
                tracker.reset()
            wide_batches = range(2 if tracker.device.type == "cpu" else 1, self._loaded_settings.max_targets + 1)
            if len(wide_batches) > 0:  # every batch size at the wide size (ONNX Runtime: its graphs)
                self._targets.warm_up(wide_batches, instance_size=lost_size)

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
            self._reject(f"dropped image on {self._image_topic}: {error}")
            return
        max_pixels = self._loaded_settings.max_image_pixels
        if layout.pixel_count > max_pixels:
            self._reject(
                f"dropped {layout.width}x{layout.height} image: more than max_image_pixels ({max_pixels}) pixels"
            )
            return
        self._accept(msg, len(msg.data), received, lambda: image_to_bgr(msg, layout))

    def _on_compressed_image(self, msg: CompressedImage) -> None:
        received = time.monotonic()
        self._stats.image_received(received)
        if len(msg.data) == 0:
            self._reject("dropped empty compressed image")
            return
        max_pixels = self._loaded_settings.max_image_pixels

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
        self._lost_budget.observe_frame(received)
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
            ended = cancel.targets
            response.message = (
                "no target was active"
                if not ended
                else f"cancelled target{'s' if len(ended) > 1 else ''} {', '.join(str(t) for t in ended)}"
            )
        return response

    def _on_set_parameters(self, parameters: list[Any]) -> SetParametersResult:
        settings = self.settings
        if settings is None:
            # The managed node, unconfigured: nothing runs; the next configure validates the values.
            return SetParametersResult(successful=True)
        # Only the managed node gets here with one (the plain node declares them read-only).
        reload = sorted(parameter.name for parameter in parameters if needs_configure(parameter.name))
        if reload:
            return SetParametersResult(
                successful=False,
                reason=f"{', '.join(reload)} take effect when the model is loaded: change them while the node is "
                "unconfigured (deactivate and clean up first), then configure",
            )
        try:
            settings = apply_changes(settings, parameters)
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        self.settings = settings
        self._slot.put_command(_ApplySettings(settings))
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ worker thread
    def _work(self) -> None:
        try:
            self._warm_up()
        except BaseException as error:  # noqa: BLE001 - handed to __init__, which raises it
            self._warm_up_error = error
            return
        finally:
            self._warm_up_done.set()
        while not self._slot.closed:
            commands, frame = self._slot.take(timeout=0.5)
            try:
                for command in commands:
                    self._run_command(command)
                if frame is not None:
                    self._process(frame)
                self._publish_arrays()
            except Exception as error:  # noqa: BLE001 - the worker must outlive any one bad frame
                self._pending_arrays.clear()
                if self._slot.closed or not self.context.ok():
                    break
                self._warn(f"tracking step failed ({type(error).__name__}: {error}); continuing")

    def _run_command(self, command: Any) -> None:
        if isinstance(command, _Selection):
            self._select(command.message)
        elif isinstance(command, _Cancel):
            try:
                command.targets = self._cancel(command.reason)
            finally:
                command.done.set()
        elif isinstance(command, _Suspend):
            try:
                command.targets = self._suspend(command.reason)
            finally:
                command.done.set()
        elif isinstance(command, _ApplySettings):
            settings = command.settings
            self._lost_budget.budget = settings.lost_search_budget_ms  # validated already
            self._targets.set_policy(settings.policy)
            self._targets.set_config(
                align_long_term_thresholds(settings.tracker, settings.policy)
                if settings.long_term
                else settings.tracker
            )

    def _select(self, msg: SelectTarget) -> None:
        """START, REPLACE or CANCEL one target (see msg/SelectTarget.msg for the rules)."""
        if msg.command == SelectTarget.COMMAND_CANCEL:
            self._cancel("select_target CANCEL", msg.target_id)
            return
        if msg.command not in (SelectTarget.COMMAND_START, SelectTarget.COMMAND_REPLACE):
            self.get_logger().warning(f"selection ignored: unknown command {msg.command}")
            return
        targets = self._targets
        target_id = int(msg.target_id)
        starting = msg.command == SelectTarget.COMMAND_START
        replacing: int | None = None  # the target a single-slot REPLACE switches away from
        if starting and target_id in targets:
            self.get_logger().warning(
                f"START for target {target_id} refused: target {target_id} is being tracked already "
                "(send REPLACE to re-select it, or CANCEL it first)"
            )
            return
        if target_id not in targets and targets.is_full:
            if not starting and targets.max_targets == 1:
                replacing = targets.target_ids[0]
            else:
                tracked = ", ".join(str(t) for t in targets.target_ids)
                hint = "send REPLACE to switch, or CANCEL first" if targets.max_targets == 1 else "CANCEL one first"
                self.get_logger().warning(
                    f"{'START' if starting else 'REPLACE'} for target {target_id} refused: "
                    f"{'target' if len(targets) == 1 else 'targets'} {tracked} "
                    f"{'is' if len(targets) == 1 else 'are'} being tracked and max_targets is "
                    f"{targets.max_targets} ({hint})"
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
        was_idle = not targets  # the frames since the last processed one arrived with no target
        started = time.monotonic()
        try:
            image = frame.decode()
            decoded = time.monotonic()
            height, width = image.shape[:2]
            clipped_box, clipped = clip_selection(box, width, height)
            if starting:
                result = targets.add(image, clipped_box, target_id, frame.sequence)
            else:
                result = targets.replace(image, clipped_box, target_id, frame.sequence, replacing=replacing)
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
        switched = f" instead of target {replacing}" if replacing not in (None, target_id) else ""
        self.get_logger().info(
            f"tracking target {target_id}{switched} from the image stamped {frame.stamp_ns / 1e9:.3f} s"
        )
        skipped = max(0, frame.sequence - self._last_sequence - 1)
        self._publish(
            [result], frame, image, timing, dropped=0 if was_idle else skipped, idle=skipped if was_idle else 0
        )
        self._catch_up(frame.sequence)

    def _frame_for_selection(self, msg: SelectTarget) -> ReceivedFrame | None:
        stamp_ns = stamp_to_ns(msg.header.stamp)
        newest = self._cache.newest()
        if newest is None:
            self.get_logger().warning(
                f"selection of target {msg.target_id} rejected: no image received yet on {self._image_topic}"
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
        sampled evenly (always ending on the newest) to bound the delay. Other targets take part
        only in the frames they have not seen yet (the core skips the rest for them).
        """
        backlog = self._cache.after(init_sequence)
        limit = self._loaded_settings.max_catch_up_frames
        if len(backlog) > limit:
            if limit == 0:
                backlog = []
            else:
                picks = np.linspace(0, len(backlog) - 1, limit).round().astype(int)
                backlog = [backlog[i] for i in sorted(set(picks.tolist()))]
        for frame in backlog:
            if not self._targets:
                break
            self._process(frame)

    def _process(self, frame: ReceivedFrame) -> None:
        """Track every target that has not seen ``frame`` yet, in one batched pass; publish."""
        if not self._targets.needs_frame(frame.sequence):
            return
        started = time.monotonic()
        try:
            image = frame.decode()
        except ValueError as error:
            self._stats.image_rejected()
            # Counted once, as rejected: the frames before it were dropped, and it is no gap.
            self._stats.frames_skipped(dropped=max(0, frame.sequence - self._last_sequence - 1))
            self._last_sequence = max(self._last_sequence, frame.sequence)
            self._warn(f"dropped image: {error}")
            return
        decoded = time.monotonic()
        before = {target.target_id: target.status for target in self._targets.targets}
        results = self._targets.step(image, frame.sequence)
        timing = _FrameTiming(wait=started - frame.received, decode=decoded - started, step=time.monotonic() - decoded)
        dropped = max(0, frame.sequence - self._last_sequence - 1)
        for result in results:
            previous_status = before.get(result.target_id)
            if (
                result.status != previous_status
                and result.status in (TrackStatus.LOST, TrackStatus.TRACKING)
                and (previous_status != TrackStatus.INITIALIZING)
            ):
                self.get_logger().info(
                    f"target {result.target_id} {result.status.name} (presence {result.presence:.2f})"
                )
        wide = sum(1 for result in results if result.search_wide)
        self._publish(results, frame, image, timing, dropped, wide_searches=wide)

    def _cancel(self, reason: str, target_id: int = 0) -> list[int]:
        """End ``target_id`` (0: every target); publish their IDLE boxes. Returns the ids ended."""
        if target_id == 0:
            ended = self._targets.clear()
        else:
            idle = self._targets.remove(target_id)
            if idle is None and self._targets:
                tracked = ", ".join(str(t) for t in self._targets.target_ids)
                self.get_logger().warning(f"CANCEL for target {target_id} ignored: no such target (tracking {tracked})")
            ended = [] if idle is None else [idle]
        if not ended:
            return []
        self._publish_arrays()  # what this cycle tracked goes out before the IDLE boxes
        ids = [result.target_id for result in ended]
        self.get_logger().info(
            f"stopped tracking target{'s' if len(ids) > 1 else ''} {', '.join(str(t) for t in ids)} ({reason})"
        )
        self._publish_final_boxes(ended)
        self._results_for_diagnostics = tuple(target.last_result for target in self._targets.targets)
        return ids

    def _suspend(self, reason: str) -> list[int]:
        """Report every target LOST (its last box, score 0) and end it; forget the cached frames.

        LOST, not IDLE: IDLE says an operator cancelled the target, while here nobody decided
        the target is gone; the node only stopped looking, and a controller following the box
        must stop as it does for a lost target. The reason goes to the log (/rosout, which the
        operator console shows): TrackedBox has no field for it. The targets are ended rather
        than kept for the next activation because the frames in between are never seen; a
        new selection starts tracking again. Returns the ids reported.
        """
        self._publish_arrays()  # what this cycle tracked goes out before the LOST boxes
        lost = [
            dataclasses.replace(target.last_result, status=TrackStatus.LOST, score=0.0, presence=0.0, search_wide=False)
            for target in self._targets.targets
        ]
        self._targets.clear()
        self._cache.clear()  # a selection after activation must not start on an image from before
        self._results_for_diagnostics = ()
        if not lost:
            return []
        ids = [result.target_id for result in lost]
        self.get_logger().warning(
            f"target{'s' if len(ids) > 1 else ''} {', '.join(str(t) for t in ids)} reported LOST and ended: "
            f"{reason}; select again once the node is active"
        )
        self._publish_final_boxes(lost)
        return ids

    def _publish_final_boxes(self, results: list[SessionResult]) -> None:
        """Publish the last box of targets that end outside an image callback (cancelled or
        suspended): stamped now, on the last image's frame, each alone and in one array.
        """
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self._last_frame_id)
        boxes = [self._box_message(result, header, latency=0.0) for result in results]
        for box in boxes:
            self._box_publisher.publish(box)
        self._array_publisher.publish(TrackedBoxArray(header=header, boxes=boxes))

    # ------------------------------------------------------------------ worker thread: output
    def _box_message(self, result: SessionResult, header: Header, latency: float) -> TrackedBox:
        msg = TrackedBox()
        msg.header = header
        msg.target_id = int(result.target_id)
        msg.x, msg.y, msg.width, msg.height = (float(v) for v in result.box)
        msg.center_x, msg.center_y = (float(v) for v in result.center)
        # The confidence that the box is the target, which the status follows (TrackedBox.msg).
        msg.score = float(result.presence)
        msg.status = int(result.status)
        msg.age = int(result.age)
        msg.processing_latency = _duration(latency)
        return msg

    def _publish(
        self,
        results: list[SessionResult],
        frame: ReceivedFrame,
        image: np.ndarray,
        timing: _FrameTiming,
        dropped: int = 0,
        idle: int = 0,
        wide_searches: int = 0,
    ) -> None:
        """Publish the boxes ``results`` gave for ``frame`` on tracked_box at once, and keep them
        for the frame's tracked_boxes array (sent at the end of the worker cycle). ``dropped``,
        ``idle``, ``wide_searches``: counted in the statistics (``NodeStats.frame_processed``).
        """
        now = time.monotonic()
        if self._last_processed_at is not None and now > self._last_processed_at:
            rate = 1.0 / (now - self._last_processed_at)
            # Exponential average over ~10 frames: a steady, readable FPS figure.
            self._fps = rate if self._fps == 0.0 else 0.9 * self._fps + 0.1 * rate
        self._last_processed_at = now
        self._last_frame_id = frame.header.frame_id
        self._last_sequence = max(self._last_sequence, frame.sequence)
        boxes = [self._box_message(result, frame.header, now - frame.received) for result in results]
        for box in boxes:
            self._box_publisher.publish(box)
        if frame.sequence > self._last_array_sequence:
            self._pending_arrays.setdefault(frame.sequence, (frame.header, []))[1].extend(boxes)
        self._stats.frame_processed(
            time.monotonic() - frame.received,
            dropped,
            wait=timing.wait,
            decode=timing.decode,
            step=timing.step,
            idle_before=idle,
            wide_searches=wide_searches,
        )
        self._results_for_diagnostics = tuple(target.last_result for target in self._targets.targets)
        # Drawn and converted only while someone watches: otherwise it costs nothing.
        if self._debug_publisher.get_subscription_count() > 0:
            overlay = draw_targets_overlay(image, results, self._fps)
            self._debug_publisher.publish(bgr_to_image(overlay, frame.header))

    def _publish_arrays(self) -> None:
        """One tracked_boxes message per frame processed in this worker cycle, in camera order,
        with every target's box for that frame in the targets' order; none for a frame whose
        array went out in an earlier cycle (msg/TrackedBoxArray.msg).
        """
        order = {target_id: position for position, target_id in enumerate(self._targets.target_ids)}
        for sequence in sorted(self._pending_arrays):
            header, boxes = self._pending_arrays[sequence]
            if sequence <= self._last_array_sequence:
                continue
            boxes.sort(key=lambda box: order.get(box.target_id, len(order)))
            self._array_publisher.publish(TrackedBoxArray(header=header, boxes=boxes))
            self._last_array_sequence = sequence
        self._pending_arrays.clear()

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        if not self.context.ok():  # shutting down (SIGINT): the publisher is gone with the context
            return
        previous, current = self._diagnostics_snapshot, self._stats.snapshot()
        self._diagnostics_snapshot = current
        results = self._results_for_diagnostics
        first = results[0] if results else None
        status = _overall_status(results)
        diagnostics = DiagnosticArray()
        diagnostics.header.stamp = self.get_clock().now().to_msg()
        diagnostics.status.append(
            tracker_status(
                name=f"{self.get_fully_qualified_name()}: tracking",
                hardware_id=self._device_name,
                previous=previous,
                current=current,
                tracking_status=status.name,
                target_id=first.target_id if first is not None else 0,
                extra={
                    "model": self._loaded_settings.model,
                    "device": self._device_name,
                    # presence, raw score and age: the first target's; every target's under target_<id>.*
                    "presence": f"{first.presence:.3f}" if first is not None else "",
                    "score": f"{first.score:.3f}" if first is not None else "",
                    "age": str(first.age) if first is not None else "0",
                    "max_targets": str(self._loaded_settings.max_targets),
                    "cached_frames": str(len(self._cache)),
                    "cached_mb": f"{self._cache.nbytes / 2**20:.1f}",
                    **_budget_values(self._lost_budget),
                    **self._runtime.values(),
                },
                worker_alive=self._worker is not None and self._worker.is_alive(),
                targets=results,
            )
        )
        try:
            self._diagnostics_publisher.publish(diagnostics)
        except Exception:
            # SIGINT may shut the context down while this timer callback runs; the exception
            # would otherwise leave rclpy.spin and end the process with a traceback and exit code 1
            # (seen once in a 5-minute soak). Only then is it dropped.
            if self.context.ok():
                raise


class TrackerNode(_TrackerParts):
    """The tracker node (the default): loads, warms up and starts taking images in its
    constructor; see the module docstring and the README's topic table.
    """

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self._init_parts()
        # May raise (bad parameter, missing or mismatched checkpoint): main() reports it.
        self._load_tracker(declare_node_parameters(self))
        self._create_outputs(lifecycle=False)
        self._open_inputs()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(f"ready: {self._ready_message()}")

    def destroy_node(self) -> None:
        """Stop the worker before the node's publishers go away."""
        self._unload_tracker()
        super().destroy_node()


class LifecycleTrackerNode(_TrackerParts, LifecycleNode):
    """The tracker as a managed node (REP 2003-style lifecycle, ``rclpy.lifecycle``), for systems
    that bring their nodes up in order and switch them on and off without restarting them.

    - unconfigured (at start): nothing is loaded; the lifecycle services answer.
    - ``configure``: declares and validates the parameters, loads the model and warms it up,
      creates the (lifecycle) publishers. A bad parameter or checkpoint fails the transition
      with the plain node's one-line message, logged as an error, and the node stays
      unconfigured and running: fix the parameter (``ros2 param set``) and configure again.
    - ``activate``: subscribes to the camera and ``select_target``, offers ``cancel_tracking``,
      publishes /diagnostics; tracking works as in the plain node.
    - ``deactivate``: stops taking images and selections, reports every target LOST (last box,
      score 0) and ends it, keeps the model; activating again waits for a new selection.
    - ``cleanup``: destroys the publishers and frees the model.
    - ``shutdown`` (from any state): the above, as far as needed; then ``finished`` completes and
      the process exits 0.
    """

    def __init__(self, on_configured: Any = None, **node_kwargs: Any) -> None:
        """``on_configured``: called after each successful configure (main() freezes the objects
        loading made, see tracker_node.freeze_startup_objects).
        """
        LifecycleNode.__init__(self, NODE_NAME, **node_kwargs)
        self._init_parts()
        self._on_configured = on_configured
        self.finished: Future = Future()  # done once the node reached finalized
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info("unconfigured: configure to load the model, then activate to track")

    # ------------------------------------------------------------------ transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Read and validate the parameters, load and warm up the model, create the publishers."""
        started = time.monotonic()
        try:
            self._load_tracker(declare_node_parameters(self, reconfigurable=True))
            self._create_outputs(lifecycle=True)
        except Exception as error:  # noqa: BLE001 - reported as one line; the node stays unconfigured
            self._release()
            self.get_logger().error(f"configure failed: {startup_error(error)[1]}")
            return TransitionCallbackReturn.FAILURE
        if self._on_configured is not None:
            self._on_configured()
        self.get_logger().info(f"configured in {time.monotonic() - started:.1f} s: {self._ready_message()}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start taking images and selections, answering cancels, publishing /diagnostics."""
        result = super().on_activate(state)  # the lifecycle publishers first: boxes may follow at once
        self._open_inputs()
        self.get_logger().info("active: tracking on selections")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop taking input; report the targets LOST and end them; keep the model."""
        self._suspend_targets("the tracker node was deactivated")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy the publishers and free the model."""
        self._release()
        self.get_logger().info("cleaned up: model unloaded")
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release whatever the node holds in ``state``; then main() ends the process (exit 0)."""
        if self._inputs:  # shut down while active
            self._suspend_targets("the tracker node is shutting down")
        self._release()
        # After this callback returns (and its service answer went out), main() stops spinning.
        self.finished.set_result(state.label)
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised: release everything and return to unconfigured, as after cleanup."""
        self.get_logger().error(f"error while {state.label}: releasing everything; the node is unconfigured")
        self._release()
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------ helpers
    def _suspend_targets(self, reason: str) -> None:
        """Stop taking input, then have the worker report its targets LOST (in order after any
        selection or frame it holds already) and wait for it.
        """
        self._close_inputs()
        if not self._loaded:
            return
        suspend = _Suspend(reason)
        self._slot.put_command(suspend)
        if not suspend.done.wait(CANCEL_SERVICE_TIMEOUT_S):
            self.get_logger().warning("the tracker did not finish its step in time; its targets were not reported")

    def _release(self) -> None:
        """Whatever configure and activate made, in reverse order; safe in any state."""
        self._close_inputs()
        self._destroy_outputs()
        self._unload_tracker()

    def destroy_node(self) -> None:
        """Stop the worker before the node's publishers go away (Ctrl-C in any state)."""
        self._stop_worker()
        super().destroy_node()


def startup_error(error: BaseException) -> tuple[str, str]:
    """What went wrong loading the node, as (``"weights"`` or ``"parameter"``, one line).

    The plain node exits with the code for the kind (tracker_node.main); the managed node logs
    the line and fails its configure transition.
    """
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, (CheckpointError, FileNotFoundError)):
        return "weights", f"cannot load weights: {text}"
    if isinstance(error, ParameterException):
        return "parameter", f"invalid parameter: {text}"
    if isinstance(error, (ValueError, TypeError)):
        return "parameter", f"invalid configuration: {text}"
    if isinstance(error, RuntimeError):
        # e.g. a tracker.* setting that does not fit the network's output size.
        return "parameter", f"cannot start the tracker: {text}"
    return "weights", f"cannot start: {type(error).__name__}: {text}"


def _budget_values(budget: LostSearchBudget) -> dict[str, str]:
    """The lost search's budget in /diagnostics: the setting, the measured image period and cost
    per network crop, and the step time a lost frame may take now (ms; empty while unknown).
    """

    def ms(seconds: float | None) -> str:
        return "" if seconds is None else f"{seconds * 1e3:.1f}"

    return {
        "lost_search_budget": str(budget.budget),
        "image_period_ms": ms(budget.frame_period_s),
        "crop_cost_ms": ms(budget.crop_cost_s),
        "lost_step_budget_ms": ms(budget.seconds()),
    }


def _overall_status(results: tuple[SessionResult, ...]) -> TrackStatus:
    """The node's status: IDLE without targets, one target's own status, and for several
    TRACKING while any is tracked (LOST when all are lost, INITIALIZING while all are new).
    """
    statuses = {result.status for result in results}
    if not statuses:
        return TrackStatus.IDLE
    if len(statuses) == 1:
        return statuses.pop()
    return TrackStatus.TRACKING if TrackStatus.TRACKING in statuses else min(statuses)
