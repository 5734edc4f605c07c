"""Entry point of the tracker node.

    python -m siamrpnpp_ros.tracker_node --ros-args -p model:=alex -p weights:=model.pth -p device:=cpu
    python -m siamrpnpp_ros.tracker_node --ros-args --params-file config/cpu_alex.yaml -r image:=/camera/image_raw
    ros2 run siamrpnpp_ros tracker_node --ros-args ...

A start-up problem is reported as one error line, without a traceback, and the exit code
says which kind: 1 = the weights (missing file, not a checkpoint, another model's keys),
2 = a parameter (wrong type or range, unknown model, fp16 without CUDA, ...). Ctrl-C
(SIGINT) or SIGTERM stops the node cleanly with exit code 0.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence

from siamrpnpp_ros.requirements_check import require_supported_versions

EXIT_OK = 0
EXIT_WEIGHTS = 1
EXIT_PARAMETERS = 2


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
    require_supported_versions()
    import rclpy

    try:
        from rclpy.executors import ExternalShutdownException
    except ImportError:  # very old rclpy
        ExternalShutdownException = KeyboardInterrupt  # type: ignore[misc,assignment]

    from siamrpnpp_ros.ros.node import NODE_NAME, TrackerNode

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
            try:
                rclpy.spin(node)
            except (KeyboardInterrupt, ExternalShutdownException):
                pass
            finally:
                node.destroy_node()
    except KeyboardInterrupt:
        pass
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv))
