"""Entry point of the operator console.

    ros2 run siamrpnpp_ros operator_console [--ros-args -p port:=8080 -r __ns:=/drone1 ...]
    python -m siamrpnpp_ros.tools.console [--ros-args ...]

Then open http://127.0.0.1:8080/ (from another machine: SSH port forwarding, see the README).
Exit codes: 0 after Ctrl-C or SIGTERM, 1 when the web server cannot start (port in use),
2 for an invalid parameter; a start-up problem is one error line, without a traceback.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_SERVER = 1
EXIT_PARAMETERS = 2


def lower_priority(increment: int) -> None:
    """Add ``increment`` to the niceness of every thread of this process (Linux keeps it per
    thread; threads started later inherit it from the main thread).
    """
    if increment <= 0 or not hasattr(os, "setpriority"):
        return
    tasks = Path("/proc/self/task")
    thread_ids = [int(task.name) for task in tasks.iterdir()] if tasks.is_dir() else [0]
    for thread_id in thread_ids:
        try:
            current = os.getpriority(os.PRIO_PROCESS, thread_id)
            os.setpriority(os.PRIO_PROCESS, thread_id, min(19, current + increment))
        except OSError:  # a thread that ended meanwhile
            pass


async def serve(node: Any) -> int:
    """Run the web server for ``node`` (a ``ConsoleNode``, already spinning) until a signal."""
    from siamrpnpp_ros.tools.console.server import ConsoleServer  # deferred: aiohttp is optional

    logger = node.get_logger()
    settings = node.settings
    server = ConsoleServer(node, settings, logger)
    try:
        url = await server.start()
    except OSError as error:
        logger.fatal(f"cannot serve on {settings.host}:{settings.port}: {error.strerror or error}")
        await server.stop()
        return EXIT_SERVER
    node.on_change = server.notify
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    topics = node.topic_names()
    logger.info(
        f"operator console on {url} (camera {topics['camera']}, boxes {topics['tracked_box']}, "
        f"selections {topics['select_target']}){'; access token required' if settings.token else ''}"
    )
    if not settings.is_loopback:
        logger.warning(
            f"the console listens on {settings.host}, not on 127.0.0.1: anyone who can reach this address can "
            "steer the robot" + ("" if settings.token else ", and no access token is set (parameter token)")
        )
    try:
        await stop.wait()
    finally:
        node.on_change = lambda: None
        await server.stop()
    return EXIT_OK


def main(args: Sequence[str] | None = None) -> int:
    """Run the console until shut down; returns the process exit code."""
    import rclpy
    from rclpy.exceptions import ParameterException
    from rclpy.signals import SignalHandlerOptions

    # deferred: rclpy and ROS messages, only needed when the console runs
    from siamrpnpp_ros.tools.console.ros_bridge import ConsoleNode, SpinThread
    from siamrpnpp_ros.tools.console.settings import NODE_NAME

    # The asyncio loop handles SIGINT/SIGTERM, so the web server and the node stop in order.
    rclpy.init(args=list(args) if args is not None else None, signal_handler_options=SignalHandlerOptions.NO)
    try:
        try:
            node = ConsoleNode()
        except (ParameterException, ValueError, TypeError) as error:
            rclpy.logging.get_logger(NODE_NAME).fatal(f"invalid parameter: {' '.join(str(error).split())}")
            return EXIT_PARAMETERS
        lower_priority(node.settings.nice)
        spinner = SpinThread(node)
        spinner.start()
        try:
            return asyncio.run(serve(node))
        except KeyboardInterrupt:
            return EXIT_OK
        finally:
            spinner.stop()
            node.destroy_node()
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
