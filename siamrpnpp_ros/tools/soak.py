r"""Soak benchmark: the tracker node fed by a camera for a long time; memory and latency over time.

    python -m siamrpnpp_ros.tools.soak --duration 3600 --rate 60 --absent-every 300 --absent-for 10 \
        --stall-every 420 --stall-for 5 --stall-restart --sample-period 5 --out out/soak/hour   # issue #16
    python -m siamrpnpp_ros.tools.soak --duration 240 --rate 60 --absent-every 60 --absent-for 6 \
        --stall-every 90 --stall-for 4 --stall-restart --out out/soak/short

The node is started as the latency bench starts it (``tools.node_under_test``: its own process,
``python -m siamrpnpp_ros.tracker_node``, a private ROS domain, localhost discovery, the Fast
DDS large-image profile; sensor-data QoS) and this process plays the camera: real footage
(default Debian's ``vtest.avi``, resized to ``--width`` x ``--height``, played forwards then
backwards), stamped with the ROS clock, at ``--rate`` Hz for ``--duration`` seconds after the
target is selected. Two disturbances can be scheduled:

``--absent-every/--absent-for``  the target leaves: for ``absent-for`` seconds at the end of
                                 every ``absent-every`` seconds the camera sends uniform grey
                                 frames (a covered lens), so the target is LOST and must be
                                 found again when the footage returns.
``--stall-every/--stall-for``    the camera stalls: nothing is published for ``stall-for``
                                 seconds in the middle of every ``stall-every`` seconds; with
                                 ``--stall-restart`` the camera's DDS participant is destroyed
                                 and a new one created (a driver restart: the node matches a new
                                 participant, writer and shared-memory segment).

Every ``--sample-period`` seconds it reads the node's memory from ``/proc/<pid>/status``
(``VmRSS``, ``RssAnon``, ``RssFile``, ``RssShmem``, threads) and ``/proc/<pid>/smaps`` (resident memory of
the ``[heap]`` mapping, which holds glibc's main malloc arena, and of the other anonymous
mappings: thread arenas, large blocks, library data). ``--tracemalloc`` starts the node with
``SIAMRPNPP_TRACEMALLOC=1``; a node that honours it reports the Python heap it traces in
``/diagnostics`` (``python_traced_mb``), and any ``gc_*`` or ``python_*`` key the node reports
is kept with each sample. Every box is matched to its frame by the header stamp: ``e2e`` is the
time from ``publish()`` here to the box's arrival here, ``node`` the box's
``processing_latency``.

It writes, under ``--out``: ``report.json`` (settings, load averages, samples, per-minute
figures, the worst boxes, the node's counters and the goals), ``report.md`` (the same as
tables), ``soak.png`` (RSS, latency and box size against time) and ``boxes.npz`` (every
box). It is a benchmark, not a test: it exits 0 when the run completed, whatever the figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from siamrpnpp_ros.tools.latency_bench import (
    FRAME_ID,
    NODE_STARTUP_TIMEOUT_S,
    PREROLL_FRAMES,
    REPO_ROOT,
    SELECT_RETRY_S,
    Material,
    _box_for,
    _finite,
    _load,
    _loadavg,
    _stamp_ns,
    add_camera_and_node_options,
    build_messages,
    load_material,
    pingpong_index,
    resolve_model,
)
from siamrpnpp_ros.tools.node_under_test import pick_domain_id, tracker_node_under_test

PROGRAM = "soak"
DEFAULT_DIAGNOSTICS_PERIOD_S = 1.0
INIT_TIMEOUT_S = 120.0
LAST_BOX_TIMEOUT_S = 10.0  # after the last frame: until its box (or a newer one) arrives
PUBLISHED_KEEP_S = 30.0  # publish times older than this without a box are forgotten
ABSENT_GREY = 114  # the uniform frame sent while the target is away (pysot's padding grey)
WORST_BOXES = 20
RESTART_MATCH_TIMEOUT_S = 10.0  # a restarted camera waits this long at most for the node to match it
FINAL_COUNTERS_TIMEOUT_S = 60.0  # after the stream: until the node's counters add up (a slow last step)
RECOVERY_S = 3.0  # boxes this long after an absence or a stall still count as disturbed
# Node diagnostics kept with each sample (numbers only); gc_* and python_* keys are kept too.
DIAGNOSTIC_KEYS = (
    "frames_received",
    "frames_processed",
    "dropped_frames",
    "rejected_images",
    "idle_frames",
    "wide_searches",
    "processing_rate_hz",
    "input_rate_hz",
    "latency_mean_ms",
    "latency_max_ms",
    "queue_wait_mean_ms",
    "decode_mean_ms",
    "tracker_step_mean_ms",
    "cached_frames",
    "cached_mb",
)


# ----------------------------------------------------------------------------- schedule
@dataclass(frozen=True)
class Schedule:
    """When the target is away and when the camera stalls, in seconds since streaming began."""

    absent_every: float = 0.0
    absent_for: float = 0.0
    stall_every: float = 0.0
    stall_for: float = 0.0

    def absent(self, t: float) -> bool:
        """True while the camera shows no target: the last ``absent_for`` s of each period."""
        if self.absent_every <= 0 or self.absent_for <= 0 or t < 0:
            return False
        return t % self.absent_every >= self.absent_every - self.absent_for

    def stalled(self, t: float) -> bool:
        """True while the camera publishes nothing: ``stall_for`` s from the middle of each period."""
        if self.stall_every <= 0 or self.stall_for <= 0 or t < 0:
            return False
        position = t % self.stall_every
        start = self.stall_every / 2
        return start <= position < start + self.stall_for

    def windows(self, duration: float) -> dict[str, list[tuple[float, float]]]:
        """The absent and stall windows within ``duration`` seconds, as (start, end) pairs."""
        result: dict[str, list[tuple[float, float]]] = {"absent": [], "stall": []}
        if self.absent_every > 0 and self.absent_for > 0:
            k = 1
            while (start := k * self.absent_every - self.absent_for) < duration:
                result["absent"].append((start, min(duration, k * self.absent_every)))
                k += 1
        if self.stall_every > 0 and self.stall_for > 0:
            k = 0
            while (start := k * self.stall_every + self.stall_every / 2) < duration:
                result["stall"].append((start, min(duration, start + self.stall_for)))
                k += 1
        return result


# ----------------------------------------------------------------------------- node memory
def read_status_memory(pid: int) -> dict[str, float]:
    """``VmRSS``, ``VmHWM``, ``RssAnon``, ``RssFile``, ``RssShmem`` (MiB) and ``Threads`` of a process."""
    wanted = {
        "VmRSS": "rss_mb",
        "VmHWM": "hwm_mb",
        "RssAnon": "anon_mb",
        "RssFile": "file_mb",
        "RssShmem": "shmem_mb",
        "Threads": "threads",
    }
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in wanted:
                number = float(rest.split()[0])
                values[wanted[key]] = number if key == "Threads" else number / 1024.0
    return values


def read_smaps_memory(pid: int) -> dict[str, float]:
    """Resident MiB of the ``[heap]`` mapping (glibc's main arena), of the other anonymous
    mappings (thread arenas, blocks served by mmap, library data) and their count.
    """
    heap_kb = anon_kb = 0
    anon_mappings = 0
    current = ""
    with open(f"/proc/{pid}/smaps", encoding="ascii", errors="replace") as smaps:
        for line in smaps:
            first = line.split(maxsplit=6)
            if not first:
                continue
            if "-" in first[0] and not first[0].endswith(":"):  # a mapping's header line
                name = first[5].strip() if len(first) > 5 else ""
                current = "heap" if name == "[heap]" else ("anon" if name == "" else "")
                anon_mappings += current == "anon"
            elif first[0] == "Rss:" and current:
                if current == "heap":
                    heap_kb += int(first[1])
                else:
                    anon_kb += int(first[1])
    return {"heap_mb": heap_kb / 1024.0, "other_anon_mb": anon_kb / 1024.0, "anon_mappings": float(anon_mappings)}


class MemorySampler:
    """Reads a process's memory every ``period`` seconds in a thread of its own."""

    def __init__(self, pid: int, period: float, smaps: bool, clock_zero: float) -> None:
        self.pid = pid
        self.period = period
        self.smaps = smaps
        self.clock_zero = clock_zero
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak_memory_sampler", daemon=True)

    def start(self) -> None:
        """Take one sample now and then one every period."""
        self._thread.start()

    def stop(self) -> None:
        """Take a last sample and stop."""
        self._stop.set()
        self._thread.join(timeout=10.0)
        self.sample()

    def sample(self) -> None:
        """One sample (times in seconds since ``clock_zero``); skipped once the process is gone."""
        try:
            values = {"t": time.monotonic() - self.clock_zero, **read_status_memory(self.pid)}
            if self.smaps:
                values.update(read_smaps_memory(self.pid))
        except (OSError, ValueError, IndexError):
            return
        load = _loadavg()
        if load:
            values["load1"] = load[0]
        self.samples.append(values)

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.period):
                return


