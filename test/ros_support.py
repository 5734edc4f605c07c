"""Helpers for tests that run real rclpy nodes in separate processes.

Every test session gets its own ROS domain, discovery limited to this host, and
the package's Fast DDS large-image profile (``isolated_ros_environment``), so
parallel runs and other ROS users on the machine do not interfere and 640x480
images cross processes reliably.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from siamrpnpp_ros.tools.environment import isolated_ros_environment

REPO_ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = Path(__file__).resolve().parent / "ros_peers"

__all__ = ["isolated_ros_environment", "pick_domain_id", "wait_until", "PeerProcess", "InProcessNode"]


def pick_domain_id() -> int:
    """A domain id unlikely to collide with another test run on this machine.

    Fast DDS allows 0..232; ids above 101 can clash with ephemeral ports, so use 1..100.
    """
    return 1 + os.getpid() % 100


def wait_until(condition: Callable[[], bool], timeout: float, spin: Callable[[], None] | None = None) -> bool:
    """Poll ``condition`` (calling ``spin`` between polls) until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if spin is not None:
            spin()
        else:
            time.sleep(0.02)
    return condition()


class PeerProcess:
    """A Python program started in its own process, its output kept in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path):
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, *args],
            env=env,
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT first (what Ctrl-C does, so the node shuts down cleanly), then kill."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


class InProcessNode:
    """An rclpy node in the test process, with its own context and executor."""

    def __init__(self, name: str):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_once(self, timeout: float = 0.05) -> None:
        self.executor.spin_once(timeout_sec=timeout)

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Spin until ``condition`` holds; False if ``timeout`` seconds pass first."""
        return wait_until(condition, timeout, spin=self.spin_once)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
