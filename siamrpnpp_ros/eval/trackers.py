"""Trackers under evaluation: SiamRPN++ and OpenCV's classic CSRT / KCF / MIL baselines.

Every tracker is driven the same way: ``init(frame, box)`` on frame 0 with the
ground-truth box, then ``update(frame) -> box`` on every later frame. Frames
are HxWx3 uint8 BGR; boxes are ``(x, y, w, h)``, top-left, pixels. Trackers that
also say whether they still see the target (:class:`PresenceReporter`, for the
long-term measures) answer ``presence() -> (confidence, present)`` after each call:
SiamRPN++ run as the node runs it (:class:`SessionFrameTracker`) reports its
session's confidence and ``status != LOST``; the OpenCV trackers report the
``ok`` flag of ``update()`` (confidence 1 when ok, 0 when failed).

CSRT and KCF live in OpenCV's *contrib* modules, which ``opencv-python-headless``
lacks (MIL is in the main build). The two wheels both provide ``cv2`` and break
each other when installed side by side, so the venv keeps the plain wheel (the
tracker's pysot-exact crops are checked against it) and ``tools/setup_venv.sh``
puts ``opencv-contrib-python-headless`` of the same version in a separate folder
(``<venv>/opencv-contrib``, or ``$SIAMRPNPP_OPENCV_CONTRIB``). Contrib trackers
then run in a child process that imports ``cv2`` from there. When the ``cv2`` of
this process already has them (e.g. a ROS install with contrib), they run in
process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, Sequence, runtime_checkable

import cv2
import numpy as np

from siamrpnpp_ros.tracking.session import TrackingSession, TrackStatus
from siamrpnpp_ros.tracking.tracker import SiamRPNTracker

#: Classic baselines: name -> OpenCV class name (``cv2.<Class>_create`` or ``cv2.<Class>.create``).
OPENCV_TRACKERS: dict[str, str] = {"csrt": "TrackerCSRT", "kcf": "TrackerKCF", "mil": "TrackerMIL"}
CONTRIB_ENV = "SIAMRPNPP_OPENCV_CONTRIB"
CONTRIB_INSTALL_HINT = (
    "pip install --target {target} --no-deps opencv-contrib-python-headless=={version} "
    "(tools/setup_venv.sh does this), or set " + CONTRIB_ENV + " to a folder holding a contrib cv2"
)


class FrameTracker(Protocol):
    """What the OPE runner drives."""

    def init(self, frame: np.ndarray, box: Sequence[float]) -> None:
        """Start tracking the top-left ``(x, y, w, h)`` pixel ``box`` in ``frame``."""
        ...

    def update(self, frame: np.ndarray) -> tuple[float, float, float, float]:
        """The box in ``frame``, top-left ``(x, y, w, h)`` pixels."""
        ...


@runtime_checkable
class PresenceReporter(Protocol):
    """A :class:`FrameTracker` that also reports, for the frame of its last ``init`` or
    ``update``, ``(confidence, present)``: ``confidence`` in [0, 1] that its box is on the
    target, and ``present`` False when it reports the target absent (lost).
    """

    def presence(self) -> tuple[float, bool]:
        """``(confidence, present)`` for the frame of the last ``init`` or ``update``."""
        ...


class SiamRPNFrameTracker:
    """Adapter for :class:`siamrpnpp_ros.tracking.SiamRPNTracker` (or ``LongTermTracker``),
    called directly (the short-term OPE protocol). Reports the raw score as confidence and
    never reports the target absent.
    """

    def __init__(self, tracker: SiamRPNTracker) -> None:
        self.tracker = tracker
        self._report: tuple[float, bool] = (1.0, True)

    def init(self, frame: np.ndarray, box: Sequence[float]) -> None:
        """Initialise the tracker on ``frame`` with ``box`` (top-left ``x, y, w, h`` pixels)."""
        self.tracker.init(frame, box)
        self._report = (1.0, True)

    def update(self, frame: np.ndarray) -> tuple[float, float, float, float]:
        """The tracker's box in ``frame`` (top-left ``x, y, w, h`` pixels)."""
        result = self.tracker.track(frame)
        self._report = (float(result.score), True)
        return tuple(float(v) for v in result.box)  # type: ignore[return-value]

    def presence(self) -> tuple[float, bool]:
        """``(raw score, True)``: the target is never reported absent (``(1.0, True)`` after ``init``)."""
        return self._report


class SessionFrameTracker:
    """SiamRPN++ as the ROS node runs it by default: a :class:`~siamrpnpp_ros.tracking.session.TrackingSession`
    (with ``policy``, default ``LostPolicy()``) around a tracker, normally the long-term one
    (see :func:`~.ope.siamrpn_runner`). The box is the session's (the last confident box
    while LOST), the confidence the session's, and the target is reported absent while the
    status is LOST.
    """

    def __init__(self, tracker: Any, policy: Any = None) -> None:
        self.session = TrackingSession(tracker, policy)
        self._report: tuple[float, bool] = (1.0, True)

    def init(self, frame: np.ndarray, box: Sequence[float]) -> None:
        """Start the session on ``frame`` with ``box`` (top-left ``x, y, w, h`` pixels), target id 1."""
        self.session.start(frame, box, target_id=1)
        self._report = (1.0, True)

    def update(self, frame: np.ndarray) -> tuple[float, float, float, float]:
        """The session's box in ``frame`` (its last confident box while LOST)."""
        result = self.session.step(frame)
        confidence = float(result.presence)  # what LOST follows, and what the node publishes as score
        self._report = (min(max(confidence, 0.0), 1.0), result.status != TrackStatus.LOST)
        return tuple(float(v) for v in result.box)  # type: ignore[return-value]

    def presence(self) -> tuple[float, bool]:
        """``(presence clipped to [0, 1], status is not LOST)`` (``(1.0, True)`` after ``init``)."""
        return self._report