# ----------------------------------------------------------------------------- one soak run
class Camera:
    """The image publisher in a DDS participant of its own (its own rclpy context), so that
    ``close`` then ``open`` is what a camera driver's restart looks like to the node: the old
    participant and its shared-memory segment go away and a new one is discovered.
    """

    def __init__(self, domain_id: int, kind: Any, topic: str, qos: Any) -> None:
        self.domain_id, self.kind, self.topic, self.qos = domain_id, kind, topic, qos
        self.generation = -1
        self.is_open = False
        self.open()

    def open(self) -> None:
        """Start a new participant with the image publisher."""
        import rclpy

        self.generation += 1
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.domain_id)
        self.node = rclpy.create_node(f"soak_camera_{self.generation}", context=self.context)
        self.publisher = self.node.create_publisher(self.kind, self.topic, self.qos)
        self.is_open = True

    def publish(self, message: Any) -> None:
        """Hand ``message`` to DDS."""
        self.publisher.publish(message)

    def subscribers(self) -> int:
        """Subscriptions matched with the image publisher."""
        return self.publisher.get_subscription_count()

    def close(self) -> None:
        """Destroy the publisher, node and context (the participant leaves)."""
        if self.is_open:
            self.is_open = False
            self.node.destroy_node()
            self.context.try_shutdown()


# Every non-IDLE box: (t arrival, stamp_ns, e2e s or NaN, processing_latency s, status,
# x, y, width, height, score).
BoxRow = tuple[float, int, float, float, int, float, float, float, float, float]


@dataclass
class SoakRecord:
    """What a soak run observed. Times are ``time.monotonic`` seconds since streaming began."""

    published: int = 0
    published_absent: int = 0
    stalls: int = 0
    restarts: int = 0
    boxes: list[BoxRow] = field(default_factory=list)
    diagnostics: list[dict[str, float]] = field(default_factory=list)  # t + numeric node values
    final_counters: dict[str, str] = field(default_factory=dict)
    memory: list[dict[str, float]] = field(default_factory=list)
    startup_s: float = math.nan
    init_s: float = math.nan  # streaming start -> INITIALIZING box
    streamed_s: float = 0.0
    node_exit_code: int | None = None
    preroll_published: int = 0


