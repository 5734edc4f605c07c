"""One-pass evaluation (OPE): run trackers over OTB-format sequences and score them.

A benchmark is a folder of sequence folders, each with ``img/*.jpg`` (or images
directly) and ``groundtruth.txt`` (``x,y,w,h`` per frame). A tracker starts
from the first ground-truth box and runs to the end without re-initialisation.

Results are stored pysot-toolkit style, so reports can be rebuilt without
re-running: ``<results>/<tracker>/<sequence>.txt`` (one ``x,y,w,h`` line per
frame, frame 0 = the init box) and ``<sequence>_time.txt`` (seconds per frame:
init, then each update; decoding excluded). Trackers that report presence
(:class:`~.trackers.PresenceReporter`) add ``<sequence>_confidence.txt`` (their
confidence per frame, 0..1) and ``<sequence>_present.txt`` (1 when they report the
target present, 0 when absent), one value per line, frame 0 included; older result
folders without them still load (the long-term measures then re-run the tracker).

Long-term benchmarks (ground truth ``nan`` on frames where the target is absent;
:mod:`.longterm_builder`) are scored by :func:`run_long_term` with the measures of
:mod:`.longterm_metrics`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

import numpy as np
import torch

from siamrpnpp_ros.sequences import open_sequence
from siamrpnpp_ros.tracking import SiamRPNTracker, build_tracker
from siamrpnpp_ros.tracking.factory import build_session

from .longterm_metrics import LongTermSummary, long_term_score
from .metrics import SequenceScore, TrackerSummary, score_sequence
from .trackers import (
    FrameTracker,
    OpenCVAvailability,
    OpenCVFrameTracker,
    PresenceReporter,
    SessionFrameTracker,
    SiamRPNFrameTracker,
    opencv_availability,
)

LOGGER = logging.getLogger(__name__)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._+-]+")


@dataclass(frozen=True)
class BenchmarkSequence:
    """One OTB-format sequence: ``image_paths`` (sorted) and ``groundtruth`` (N, 4) ``xywh``."""

    name: str
    path: Path
    image_paths: tuple[Path, ...]
    groundtruth: np.ndarray

    def __len__(self) -> int:
        return len(self.image_paths)

    def frames(self) -> Iterable[np.ndarray]:
        """Decoded frames (HxWx3 uint8 BGR) in order."""
        import cv2

        for path in self.image_paths:
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                raise ValueError(f"cannot read image {path}")
            yield frame

    def truncated(self, max_frames: Optional[int]) -> "BenchmarkSequence":
        """The first ``max_frames`` frames (all when None)."""
        if max_frames is None or max_frames >= len(self):
            return self
        return BenchmarkSequence(self.name, self.path, self.image_paths[:max_frames], self.groundtruth[:max_frames])


def load_sequence(path: str | os.PathLike[str]) -> BenchmarkSequence:
    """Open one sequence folder; ValueError without ground truth or with a frame-count mismatch."""
    folder = Path(path)
    sequence = open_sequence(folder)
    if sequence.groundtruth is None:
        raise ValueError(f"sequence {folder} has no groundtruth.txt")
    images = tuple(sequence.image_paths)
    gt = sequence.groundtruth
    if len(gt) < len(images):
        raise ValueError(f"sequence {folder}: {len(images)} images but only {len(gt)} ground-truth boxes")
    return BenchmarkSequence(folder.name, folder, images, gt[: len(images)])


def benchmark_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``benchmark.json`` of a benchmark folder (empty when there is none)."""
    path = Path(root) / "benchmark.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def sequence_attributes(manifest: dict[str, Any]) -> dict[str, list[str]]:
    """``{sequence name: its challenge attributes}`` from a builder's ``benchmark.json`` (empty otherwise)."""
    return {
        str(entry["name"]): [str(a) for a in entry.get("attributes", [])]
        for entry in manifest.get("sequences", [])
        if isinstance(entry, dict) and "name" in entry
    }


def _has_groundtruth(folder: Path) -> bool:
    return any((folder / n).is_file() for n in ("groundtruth.txt", "groundtruth_rect.txt"))


