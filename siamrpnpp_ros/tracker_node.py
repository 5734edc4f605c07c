"""Entry point of the tracker node.

    python -m siamrpnpp_ros.tracker_node --ros-args -p model:=alex -p weights:=model.pth -p device:=cpu
    python -m siamrpnpp_ros.tracker_node --ros-args --params-file config/cpu_alex.yaml -r image:=/camera/image_raw
    ros2 run siamrpnpp_ros tracker_node --ros-args ...
    ros2 run siamrpnpp_ros tracker_node --lifecycle --ros-args ...   # managed node: ros2 lifecycle set ...

``--lifecycle`` (before ``--ros-args``) runs the managed node (``ros.node.LifecycleTrackerNode``):
it starts unconfigured and loads nothing until a lifecycle manager (or ``ros2 lifecycle set
/siamrpnpp_tracker configure``) configures it. A bad parameter or checkpoint then fails the
configure transition with the line below, logged as an error, and the node keeps running. It
exits 0 once shut down (the ``shutdown`` transition), on Ctrl-C or on SIGTERM.

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

    initialized = rclpy.init(args=None if args is None else list(args))
    if initialized is not None and hasattr(initialized, "__enter__"):
        with initialized:
            yield
    else:
        try:
            yield
        finally:
            rclpy.try_shutdown()


LIFECYCLE_FLAG = "--lifecycle"


def split_lifecycle_flag(args: Sequence[str] | None) -> tuple[bool, list[str] | None]:
    """Whether ``--lifecycle`` is among the program's own arguments (those before ``--ros-args``),
    and the arguments without it, for ``rclpy.init``.
    """
    if args is None:
        return False, None
    args = list(args)
    own_end = args.index("--ros-args") if "--ros-args" in args else len(args)
    if LIFECYCLE_FLAG in args[:own_end]:
        args.remove(LIFECYCLE_FLAG)
        return True, args
    return False, args


def main(args: Sequence[str] | None = None) -> int:
    """Run the node until shut down; returns the process exit code."""
    quiet_openmp_waits()
    prepare_process()
    require_supported_versions()
    import rclpy
    import rclpy.executors
    from rclpy.executors import ExternalShutdownException

    # deferred: loads torch and rclpy, which must come after quiet_openmp_waits() and prepare_process()
    from siamrpnpp_ros.ros.node import NODE_NAME, LifecycleTrackerNode, TrackerNode, startup_error
    from siamrpnpp_ros.ros.shutdown import stopped_by_shutdown

    lifecycle, args = split_lifecycle_flag(sys.argv if args is None else args)
    try:
        with ros_context(args):
            node: TrackerNode | LifecycleTrackerNode
            try:
                if lifecycle:
                    # Loads nothing yet: a failed configure is reported by the node and leaves it running.
                    node = LifecycleTrackerNode(on_configured=freeze_startup_objects)
                else:
                    node = TrackerNode()
            except (KeyboardInterrupt, ExternalShutdownException):
                return EXIT_OK
            except Exception as error:  # noqa: BLE001 - reported as one line, not a traceback
                kind, message = startup_error(error)
                rclpy.logging.get_logger(NODE_NAME).fatal(message)
                return EXIT_WEIGHTS if kind == "weights" else EXIT_PARAMETERS
            if not lifecycle:
                freeze_startup_objects()
            try:
                if isinstance(node, LifecycleTrackerNode):
                    # Until the shutdown transition (or Ctrl-C): finalized is the end of a managed node.
                    executor = rclpy.executors.SingleThreadedExecutor()
                    executor.add_node(node)
                    executor.spin_until_future_complete(node.finished)
                else:
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