def _numeric_diagnostics(values: dict[str, str]) -> dict[str, float]:
    numbers: dict[str, float] = {}
    for key, value in values.items():
        if key in DIAGNOSTIC_KEYS or key.startswith(("gc_", "python_")):
            try:
                numbers[key] = float(value)
            except ValueError:
                continue
    return numbers


def soak_parameters(args: argparse.Namespace, material: Material) -> list[str]:
    """``name:=value`` for the node: the model, the camera's transport and QoS, no catch-up
    over cached frames after the selection, the diagnostics period; ``--param`` last (wins).
    """
    return [
        f"model:={material.model}",
        *([f"weights:={material.weights}"] if material.weights else []),
        f"device:={args.device}",
        f"use_compressed:={'true' if args.transport == 'compressed' else 'false'}",
        f"image_qos:={args.qos}",
        "max_catch_up_frames:=0",
        f"diagnostics_period:={args.diagnostics_period}",
        *args.param,
    ]


def run_soak(args: argparse.Namespace, material: Material, domain_id: int, out_dir: Path) -> SoakRecord:
    """Start the node, select the target, stream for ``args.duration`` seconds; record everything."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CompressedImage, Image

    # deferred: ROS messages and rclpy, only needed when a run starts (not for --help)
    from siamrpnpp_ros.msg import SelectTarget, TrackedBox
    from siamrpnpp_ros.ros.qos import COMMAND_QOS, DIAGNOSTICS_QOS, RESULT_QOS, image_qos

    messages = build_messages(material.frames, args.transport, args.jpeg_quality)
    grey = np.full_like(material.frames[0], ABSENT_GREY)
    (absent_message,) = build_messages([grey], args.transport, args.jpeg_quality)
    count = len(messages)
    material.frames = material.frames[:1]  # the messages hold the pixels now
    schedule = Schedule(args.absent_every, args.absent_for, args.stall_every, args.stall_for)
    record = SoakRecord()
    log_path = out_dir / "node.log"

    def say(text: str) -> None:
        if not args.quiet:
            print(f"{PROGRAM}: {text}", file=sys.stderr, flush=True)

    node_env = dict(assignment.partition("=")[::2] for assignment in args.env)
    if args.tracemalloc:
        node_env["SIAMRPNPP_TRACEMALLOC"] = "1"
    with tracker_node_under_test(
        soak_parameters(args, material),
        log_path,
        domain_id=domain_id,
        observer_name="soak_observer",
        node_env=node_env,
        log_level="info",
    ) as under_test:
        process, observer, node = under_test.process, under_test.observer, under_test.observer.node
        sampler: MemorySampler | None = None
        camera: Camera | None = None

        def fail(reason: str) -> SystemExit:
            return SystemExit(f"{PROGRAM}: {process.failure(reason)}")

        try:
            kind, topic = (Image, "image") if args.transport == "raw" else (CompressedImage, "image/compressed")
            camera = Camera(domain_id, kind, topic, image_qos(args.qos, depth=2))
            selections = node.create_publisher(SelectTarget, "select_target", COMMAND_QOS)
            published: dict[int, float] = {}  # stamp -> publish time, until its box arrives
            clock_zero = math.nan  # streaming start (set below)
            init_received: list[float] = []

            def on_box(box: TrackedBox) -> None:
                arrived = time.monotonic()
                if box.status == TrackedBox.STATUS_IDLE:
                    return
                stamp_ns = _stamp_ns(box.header.stamp)
                sent = published.pop(stamp_ns, math.nan)
                latency = box.processing_latency.sec + box.processing_latency.nanosec * 1e-9
                record.boxes.append(
                    (
                        arrived - clock_zero,
                        stamp_ns,
                        arrived - sent,
                        latency,
                        int(box.status),
                        float(box.x),
                        float(box.y),
                        float(box.width),
                        float(box.height),
                        float(box.score),
                    )
                )
                if box.status == TrackedBox.STATUS_INITIALIZING and not init_received:
                    init_received.append(arrived)

            def on_diagnostics(array: DiagnosticArray) -> None:
                for status in array.status:
                    if "siamrpnpp_tracker" in status.name:
                        values = {kv.key: kv.value for kv in status.values}
                        record.final_counters = values
                        if math.isfinite(clock_zero):
                            record.diagnostics.append(
                                {"t": time.monotonic() - clock_zero, **_numeric_diagnostics(values)}
                            )

            box_subscription = node.create_subscription(TrackedBox, "tracked_box", on_box, RESULT_QOS)
            node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, DIAGNOSTICS_QOS)

            say(f"starting the tracker node (domain {domain_id}); log {log_path}")
            record.startup_s = observer.wait_for_endpoints(
                process,
                lambda: (
                    camera.subscribers() > 0
                    and selections.get_subscription_count() > 0
                    and box_subscription.get_publisher_count() > 0
                ),
                NODE_STARTUP_TIMEOUT_S,
                fail,
            )
            say(
                f"node matched after {record.startup_s:.1f} s; streaming {args.width}x{args.height} at "
                f"{args.rate:g} Hz for {args.duration:g} s after the selection"
            )

            period = 1.0 / args.rate
            last_stamp = 0
            selected_at: float | None = None
            last_frame: tuple[int, int] = (0, 0)  # (publish index, stamp) of the newest frame
            stream_start: float | None = None  # the INITIALIZING box's arrival: the soak's t = 0
            stalled = False
            clock_zero = time.monotonic()
            sampler = MemorySampler(process.process.pid, args.sample_period, not args.no_smaps, clock_zero)
            sampler.start()
            next_due = clock_zero
            next_report = clock_zero + args.progress_period

            def publish(now: float, soak_t: float) -> None:
                nonlocal last_stamp, last_frame
                index = record.published
                away = schedule.absent(soak_t)
                message = absent_message if away else messages[pingpong_index(count, index)]
                stamp_ns = max(node.get_clock().now().nanoseconds, last_stamp + 1)
                last_stamp = stamp_ns
                message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
                message.header.frame_id = FRAME_ID
                published[stamp_ns] = time.monotonic()
                camera.publish(message)
                last_frame = (index, stamp_ns)
                record.published += 1
                record.published_absent += away
                if stream_start is None:
                    record.preroll_published += 1

            def select() -> None:
                nonlocal selected_at
                frame_index, stamp_ns = last_frame
                selection = SelectTarget()
                selection.header.stamp.sec, selection.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
                selection.header.frame_id = FRAME_ID
                selection.target_id = 1
                selection.command = SelectTarget.COMMAND_START
                box = _box_for(material, pingpong_index(count, frame_index))
                selection.x, selection.y, selection.width, selection.height = box
                selections.publish(selection)
                selected_at = time.monotonic()

            while True:
                now = time.monotonic()
                if process.process.poll() is not None:
                    raise fail("the tracker node stopped")
                if stream_start is None and init_received:
                    stream_start = init_received[0]
                    record.init_s = stream_start - clock_zero
                    say(f"target selected; INITIALIZING box {record.init_s:.1f} s after the first frame")
                soak_t = -1.0 if stream_start is None else now - stream_start
                if soak_t >= args.duration:
                    break
                if stream_start is None:
                    # Once the node reports images of its own: a selection before any image is refused.
                    node_has_images = record.final_counters.get("frames_received", "0") not in ("", "0")
                    if (
                        record.published >= PREROLL_FRAMES
                        and node_has_images
                        and (selected_at is None or now - selected_at > SELECT_RETRY_S)
                    ):
                        select()
                    if now - clock_zero > INIT_TIMEOUT_S:
                        raise fail(f"no INITIALIZING box within {INIT_TIMEOUT_S:.0f} s of streaming")
                if schedule.stalled(soak_t):
                    if not stalled:
                        stalled = True
                        record.stalls += 1
                        if args.stall_restart:
                            camera.close()
                    observer.spin_once(0.02)
                    next_due = time.monotonic()
                    continue
                if stalled:
                    stalled = False
                    if args.stall_restart:
                        # A new participant: frames sent before the node's subscription matches it
                        # would go nowhere, so the camera waits for that (counted as part of the stall).
                        camera.open()
                        record.restarts += 1
                        match_deadline = time.monotonic() + RESTART_MATCH_TIMEOUT_S
                        while camera.subscribers() == 0 and time.monotonic() < match_deadline:
                            observer.spin_once(0.01)
                        next_due = time.monotonic()
                        continue
                if now >= next_report:
                    next_report += args.progress_period
                    say(_progress_line(record, sampler, soak_t))
                if now >= next_due:
                    publish(now, soak_t)
                    next_due += period
                    if time.monotonic() > next_due + period:  # fell behind: go on at the rate, no burst
                        next_due = time.monotonic()
                    if len(published) > 4 * args.rate * PUBLISHED_KEEP_S:
                        cutoff = time.monotonic() - PUBLISHED_KEEP_S
                        for stamp in [s for s, t in published.items() if t < cutoff]:
                            del published[stamp]
                    continue
                observer.spin_once(min(next_due - now, 0.05))

            record.streamed_s = time.monotonic() - (stream_start or clock_zero)
            last_stamp_sent = last_frame[1]
            end = time.monotonic() + LAST_BOX_TIMEOUT_S
            while time.monotonic() < end and not any(stamp >= last_stamp_sent for _, stamp, *_ in record.boxes[-3:]):
                observer.spin_once(0.05)
            # The node's counters once the last frames are in: at least two diagnostics periods,
            # and until every frame the node received is accounted for (its last step done).
            settled = time.monotonic() + 2.5 * args.diagnostics_period
            end = settled + FINAL_COUNTERS_TIMEOUT_S
            while time.monotonic() < end and (time.monotonic() < settled or not _accounted(record.final_counters)):
                observer.spin_once(0.05)
            sampler.stop()
            record.memory = sampler.samples
            sampler = None
        finally:
            if sampler is not None:
                sampler.stop()
                record.memory = sampler.samples
            if camera is not None:
                camera.close()
    record.node_exit_code = under_test.exit_code
    return record


def _accounted(counters: dict[str, str]) -> bool:
    """Whether the node's diagnostics values add up: received = processed + dropped + rejected + idle."""
    try:
        received, processed, dropped, rejected = (
            int(counters[key]) for key in ("frames_received", "frames_processed", "dropped_frames", "rejected_images")
        )
    except (KeyError, ValueError):
        return False
    return received == processed + dropped + rejected + int(counters.get("idle_frames", "0") or 0)


