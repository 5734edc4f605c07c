"""Entry point of the tracker node.

    python -m siamrpnpp_ros.tracker_node --ros-args -p model:=alex -p weights:=model.pth -p device:=cpu
    python -m siamrpnpp_ros.tracker_node --ros-args --params-file config/cpu_alex.yaml -r image:=/camera/image_raw
    ros2 run siamrpnpp_ros tracker_node --ros-args ...

A start-up problem is reported as one error line, without a traceback, and the exit code
says which kind: 1 = the weights (missing file, not a checkpoint, another model's keys),
2 = a parameter (wrong type or range, unknown model, fp16 without CUDA, ...). Ctrl-C
(SIGINT) or SIGTERM stops the node cleanly with exit code 0.

Process settings for hours of running (the README's "Long runs"): once the node is built
(modules imported, model loaded, warm-up done) everything allocated so far is collected and
frozen (``gc.freeze``), so the garbage collector's full passes no longer walk the ~200,000
objects of torch, rclpy and the model while the tracker waits (a full pass over them took
180-460 ms on the 2-core test machine at load averages 7-15, and it stops every Python thread).
``SIAMRPNPP_NO_GC_FREEZE=1`` leaves the collector as it is (for comparisons).
``SIAMRPNPP_TRACEMALLOC=1`` (or a traceback depth) starts ``tracemalloc`` before anything
else, so ``/diagnostics`` can report the Python heap (``python_traced_mb``); it slows
allocations, so it is off by default.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import tracemalloc
from collections.abc import Iterator, Sequence

from siamrpnpp_ros.requirements_check import require_supported_versions

EXIT_OK = 0
EXIT_WEIGHTS = 1
EXIT_PARAMETERS = 2
TRACEMALLOC_VARIABLE = "SIAMRPNPP_TRACEMALLOC"
NO_GC_FREEZE_VARIABLE = "SIAMRPNPP_NO_GC_FREEZE"


def prepare_process() -> None:
    """Settings made before ROS or torch start any thread.

    ``tracemalloc`` when ``SIAMRPNPP_TRACEMALLOC`` asks for it (its value, if a number, is
    the traceback depth).
    """
    depth = os.environ.get(TRACEMALLOC_VARIABLE, "").strip()
    if depth and depth != "0" and not tracemalloc.is_tracing():
        tracemalloc.start(int(depth) if depth.isdigit() else 1)


def freeze_startup_objects() -> bool:
    """Collect, then move every object alive now out of the garbage collector's generations.

    Called once the node is built: what start-up made (modules, the model, caches) lives as
    long as the process, and walking it again in every full collection only pauses the
    tracker. Later objects are collected as before. Returns False when
    ``SIAMRPNPP_NO_GC_FREEZE`` is set (nothing done).
    """
    if os.environ.get(NO_GC_FREEZE_VARIABLE, "").strip() not in ("", "0"):
        return False
    gc.collect()
    gc.freeze()
    return True


#: OpenMP settings a user may have chosen; with none of them set, the node picks passive waits.
OPENMP_WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def quiet_openmp_waits() -> bool:
    """Let torch's OpenMP threads sleep between parallel regions instead of spinning
    (``OMP_WAIT_POLICY=PASSIVE``), unless one of ``OPENMP_WAIT_VARIABLES`` is set already.

    By default libgomp's idle threads spin for a while after every parallel region. In the node
    they then compete with the threads that deliver the next image and publish the boxes
    (executor, DDS) and, on a busy machine, with other processes: measured on the 2-core test
    machine at load average 8-9, the alex-w0.25 network took 1124 ms per frame in a process of
    its own with spinning waits and 71 ms with passive ones, and through ROS (latency_bench, raw
    640x480 at 30 Hz) the node's work per frame fell from 45-47 ms to 26 ms. Must run before
    torch is imported (libgomp reads the variables when it loads); returns whether it set the
    policy.
    """
    import os

    if any(name in os.environ for name in OPENMP_WAIT_VARIABLES) or "torch" in sys.modules:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


@contextlib.contextmanager
def ros_context(args: Sequence[str] | None) -> Iterator[None]:
    """``rclpy.init`` as a context manager: Jazzy and newer return one, Humble returns None."""
    import rclpy

    initialized = rclpy.init(args=args)
    if initialized is not None and hasattr(initialized, "__enter__"):
        with initialized:
            yield
    else:
        try:
            yield
        finally:
            rclpy.try_shutdown()


def _startup_error(error: BaseException) -> tuple[int, str]:
    """Exit code and one-line message for an error raised while the node starts."""
    from rclpy.exceptions import ParameterException

    from siamrpnpp_ros.models import CheckpointError

    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, CheckpointError):
        return EXIT_WEIGHTS, f"cannot load weights: {text}"
    if isinstance(error, FileNotFoundError):
        return EXIT_WEIGHTS, f"cannot load weights: {text}"
    if isinstance(error, ParameterException):
        return EXIT_PARAMETERS, f"invalid parameter: {text}"
    if isinstance(error, (ValueError, TypeError)):
        return EXIT_PARAMETERS, f"invalid configuration: {text}"
    if isinstance(error, RuntimeError):
        # e.g. a tracker.* setting that does not fit the network's output size.
        return EXIT_PARAMETERS, f"cannot start the tracker: {text}"
    return EXIT_WEIGHTS, f"cannot start: {type(error).__name__}: {text}"


def main(args: Sequence[str] | None = None) -> int:
    """Run the node until shut down; returns the process exit code."""
    quiet_openmp_waits()
    prepare_process()
    require_supported_versions()
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from siamrpnpp_ros.ros.node import NODE_NAME, TrackerNode
    from siamrpnpp_ros.ros.shutdown import stopped_by_shutdown

    try:
        with ros_context(args):
            try:
                node = TrackerNode()
            except (KeyboardInterrupt, ExternalShutdownException):
                return EXIT_OK
            except Exception as error:  # noqa: BLE001 - reported as one line, not a traceback
                code, message = _startup_error(error)
                rclpy.logging.get_logger(NODE_NAME).fatal(message)
                return code
            freeze_startup_objects()
            try:
                rclpy.spin(node)
            except (KeyboardInterrupt, Exception) as error:
                if not stopped_by_shutdown(error, node.context):
                    raise
            finally:
                node.destroy_node()
    except KeyboardInterrupt:
        pass
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv))