def load_benchmark(
    root: str | os.PathLike[str],
    names: Optional[Iterable[str]] = None,
    max_sequences: Optional[int] = None,
    max_frames: Optional[int] = None,
) -> list[BenchmarkSequence]:
    """The sequences of a benchmark folder (or the folder itself if it is one sequence).

    Order: ``benchmark.json``'s ``sequences`` list when present, else sorted by name.
    ``names`` selects sequences; ``max_sequences`` / ``max_frames`` cut the run short.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise ValueError(f"benchmark folder {folder} does not exist")
    if _has_groundtruth(folder):
        folders = [folder]
    else:
        manifest = folder / "benchmark.json"
        if manifest.is_file():
            listed = json.loads(manifest.read_text(encoding="utf-8")).get("sequences", [])
            folders = [folder / (item["name"] if isinstance(item, dict) else item) for item in listed]
        else:
            folders = sorted(p for p in folder.iterdir() if p.is_dir() and _has_groundtruth(p))
    if names is not None:
        wanted = list(names)
        missing = sorted(set(wanted) - {f.name for f in folders})
        if missing:
            raise ValueError(f"benchmark {folder} has no sequence(s) {', '.join(missing)}")
        folders = [f for f in folders if f.name in set(wanted)]
    if max_sequences is not None:
        folders = folders[:max_sequences]
    if not folders:
        raise ValueError(f"benchmark folder {folder} holds no sequences (folders with images + groundtruth.txt)")
    return [load_sequence(f).truncated(max_frames) for f in folders]


# ---------------------------------------------------------------------- runners
@dataclass(frozen=True)
class RunResult:
    """Boxes (N, 4) ``xywh`` for every frame (frame 0 = init box) and seconds per frame;
    for trackers that report it, ``confidence`` (N,) in [0, 1] and ``present`` (N,) bool
    (None otherwise).
    """

    boxes: np.ndarray
    frame_seconds: np.ndarray
    confidence: np.ndarray | None = None
    present: np.ndarray | None = None

    @property
    def seconds(self) -> float:
        """Total tracking time, seconds."""
        return float(np.sum(self.frame_seconds))


class SequenceRunner(Protocol):
    """Runs one tracker over a whole sequence."""

    name: str

    def run(self, sequence: BenchmarkSequence) -> RunResult:
        """Track ``sequence`` from its first ground-truth box."""
        ...


def track_sequence(tracker: FrameTracker, sequence: BenchmarkSequence) -> RunResult:
    """Drive ``tracker`` over ``sequence`` from its first ground-truth box; time only the tracker."""
    boxes = np.zeros((len(sequence), 4), dtype=np.float64)
    seconds = np.zeros(len(sequence), dtype=np.float64)
    reports = isinstance(tracker, PresenceReporter)
    confidence = np.ones(len(sequence), dtype=np.float64)
    present = np.ones(len(sequence), dtype=bool)
    for index, frame in enumerate(sequence.frames()):
        started = time.perf_counter()
        if index == 0:
            box = tuple(float(v) for v in sequence.groundtruth[0])
            tracker.init(frame, box)
        else:
            box = tracker.update(frame)
        seconds[index] = time.perf_counter() - started
        boxes[index] = box
        if reports:
            confidence[index], present[index] = tracker.presence()  # type: ignore[attr-defined]
    return RunResult(boxes, seconds, confidence, present) if reports else RunResult(boxes, seconds)


class FrameTrackerRunner:
    """Runs a per-frame tracker made fresh for every sequence by ``factory``."""

    def __init__(self, name: str, factory: Callable[[], FrameTracker]) -> None:
        self.name = name
        self.factory = factory

    def run(self, sequence: BenchmarkSequence) -> RunResult:
        """Track ``sequence`` with a fresh tracker from the factory."""
        return track_sequence(self.factory(), sequence)


class OpenCVSubprocessRunner:
    """Runs an OpenCV contrib tracker in a child process whose ``cv2`` comes from ``contrib_dir``."""

    def __init__(self, name: str, kind: str, contrib_dir: Path, timeout_s: float = 3600.0) -> None:
        self.name = name
        self.kind = kind
        self.contrib_dir = Path(contrib_dir)
        self.timeout_s = timeout_s

    def run(self, sequence: BenchmarkSequence) -> RunResult:
        """Track ``sequence`` in a child process (see ``eval/opencv_worker.py``) and read back its result."""
        package_root = Path(__file__).resolve().parents[2]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self.contrib_dir), str(package_root), env.get("PYTHONPATH", "")) if p
        )
        with tempfile.TemporaryDirectory(prefix="siamrpnpp-eval-") as tmp:
            out = Path(tmp) / "result.json"
            command = [
                sys.executable,
                "-m",
                "siamrpnpp_ros.eval.opencv_worker",
                "--kind",
                self.kind,
                "--sequence",
                str(sequence.path),
                "--frames",
                str(len(sequence)),
                "--out",
                str(out),
            ]
            completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=self.timeout_s)
            if completed.returncode != 0 or not out.is_file():
                tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
                raise RuntimeError(f"{self.name} worker failed on {sequence.name}: {' | '.join(tail)}")
            data = json.loads(out.read_text(encoding="utf-8"))
        boxes = np.asarray(data["boxes"], dtype=np.float64).reshape(-1, 4)
        seconds = np.asarray(data["seconds"], dtype=np.float64)
        if "present" not in data:
            return RunResult(boxes, seconds)
        return RunResult(
            boxes, seconds, np.asarray(data["confidence"], dtype=np.float64), np.asarray(data["present"], dtype=bool)
        )


def opencv_runner(kind: str, availability: OpenCVAvailability, name: Optional[str] = None) -> SequenceRunner:
    """A runner for an available OpenCV baseline (see :func:`~.trackers.opencv_availability`)."""
    label = name or kind.upper()
    if availability.in_process:
        return FrameTrackerRunner(label, lambda: OpenCVFrameTracker(kind))
    if availability.contrib_dir is not None:
        return OpenCVSubprocessRunner(label, kind, availability.contrib_dir)
    raise RuntimeError(availability.reason)


def opencv_baseline_runners(kinds: Iterable[str]) -> tuple[list[SequenceRunner], list[str]]:
    """Runners for the OpenCV baselines among ``kinds`` that can run here, and a note
    ``skipped KIND: why`` for each of the others.
    """
    runners: list[SequenceRunner] = []
    skipped = []
    for kind in kinds:
        availability = opencv_availability(kind)
        if availability.available:
            runners.append(opencv_runner(kind, availability))
        else:
            skipped.append(f"skipped {kind.upper()}: {availability.reason}")
    return runners, skipped


def siamrpn_runner(
    name: str,
    model_name: str,
    weights: str | os.PathLike[str],
    device: Any = "auto",
    config: Any = None,
    long_term: bool = False,
    policy: Any = None,
) -> SequenceRunner:
    """A runner for SiamRPN++ weights (``model_name`` preset, pysot-format ``weights``).

    The network is built and loaded once; each sequence gets a fresh tracker state.
    Short-term (default): the plain tracker, called directly (OTB protocol). ``long_term``:
    the tracker as the ROS node runs it by default (``tracking.factory.build_session``), a
    ``TrackingSession`` with ``policy`` (default ``LostPolicy()``) around the long-term
    tracker whose search thresholds follow the policy; it reports confidence and presence.
    """
    if not long_term:
        tracker = build_tracker(model_name, weights, device=device, config=config)
        return FrameTrackerRunner(name, lambda: SiamRPNFrameTracker(tracker))

    session = build_session(model_name, weights, long_term=True, policy=policy, config=config, device=device)
    return FrameTrackerRunner(name, lambda: SessionFrameTracker(session.tracker, session.policy))


def siamrpn_model_runner(name: str, model: Any, tracker_config: Any, device: Any = "cpu") -> SequenceRunner:
    """A runner for an in-memory SiamRPN network (any config, e.g. width-reduced) with a
    ``TrackerConfig``; the model is moved to ``device`` and put in eval mode.
    """
    tracker = SiamRPNTracker(model, tracker_config, device=torch.device(device))
    return FrameTrackerRunner(name, lambda: SiamRPNFrameTracker(tracker))


# ---------------------------------------------------------------------- results
def safe_name(name: str) -> str:
    """A tracker label usable as a folder name."""
    cleaned = _SAFE_NAME.sub("_", name).strip("._")
    return cleaned or "tracker"


def result_paths(results_dir: Path, tracker: str, sequence: str) -> tuple[Path, Path]:
    """``<sequence>.txt`` (boxes) and ``<sequence>_time.txt`` (seconds per frame) under the tracker's folder."""
    folder = Path(results_dir) / safe_name(tracker)
    return folder / f"{sequence}.txt", folder / f"{sequence}_time.txt"