def _progress_line(record: SoakRecord, sampler: MemorySampler, soak_t: float) -> str:
    rss = sampler.samples[-1]["rss_mb"] if sampler.samples else math.nan
    recent = [b[2] for b in record.boxes[-600:] if math.isfinite(b[2])]
    p99 = 1e3 * float(np.percentile(recent, 99)) if recent else math.nan
    load = _loadavg()
    return (
        f"t={soak_t:7.0f} s  published {record.published}  boxes {len(record.boxes)}  RSS {rss:.0f} MB  "
        f"e2e p99 (last 600 boxes) {p99:.0f} ms  load {_load(load)}"
    )


# ----------------------------------------------------------------------------- analysis
def _percentile(values: Sequence[float], q: float) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.percentile(finite, q)) if finite else math.nan


def analyse(record: SoakRecord, args: argparse.Namespace, schedule: Schedule) -> dict[str, Any]:
    """Figures of a soak run: memory flatness, latency percentiles, status cycles and the accounting."""
    from siamrpnpp_ros.msg import TrackedBox  # deferred: ROS messages (not for --help)

    tracking, lost = TrackedBox.STATUS_TRACKING, TrackedBox.STATUS_LOST
    stream = [b for b in record.boxes if b[4] in (tracking, lost)]
    e2e = [b[2] for b in stream]
    node_latency = [b[3] for b in stream]
    streamed = max(record.streamed_s, 1e-9)
    stall_s = sum(end - start for start, end in schedule.windows(record.streamed_s)["stall"])
    sustained = len(stream) / max(streamed - stall_s, 1e-9)

    # Status cycles: TRACKING -> LOST and LOST -> TRACKING transitions, in arrival order.
    lost_episodes = recoveries = 0
    previous = None
    for box in stream:
        if previous == tracking and box[4] == lost:
            lost_episodes += 1
        elif previous == lost and box[4] == tracking:
            recoveries += 1
        previous = box[4]

    memory = [s for s in record.memory if s["t"] >= record.init_s] if math.isfinite(record.init_s) else record.memory
    t0 = record.init_s if math.isfinite(record.init_s) else 0.0
    settle = args.settle if record.streamed_s >= 2 * args.settle else record.streamed_s / 4
    after = [s for s in memory if s["t"] - t0 >= settle]
    rss_after = [s["rss_mb"] for s in after]
    rss_at_settle = rss_after[0] if rss_after else math.nan
    flat = {
        "settle_s": settle,
        "rss_start_mb": memory[0]["rss_mb"] if memory else math.nan,
        "rss_at_settle_mb": rss_at_settle,
        "rss_end_mb": memory[-1]["rss_mb"] if memory else math.nan,
        "rss_min_after_settle_mb": min(rss_after) if rss_after else math.nan,
        "rss_max_after_settle_mb": max(rss_after) if rss_after else math.nan,
        "rss_peak_mb": max((s.get("hwm_mb", s["rss_mb"]) for s in record.memory), default=math.nan),
    }
    flat["rss_spread_after_settle_pct"] = (
        100.0 * (flat["rss_max_after_settle_mb"] - flat["rss_min_after_settle_mb"]) / rss_at_settle
        if rss_after
        else math.nan
    )
    flat["rss_growth_after_settle_pct"] = (
        100.0 * (flat["rss_end_mb"] - rss_at_settle) / rss_at_settle if rss_after else math.nan
    )

    counters = record.final_counters

    def counter(key: str) -> int | None:
        value = counters.get(key, "")
        return int(value) if value.isdigit() else None

    received, processed = counter("frames_received"), counter("frames_processed")
    dropped, rejected, idle = counter("dropped_frames"), counter("rejected_images"), counter("idle_frames")
    accounted = None
    if None not in (received, processed, dropped, rejected):
        accounted = processed + dropped + rejected + (idle or 0)  # type: ignore[operator]
    accounting = {
        "published": record.published,
        "published_absent": record.published_absent,
        "preroll_published": record.preroll_published,
        "received": received,
        "processed": processed,
        "dropped": dropped,
        "rejected": rejected,
        "idle": idle,
        "lost_in_transport": None if received is None else record.published - received,
        "unaccounted": None if accounted is None else received - accounted,  # type: ignore[operator]
        "boxes_received": len(record.boxes),
    }

    # Boxes away from the scheduled disturbances (absences, stalls, RECOVERY_S after each).
    windows = schedule.windows(record.streamed_s)
    spans = [(start, end + RECOVERY_S) for start, end in windows["absent"] + windows["stall"]]
    undisturbed = [b for b in stream if not any(lo <= b[0] - t0 < hi for lo, hi in spans)]
    calm = [b[2] for b in undisturbed]

    worst = sorted(stream, key=lambda b: -b[2] if math.isfinite(b[2]) else 0.0)[:WORST_BOXES]
    period = 1.0 / args.rate
    p99 = _percentile(e2e, 99)
    figures = {
        "sustained_rate_hz": sustained,
        "boxes": len(stream),
        "tracking_boxes": sum(b[4] == tracking for b in stream),
        "lost_boxes": sum(b[4] == lost for b in stream),
        "lost_episodes": lost_episodes,
        "recoveries": recoveries,
        "e2e_p50_ms": 1e3 * _percentile(e2e, 50),
        "e2e_p95_ms": 1e3 * _percentile(e2e, 95),
        "e2e_p99_ms": 1e3 * p99,
        "e2e_max_ms": 1e3 * _percentile(e2e, 100),
        "e2e_mean_ms": 1e3 * float(np.nanmean(e2e)) if e2e else math.nan,
        "node_p50_ms": 1e3 * _percentile(node_latency, 50),
        "node_p99_ms": 1e3 * _percentile(node_latency, 99),
        "node_max_ms": 1e3 * _percentile(node_latency, 100),
        "boxes_without_publish_time": sum(not math.isfinite(v) for v in e2e),
        "undisturbed_boxes": len(undisturbed),
        "undisturbed_e2e_p50_ms": 1e3 * _percentile(calm, 50),
        "undisturbed_e2e_p99_ms": 1e3 * _percentile(calm, 99),
        "undisturbed_e2e_max_ms": 1e3 * _percentile(calm, 100),
        # From the node's /diagnostics where it reports them (see the module docstring).
        # From the selection on: the start-up collection before gc.freeze is not a pause of the run.
        "gc_pause_max_ms": max(
            (d["gc_pause_max_ms"] for d in record.diagnostics if "gc_pause_max_ms" in d and d["t"] > t0 + 1.0),
            default=None,
        ),
        "gc_collections": record.diagnostics[-1].get("gc_collections") if record.diagnostics else None,
        "wide_searches": record.diagnostics[-1].get("wide_searches") if record.diagnostics else None,
    }
    goals = {
        "rss_flat_within_5pct": flat["rss_spread_after_settle_pct"] <= 5.0,
        "p99_under_2_periods_at_sustained_rate": 1e3 * p99 < 2e3 / sustained if sustained > 0 else False,
        "p99_limit_ms": 2e3 / sustained if sustained > 0 else math.nan,
        "max_under_150ms": figures["e2e_max_ms"] < 150.0,
        "all_frames_accounted": accounting["unaccounted"] == 0,
        "camera_period_ms": 1e3 * period,
    }
    return {
        "memory": flat,
        "latency": figures,
        "accounting": accounting,
        "goals": goals,
        "worst_boxes": [
            {"t_s": b[0], "stamp_ns": b[1], "e2e_ms": 1e3 * b[2], "node_ms": 1e3 * b[3], "status": b[4]} for b in worst
        ],
        "minutes": per_minute(record, stream),
        "windows": windows,
    }