def _opencv_constructor(kind: str, module: Any = cv2) -> Optional[Callable[[], cv2.Tracker]]:
    class_name = OPENCV_TRACKERS[kind]
    factory = getattr(module, f"{class_name}_create", None)
    if factory is None:
        cls = getattr(module, class_name, None)
        factory = getattr(cls, "create", None) if cls is not None else None
    if factory is None and hasattr(module, "legacy"):
        factory = getattr(module.legacy, f"{class_name}_create", None)
    return factory


class OpenCVFrameTracker:
    """An OpenCV tracker (``csrt``, ``kcf``, ``mil``) from this process's ``cv2``.

    OpenCV trackers take integer boxes; the init box is rounded. When OpenCV reports a
    failure for a frame, the previous box is repeated (OTB expects a box every frame) and
    :meth:`presence` reports the target absent with confidence 0.
    """

    def __init__(self, kind: str) -> None:
        if kind not in OPENCV_TRACKERS:
            raise ValueError(f"unknown OpenCV tracker {kind!r}; valid: {', '.join(OPENCV_TRACKERS)}")
        factory = _opencv_constructor(kind)
        if factory is None:
            raise RuntimeError(f"this OpenCV ({cv2.__version__}) has no {OPENCV_TRACKERS[kind]}")
        self.kind = kind
        self._factory = factory
        self._tracker: Optional[cv2.Tracker] = None
        self._last: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
        self._ok = True

    def init(self, frame: np.ndarray, box: Sequence[float]) -> None:
        """Create a fresh OpenCV tracker and initialise it with ``box`` rounded to whole pixels."""
        x, y, w, h = (float(v) for v in box)
        self._tracker = self._factory()
        rect = (int(round(x)), int(round(y)), max(1, int(round(w))), max(1, int(round(h))))
        self._tracker.init(frame, rect)
        self._last = (x, y, w, h)
        self._ok = True

    def update(self, frame: np.ndarray) -> tuple[float, float, float, float]:
        """OpenCV's box in ``frame``; the previous box when its update fails."""
        if self._tracker is None:
            raise RuntimeError("update() before init()")
        ok, rect = self._tracker.update(frame)
        self._ok = bool(ok)
        if ok:
            self._last = tuple(float(v) for v in rect)  # type: ignore[assignment]
        return self._last

    def presence(self) -> tuple[float, bool]:
        """``(1.0, True)`` when OpenCV's last ``update`` succeeded (and after ``init``), else ``(0.0, False)``."""
        return (1.0, True) if self._ok else (0.0, False)


@dataclass(frozen=True)
class OpenCVAvailability:
    """How an OpenCV baseline can run here: ``in_process``, or from ``contrib_dir`` in a child
    process, or not at all (``reason`` says why and how to fix it).
    """

    kind: str
    in_process: bool
    contrib_dir: Optional[Path]
    reason: str = ""

    @property
    def available(self) -> bool:
        """True when the baseline can run here (in process or from ``contrib_dir``)."""
        return self.in_process or self.contrib_dir is not None


def contrib_dir_candidates() -> list[Path]:
    """Folders searched for a side-installed contrib ``cv2``, in order."""
    candidates = []
    if os.environ.get(CONTRIB_ENV):
        candidates.append(Path(os.environ[CONTRIB_ENV]))
    candidates.append(Path(sys.prefix) / "opencv-contrib")
    return candidates


@lru_cache(maxsize=None)
def _contrib_has(folder: Path, kind: str) -> bool:
    """Whether ``folder``'s cv2 has the tracker (checked once per process, in a child process)."""
    if not (folder / "cv2").is_dir():
        return False
    probe = (
        "import cv2,sys;"
        f"n={OPENCV_TRACKERS[kind]!r};"
        "ok=hasattr(cv2,n+'_create') or hasattr(getattr(cv2,n,None),'create');"
        "sys.exit(0 if ok else 3)"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    try:
        result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def opencv_availability(kind: str) -> OpenCVAvailability:
    """Where (if anywhere) the OpenCV tracker ``kind`` can run."""
    if kind not in OPENCV_TRACKERS:
        raise ValueError(f"unknown OpenCV tracker {kind!r}; valid: {', '.join(OPENCV_TRACKERS)}")
    if _opencv_constructor(kind) is not None:
        return OpenCVAvailability(kind, True, None)
    for folder in contrib_dir_candidates():
        if _contrib_has(folder, kind):
            return OpenCVAvailability(kind, False, folder)
    hint = CONTRIB_INSTALL_HINT.format(target=Path(sys.prefix) / "opencv-contrib", version=_cv2_pip_version())
    return OpenCVAvailability(
        kind,
        False,
        None,
        f"{kind.upper()} needs OpenCV's contrib modules, which this cv2 ({cv2.__version__}) lacks; "
        f"install them with: {hint}",
    )


def _cv2_pip_version() -> str:
    try:
        from importlib.metadata import version

        return version("opencv-python-headless")
    except Exception:  # noqa: BLE001 - any metadata problem: fall back to the module version
        return cv2.__version__
