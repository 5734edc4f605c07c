"""Counters the node keeps, and their ``diagnostic_msgs/DiagnosticStatus`` form."""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


@dataclass
class StatsSnapshot:
    """Totals at one moment; two snapshots give the rates over the time between them."""

    when: float
    received: int
    processed: int
    dropped: int
    rejected: int
    latency_sum: float
    latency_max: float
    last_received: float | None
    # Parts of latency_sum: waiting for the worker, decoding the message, the tracker step.
    wait_sum: float = 0.0
    decode_sum: float = 0.0
    step_sum: float = 0.0
    # Frames never tracked because no target was active; tracker steps that searched wide.
    idle: int = 0
    wide_searches: int = 0
    # Frames whose step had a lost target's search (tiles or wide crop), and their step time.
    wide_frames: int = 0
    wide_step_sum: float = 0.0


class NodeStats:
    """Thread-safe counters: images received/processed/dropped/rejected and processing latency."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.rejected = 0
        self._latency_sum = 0.0
        self._latency_max = 0.0  # since the last snapshot
        self._last_received: float | None = None
        self._wait_sum = 0.0
        self._decode_sum = 0.0
        self._step_sum = 0.0
        self.idle = 0
        self.wide_searches = 0
        self._wide_frames = 0
        self._wide_step_sum = 0.0

    def image_received(self, when: float) -> None:
        """Count one image arriving at monotonic time ``when``."""
        with self._lock:
            self.received += 1
            self._last_received = when

    def image_rejected(self) -> None:
        """Count one image refused as invalid (failed its checks or its decoding)."""
        with self._lock:
            self.rejected += 1

    def frames_skipped(self, dropped: int = 0, idle: int = 0) -> None:
        """Count accepted frames that will never be tracked: ``dropped`` while a target was
        active (replaced in the slot), ``idle`` while none was.
        """
        with self._lock:
            self.dropped += dropped
            self.idle += idle

    def frame_processed(
        self,
        latency: float,
        dropped_before: int = 0,
        wait: float = 0.0,
        decode: float = 0.0,
        step: float = 0.0,
        idle_before: int = 0,
        wide_searches: int = 0,
    ) -> None:
        """One published box: ``latency`` from the image's arrival, of which ``wait`` in the
        slot, ``decode`` converting the message and ``step`` in the tracker (seconds).

        ``dropped_before`` / ``idle_before``: frames accepted since the last processed one and
        never tracked, while a target was active / while none was; ``wide_searches``: targets
        this step searched with the long-term tracker's wide crop.
        """
        with self._lock:
            self.processed += 1
            self.dropped += dropped_before
            self.idle += idle_before
            self.wide_searches += wide_searches
            self._latency_sum += latency
            self._latency_max = max(self._latency_max, latency)
            self._wait_sum += wait
            self._decode_sum += decode
            self._step_sum += step
            if wide_searches:
                self._wide_frames += 1
                self._wide_step_sum += step

    def snapshot(self) -> StatsSnapshot:
        """The totals now; resets the running latency maximum."""
        with self._lock:
            snapshot = StatsSnapshot(
                time.monotonic(),
                self.received,
                self.processed,
                self.dropped,
                self.rejected,
                self._latency_sum,
                self._latency_max,
                self._last_received,
                self._wait_sum,
                self._decode_sum,
                self._step_sum,
                self.idle,
                self.wide_searches,
                self._wide_frames,
                self._wide_step_sum,
            )
            self._latency_max = 0.0
            return snapshot


class RuntimeMonitor:
    """The interpreter's share of a long run, for ``/diagnostics``.

    Times every garbage collection (``gc.callbacks``): a collection holds the GIL, so it
    pauses the tracking worker and the executor alike. Reports the count, the full (oldest
    generation) ones, the total and the longest pause since the last report, the objects
    frozen out of collection (``gc.freeze``, done by ``tracker_node`` after start-up), and,
    while ``tracemalloc`` runs (``SIAMRPNPP_TRACEMALLOC=1``), the Python heap it traces.
    Costs two clock reads per collection.
    """

    def __init__(self) -> None:
        self.collections = 0
        self.full_collections = 0
        self.pause_total = 0.0
        self._pause_max = 0.0  # since the last values()
        self._started: float | None = None
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        # Runs in whichever thread triggered the collection, holding the GIL.
        if phase == "start":
            self._started = time.perf_counter()
            return
        if self._started is None:
            return
        pause = time.perf_counter() - self._started
        self._started = None
        self.collections += 1
        self.full_collections += info.get("generation") == 2
        self.pause_total += pause
        self._pause_max = max(self._pause_max, pause)

    def values(self) -> dict[str, str]:
        """``gc_*`` (and ``python_traced_*`` while tracing) values; resets the longest pause."""
        pause_max, self._pause_max = self._pause_max, 0.0
        values = {
            "gc_collections": str(self.collections),
            "gc_full_collections": str(self.full_collections),
            "gc_pause_total_ms": f"{1000.0 * self.pause_total:.1f}",
            "gc_pause_max_ms": f"{1000.0 * pause_max:.1f}",
            "gc_frozen_objects": str(gc.get_freeze_count()),
        }
        if tracemalloc.is_tracing():
            current, peak = tracemalloc.get_traced_memory()
            values["python_traced_mb"] = f"{current / 2**20:.1f}"
            values["python_traced_peak_mb"] = f"{peak / 2**20:.1f}"
        return values

    def close(self) -> None:
        """Stop timing collections."""
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)


def tracker_status(
    name: str,
    hardware_id: str,
    previous: StatsSnapshot,
    current: StatsSnapshot,
    tracking_status: str,
    target_id: int,
    extra: dict[str, str],
    worker_alive: bool,
    targets: Sequence[Any] = (),
) -> DiagnosticStatus:
    """One DiagnosticStatus summarising the period between two snapshots.

    ``targets``: every tracked target's latest result (``tracking.session.SessionResult``:
    ``target_id``, ``status``, ``presence``, ``score``, ``age``, ``box``), each reported under its own
    ``target_<id>.*`` keys; with more than one, the message lists them all.
    """
    period = max(current.when - previous.when, 1e-6)
    processed = current.processed - previous.processed
    received = current.received - previous.received
    input_rate = received / period
    processing_rate = processed / period

    def mean_ms(total_now: float, total_before: float, frames: int | None = None) -> str:
        """Mean per processed frame (or per one of ``frames``) over the period, in ms."""
        count = processed if frames is None else frames
        return f"{1000.0 * (total_now - total_before) / count if count else 0.0:.1f}"

    # The step split by kind: a lost target's search costs more (docs/performance.md, A lost frame).
    lost_frames = current.wide_frames - previous.wide_frames
    lost_step = current.wide_step_sum - previous.wide_step_sum

    silence = None if current.last_received is None else current.when - current.last_received
    active = tracking_status not in ("IDLE",)
    # More than a tenth of the images that arrived while tracking went untracked: the tracker
    # step (all targets together) takes longer than the camera period. The node still works on
    # the newest image and keeps no backlog; it just tracks at the lower rate.
    accepted = received - (current.rejected - previous.rejected)
    overloaded = active and accepted > 0 and processed < 0.9 * accepted

    level, message = DiagnosticStatus.OK, tracking_status if not active else f"{tracking_status} target {target_id}"
    if len(targets) > 1:
        message = f"{len(targets)} targets: " + ", ".join(f"{t.target_id} {t.status.name}" for t in targets)
    if not worker_alive:
        level, message = DiagnosticStatus.ERROR, "tracking worker stopped; restart the node"
    elif active and (silence is None or silence > max(2 * period, 1.0)):
        level, message = DiagnosticStatus.WARN, f"{message}; no images for {silence or 0:.1f} s"
    elif active and overloaded:
        level = DiagnosticStatus.WARN
        message = f"{message}; overloaded: tracking {processing_rate:.1f} of {input_rate:.1f} images/s"
    elif tracking_status == "LOST" or any(t.status.name == "LOST" for t in targets):
        level = DiagnosticStatus.WARN

    values = {
        "status": tracking_status,
        "target_id": str(target_id) if active else "",
        "input_rate_hz": f"{input_rate:.2f}",
        "processing_rate_hz": f"{processing_rate:.2f}",
        "latency_mean_ms": mean_ms(current.latency_sum, previous.latency_sum),
        "latency_max_ms": f"{1000.0 * current.latency_max:.1f}",
        # Where latency_mean_ms goes; the rest is publishing and thread hand-over.
        "queue_wait_mean_ms": mean_ms(current.wait_sum, previous.wait_sum),
        "decode_mean_ms": mean_ms(current.decode_sum, previous.decode_sum),
        "tracker_step_mean_ms": mean_ms(current.step_sum, previous.step_sum),
        "lost_frames_in_period": str(lost_frames),
        "lost_step_mean_ms": mean_ms(lost_step, 0.0, lost_frames),
        "tracking_step_mean_ms": mean_ms(
            current.step_sum - previous.step_sum - lost_step, 0.0, processed - lost_frames
        ),
        "frames_received": str(current.received),
        "frames_processed": str(current.processed),
        "dropped_frames": str(current.dropped),
        "dropped_frames_in_period": str(current.dropped - previous.dropped),
        "rejected_images": str(current.rejected),
        # received = processed + dropped + rejected + idle, once the newest frame is processed.
        "idle_frames": str(current.idle),
        "wide_searches": str(current.wide_searches),
        "seconds_since_last_image": "" if silence is None else f"{silence:.2f}",
        "overloaded": "true" if overloaded else "false",
        "targets": str(len(targets)),
        **extra,
    }
    for target in targets:
        key = f"target_{target.target_id}"
        values[f"{key}.status"] = target.status.name
        values[f"{key}.presence"] = f"{target.presence:.3f}"
        values[f"{key}.score"] = f"{target.score:.3f}"
        values[f"{key}.age"] = str(target.age)
        values[f"{key}.box"] = ",".join(f"{v:.1f}" for v in target.box)
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=key, value=value) for key, value in values.items()],
    )