def per_minute(record: SoakRecord, stream: Sequence[BoxRow]) -> list[dict[str, Any]]:
    """One row per minute of streaming: RSS at its end, box count and e2e percentiles."""
    t0 = record.init_s if math.isfinite(record.init_s) else 0.0
    rows = []
    minutes = math.ceil(record.streamed_s / 60.0)
    for minute in range(minutes):
        lo, hi = 60.0 * minute, 60.0 * (minute + 1)
        boxes = [b for b in stream if lo <= b[0] - t0 < hi]
        e2e = [b[2] for b in boxes]
        rss = [s["rss_mb"] for s in record.memory if lo <= s["t"] - t0 < hi]
        rows.append(
            {
                "minute": minute + 1,
                "rss_mb": rss[-1] if rss else math.nan,
                "boxes": len(boxes),
                "e2e_p50_ms": 1e3 * _percentile(e2e, 50),
                "e2e_p99_ms": 1e3 * _percentile(e2e, 99),
                "e2e_max_ms": 1e3 * _percentile(e2e, 100),
            }
        )
    return rows


# ----------------------------------------------------------------------------- output
def plot(report: dict[str, Any], record: SoakRecord, path: Path) -> None:
    """RSS (and its parts), latency and the box's size against time, absences and stalls shaded.

    The size panel is there because a box that drifts and grows while still TRACKING is what
    keeps a lost target from being found again (docs/performance.md, *The held size*).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = record.init_s if math.isfinite(record.init_s) else 0.0
    figure, (memory_axis, latency_axis, size_axis) = plt.subplots(
        3, 1, figsize=(11, 9.5), sharex=True, gridspec_kw={"height_ratios": [3, 3, 2]}
    )
    samples = record.memory
    minutes = [(s["t"] - t0) / 60 for s in samples]
    memory_axis.plot(minutes, [s["rss_mb"] for s in samples], label="RSS", color="C0")
    if samples and "heap_mb" in samples[0]:
        memory_axis.plot(
            minutes, [s.get("heap_mb", math.nan) for s in samples], label="[heap] (main arena)", color="C1"
        )
        memory_axis.plot(
            minutes, [s.get("other_anon_mb", math.nan) for s in samples], label="other anonymous", color="C2"
        )
    traced = [(d["t"], d["python_traced_mb"]) for d in record.diagnostics if "python_traced_mb" in d]
    if traced:
        memory_axis.plot(
            [(t - t0) / 60 for t, _ in traced], [v for _, v in traced], label="Python heap (tracemalloc)", color="C3"
        )
    memory_axis.set_ylabel("node memory, MiB")
    memory_axis.set_ylim(bottom=0)
    memory_axis.legend(loc="lower right", fontsize=8)
    memory_axis.grid(alpha=0.3)

    stream = [b for b in record.boxes if b[4] in (2, 3) and math.isfinite(b[2])]
    if stream:
        times = np.array([(b[0] - t0) / 60 for b in stream])
        e2e = np.array([1e3 * b[2] for b in stream])
        colours = np.where(np.array([b[4] for b in stream]) == 3, "C3", "C0")
        latency_axis.scatter(times, e2e, s=2, c=colours, alpha=0.5, rasterized=True, linewidths=0)
        edges = np.arange(0.0, times.max() + 0.5, 0.5)  # p99 per half minute
        centres, p99s = [], []
        for lo, hi in itertools.pairwise(edges):
            inside = e2e[(times >= lo) & (times < hi)]
            if inside.size:
                centres.append((lo + hi) / 2)
                p99s.append(np.percentile(inside, 99))
        latency_axis.plot(centres, p99s, color="k", lw=1, label="p99 per 30 s")
    goals = report["goals"]
    if math.isfinite(goals["p99_limit_ms"]):
        latency_axis.axhline(goals["p99_limit_ms"], color="C2", ls="--", lw=1, label="2 periods at the sustained rate")
    latency_axis.axhline(150.0, color="C3", ls=":", lw=1, label="150 ms")
    latency_axis.set_yscale("log")
    latency_axis.set_ylabel("publish -> box, ms (red: LOST)")
    latency_axis.legend(loc="upper right", fontsize=8)
    latency_axis.grid(alpha=0.3, which="both")

    if stream:
        # b: (t, stamp, e2e, node, status, x, y, width, height, score); the side of a square of equal area
        sides = np.array([math.sqrt(max(b[7], 0.0) * max(b[8], 0.0)) for b in stream])
        size_axis.scatter(times, sides, s=2, c=colours, alpha=0.5, rasterized=True, linewidths=0)
    size_axis.set_yscale("log")
    size_axis.set_ylabel("box side, px\n(sqrt(w h); red: LOST)")
    size_axis.set_xlabel("minutes since the selection")
    size_axis.grid(alpha=0.3, which="both")
    for axis in (memory_axis, latency_axis, size_axis):
        for start, end in report["windows"]["absent"]:
            axis.axvspan(start / 60, end / 60, color="0.85", lw=0)
        for start, end in report["windows"]["stall"]:
            axis.axvspan(start / 60, end / 60, color="#f6c8c8", lw=0)
    s = report["settings"]
    figure.suptitle(
        f"soak: {s['model']} on {s['device']}, {s['width']}x{s['height']} {s['transport']} at {s['rate']:g} Hz, "
        f"{record.streamed_s / 60:.1f} min; load average {_load(report['loadavg_start'])} -> "
        f"{_load(report['loadavg_end'])} (grey: target away, red: camera stalled)",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def format_report(report: dict[str, Any]) -> str:
    """The report as Markdown: settings, memory, latency, accounting, goals, per minute."""
    s, m, lat, acc, goals = (report[k] for k in ("settings", "memory", "latency", "accounting", "goals"))

    def f(value: Any, digits: int = 1) -> str:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "n/a"
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = [
        (
            f"# soak: {s['model']} ({s['weights']}) on {s['device']}, {s['width']}x{s['height']} {s['transport']} "
            f"at {s['rate']:g} Hz, QoS {s['qos']}, {report['streamed_s'] / 60:.1f} min streamed"
        ),
        (
            f"# {os.cpu_count()} cores; load average start {_load(report['loadavg_start'])}, "
            f"end {_load(report['loadavg_end'])}; node env {' '.join(s['env']) or '(default)'}; "
            f"params {' '.join(s['param']) or '(default)'}"
        ),
        (
            f"# target away {s['absent_for']:g} s every {s['absent_every']:g} s; camera stalls "
            f"{s['stall_for']:g} s every {s['stall_every']:g} s"
            f"{' with a publisher restart' if s['stall_restart'] else ''}"
        ),
        "",
        "| RSS start | at settle | end | min..max after settle | spread | growth after settle | peak (HWM) |",
        "|---|---|---|---|---|---|---|",
        (
            f"| {f(m['rss_start_mb'])} | {f(m['rss_at_settle_mb'])} (t={f(m['settle_s'], 0)} s) | "
            f"{f(m['rss_end_mb'])} | {f(m['rss_min_after_settle_mb'])}..{f(m['rss_max_after_settle_mb'])} | "
            f"{f(m['rss_spread_after_settle_pct'])} % | {f(m['rss_growth_after_settle_pct'])} % | "
            f"{f(m['rss_peak_mb'])} |"
        ),
        "",
        (
            "| boxes | TRACKING | LOST | lost episodes | recoveries | sustained Hz | e2e p50 | p95 | p99 | max | "
            "node p50 | node p99 | node max |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        (
            f"| {lat['boxes']} | {lat['tracking_boxes']} | {lat['lost_boxes']} | {lat['lost_episodes']} | "
            f"{lat['recoveries']} | {f(lat['sustained_rate_hz'])} | {f(lat['e2e_p50_ms'])} | {f(lat['e2e_p95_ms'])} | "
            f"{f(lat['e2e_p99_ms'])} | {f(lat['e2e_max_ms'])} | {f(lat['node_p50_ms'])} | {f(lat['node_p99_ms'])} | "
            f"{f(lat['node_max_ms'])} |"
        ),
        "",
        (
            f"Away from absences and stalls (and {RECOVERY_S:g} s after each): {lat['undisturbed_boxes']} boxes, e2e "
            f"p50 {f(lat['undisturbed_e2e_p50_ms'])}, p99 {f(lat['undisturbed_e2e_p99_ms'])}, max "
            f"{f(lat['undisturbed_e2e_max_ms'])} ms. Node: wide searches {f(lat['wide_searches'])}, garbage "
            f"collections {f(lat['gc_collections'])}, longest collection {f(lat['gc_pause_max_ms'])} ms."
        ),
        "",
        (
            "| published | received | processed | dropped | rejected | idle | unaccounted | lost in transport | "
            "stalls | restarts |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
        (
            f"| {acc['published']} | {f(acc['received'])} | {f(acc['processed'])} | {f(acc['dropped'])} | "
            f"{f(acc['rejected'])} | {f(acc['idle'])} | {f(acc['unaccounted'])} | {f(acc['lost_in_transport'])} | "
            f"{report['stalls']} | {report['restarts']} |"
        ),
        "",
        (
            f"Goals: RSS flat within 5 % after settle: {goals['rss_flat_within_5pct']}; p99 under 2 periods at the "
            f"sustained rate ({f(goals['p99_limit_ms'])} ms): {goals['p99_under_2_periods_at_sustained_rate']}; "
            f"max under 150 ms: {goals['max_under_150ms']}; every frame accounted for: "
            f"{goals['all_frames_accounted']}; node exit code {report['node_exit_code']}."
        ),
        "",
        "| minute | RSS MiB | boxes | e2e p50 | p99 | max |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["minutes"]:
        lines.append(
            f"| {row['minute']} | {f(row['rss_mb'])} | {row['boxes']} | {f(row['e2e_p50_ms'])} | "
            f"{f(row['e2e_p99_ms'])} | {f(row['e2e_max_ms'])} |"
        )
    lines += ["", "Worst boxes (t since the first frame, s; e2e and node ms):", ""]
    lines += [
        f"- t={w['t_s']:.1f} e2e {w['e2e_ms']:.1f} node {w['node_ms']:.1f} status {w['status']}"
        for w in report["worst_boxes"][:10]
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    """The soak tool's options (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=300.0, help="seconds streamed after the selection")
    parser.add_argument("--rate", type=float, default=60.0, help="camera rate in Hz (default 60)")
    parser.add_argument("--transport", choices=("raw", "compressed"), default="raw")
    add_camera_and_node_options(parser, distinct_frames=240)
    parser.add_argument("--absent-every", type=float, default=0.0, help="seconds between target absences (0: none)")
    parser.add_argument("--absent-for", type=float, default=0.0, help="seconds each absence lasts")
    parser.add_argument("--stall-every", type=float, default=0.0, help="seconds between camera stalls (0: none)")
    parser.add_argument("--stall-for", type=float, default=0.0, help="seconds each stall lasts")
    parser.add_argument("--stall-restart", action="store_true", help="re-create the image publisher after each stall")
    parser.add_argument("--sample-period", type=float, default=5.0, help="seconds between memory samples")
    parser.add_argument("--no-smaps", action="store_true", help="read /proc/<pid>/status only")
    parser.add_argument("--tracemalloc", action="store_true", help="ask the node to trace its Python heap")
    parser.add_argument(
        "--diagnostics-period", type=float, default=DEFAULT_DIAGNOSTICS_PERIOD_S, help="the node's, seconds"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=600.0,
        help="RSS flatness is judged from this many seconds on (a quarter of shorter runs)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment variable for the node only, e.g. MALLOC_ARENA_MAX=2 (repeatable)",
    )
    parser.add_argument("--progress-period", type=float, default=30.0, help="seconds between progress lines")
    parser.add_argument("--out", default=str(REPO_ROOT / "out" / "soak"), help="report folder (default out/soak)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a soak and write its report; returns 0 when the run completed."""
    args = build_parser().parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.width < 16 or args.height < 16 or args.sample_period <= 0:
        raise SystemExit(f"{PROGRAM}: --rate, --duration, --sample-period, --width and --height must be positive")
    if any("=" not in item for item in args.env):
        raise SystemExit(f"{PROGRAM}: --env takes NAME=VALUE")
    if args.stall_every and args.stall_for >= args.stall_every / 2:
        raise SystemExit(f"{PROGRAM}: --stall-for must be shorter than half of --stall-every")
    if args.absent_every and args.absent_for >= args.absent_every:
        raise SystemExit(f"{PROGRAM}: --absent-for must be shorter than --absent-every")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    loadavg_start = _loadavg()
    material = load_material(args)
    model, weights = resolve_model(args)
    schedule = Schedule(args.absent_every, args.absent_for, args.stall_every, args.stall_for)
    record = run_soak(args, material, pick_domain_id(37), out_dir)
    settings = {
        key: getattr(args, key)
        for key in (
            "duration",
            "rate",
            "width",
            "height",
            "transport",
            "qos",
            "device",
            "absent_every",
            "absent_for",
            "stall_every",
            "stall_for",
            "stall_restart",
            "sample_period",
            "tracemalloc",
            "param",
            "env",
            "settle",
        )
    } | {"model": model, "weights": weights or "bundled", "video": material.video}
    report = {
        "settings": settings,
        "loadavg_start": loadavg_start,
        "loadavg_end": _loadavg(),
        "startup_s": record.startup_s,
        "init_s": record.init_s,
        "streamed_s": record.streamed_s,
        "stalls": record.stalls,
        "restarts": record.restarts,
        "node_exit_code": record.node_exit_code,
        **analyse(record, args, schedule),
        "node_final_diagnostics": record.final_counters,
        "memory_samples": record.memory,
        "diagnostics": record.diagnostics,
    }
    (out_dir / "report.json").write_text(json.dumps(_finite(report), indent=1) + "\n", encoding="utf-8")
    text = format_report(report)
    (out_dir / "report.md").write_text(text + "\n", encoding="utf-8")
    boxes = np.array([b[:1] + b[2:] for b in record.boxes], dtype=float).reshape(-1, 9)
    np.savez_compressed(
        out_dir / "boxes.npz",
        t=boxes[:, 0],
        e2e=boxes[:, 1],
        node=boxes[:, 2],
        status=boxes[:, 3].astype(np.int8),
        box=boxes[:, 4:8],  # x, y, width, height in image pixels: what a LOST target was held at
        score=boxes[:, 8],
        stamp_ns=np.array([b[1] for b in record.boxes], dtype=np.int64),
    )
    plot(report, record, out_dir / "soak.png")
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