def presence_paths(results_dir: Path, tracker: str, sequence: str) -> tuple[Path, Path]:
    """``<sequence>_confidence.txt`` and ``<sequence>_present.txt`` beside the boxes."""
    folder = Path(results_dir) / safe_name(tracker)
    return folder / f"{sequence}_confidence.txt", folder / f"{sequence}_present.txt"


def save_result(results_dir: Path, tracker: str, sequence: str, result: RunResult) -> None:
    """Write the boxes and per-frame times of one run (pysot-toolkit layout), and its
    confidence and presence when the tracker reported them.
    """
    boxes_path, time_path = result_paths(results_dir, tracker, sequence)
    boxes_path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(boxes_path, result.boxes, fmt="%.4f", delimiter=",")
    np.savetxt(time_path, result.frame_seconds, fmt="%.6f")
    confidence_path, present_path = presence_paths(results_dir, tracker, sequence)
    if result.confidence is not None and result.present is not None:
        np.savetxt(confidence_path, result.confidence, fmt="%.6f")
        np.savetxt(present_path, result.present.astype(np.int64), fmt="%d")
    else:  # a re-run without them must not leave an older run's files beside the new boxes
        confidence_path.unlink(missing_ok=True)
        present_path.unlink(missing_ok=True)


def load_result(
    results_dir: Path, tracker: str, sequence: str, frames: int, need_presence: bool = False
) -> RunResult | None:
    """A stored run with exactly ``frames`` boxes, or None; ``need_presence``: None also when
    it has no confidence and presence files (runs stored before they existed).
    """
    boxes_path, time_path = result_paths(results_dir, tracker, sequence)
    if not boxes_path.is_file():
        return None
    boxes = np.loadtxt(boxes_path, delimiter=",", ndmin=2)
    if boxes.shape != (frames, 4):
        return None
    seconds = np.loadtxt(time_path, ndmin=1) if time_path.is_file() else np.full(frames, np.nan)
    confidence_path, present_path = presence_paths(results_dir, tracker, sequence)
    if confidence_path.is_file() and present_path.is_file():
        confidence = np.loadtxt(confidence_path, ndmin=1)
        present = np.loadtxt(present_path, ndmin=1) > 0.5
        if confidence.shape == (frames,) and present.shape == (frames,):
            return RunResult(boxes, seconds, confidence, present)
    return None if need_presence else RunResult(boxes, seconds)


def run_ope(
    runners: Iterable[SequenceRunner],
    sequences: list[BenchmarkSequence],
    results_dir: Optional[str | os.PathLike[str]] = None,
    reuse: bool = False,
    progress: bool = False,
) -> dict[str, TrackerSummary]:
    """Run every tracker on every sequence and score it.

    ``results_dir``: where runs are stored (and, with ``reuse``, read back instead of
    re-running). Returns ``{tracker name: TrackerSummary}`` in runner order.
    """
    summaries: dict[str, TrackerSummary] = {}
    for runner in runners:
        scores: list[SequenceScore] = []
        for sequence, result in _runs(runner, sequences, results_dir, reuse, progress, need_presence=False):
            scores.append(score_sequence(sequence.name, sequence.groundtruth, result.boxes, result.seconds))
        summaries[runner.name] = TrackerSummary(runner.name, tuple(scores))
        summary = summaries[runner.name]
        LOGGER.info("%s: AUC %.3f, P@20 %.3f, fps %.1f", runner.name, summary.auc, summary.precision_20, summary.fps)
    return summaries


def _runs(
    runner: SequenceRunner,
    sequences: list[BenchmarkSequence],
    results_dir: str | os.PathLike[str] | None,
    reuse: bool,
    progress: bool,
    need_presence: bool,
) -> Iterable[tuple[BenchmarkSequence, RunResult]]:
    """``runner``'s result on each sequence: stored (``reuse``) or run now (and stored)."""
    folder = Path(results_dir) if results_dir is not None else None
    iterator: Iterable[BenchmarkSequence] = sequences
    if progress:
        from tqdm import tqdm

        iterator = tqdm(sequences, desc=runner.name, leave=False, dynamic_ncols=True)
    for sequence in iterator:
        result = None
        if folder is not None and reuse:
            result = load_result(folder, runner.name, sequence.name, len(sequence), need_presence=need_presence)
        if result is None:
            result = runner.run(sequence)
            if folder is not None:
                save_result(folder, runner.name, sequence.name, result)
        yield sequence, result


def run_long_term(
    runners: Iterable[SequenceRunner],
    sequences: list[BenchmarkSequence],
    results_dir: str | os.PathLike[str] | None = None,
    reuse: bool = False,
    progress: bool = False,
) -> dict[str, LongTermSummary]:
    """Run every tracker on every sequence of a long-term benchmark and score it with the
    long-term measures (:mod:`.longterm_metrics`). Stored runs are reused (``reuse``) only
    when they include confidence and presence. Returns ``{tracker name: LongTermSummary}``.
    """
    summaries: dict[str, LongTermSummary] = {}
    for runner in runners:
        scores = [
            long_term_score(
                sequence.name, sequence.groundtruth, result.boxes, result.confidence, result.present, result.seconds
            )
            for sequence, result in _runs(runner, sequences, results_dir, reuse, progress, need_presence=True)
        ]
        summary = LongTermSummary(runner.name, tuple(scores))
        summaries[runner.name] = summary
        LOGGER.info(
            "%s: F %.3f (Pr %.3f, Re %.3f), AUC %.3f",
            runner.name,
            summary.f_score,
            summary.precision,
            summary.recall,
            summary.auc,
        )
    return summaries


def evaluate_model(
    model: Any,
    tracker_config: Any,
    benchmark: str | os.PathLike[str],
    device: Any = "cpu",
    max_sequences: Optional[int] = None,
    max_frames: Optional[int] = None,
    name: str = "model",
) -> TrackerSummary:
    """OPE of an in-memory SiamRPN network (e.g. during training) on ``benchmark``.

    ``model`` is put in eval mode on ``device`` (the caller restores train mode).
    """
    sequences = load_benchmark(benchmark, max_sequences=max_sequences, max_frames=max_frames)
    return run_ope([siamrpn_model_runner(name, model, tracker_config, device)], sequences)[name]
