"""One way to run the tracker node under test: for the benchmarks, the console tools and the ROS tests.

An isolated domain (``isolated_domain``: a per-run ``ROS_DOMAIN_ID``, discovery limited to
this host, the package's Fast DDS large-image profile; see ``tools.environment``), the node
started in its own process with ``--ros-args`` parameters and its output in a log file
(``start_tracker_node``), an rclpy node in this process to talk to it (``InProcessNode``),
waiting for matched endpoints rather than sleeping (``InProcessNode.wait_for_endpoints``), and a clean stop
(``PythonProcess.stop``: SIGINT as Ctrl-C, then kill) that returns the exit code.

Parameter names are checked against the ones the node declares (``check_parameter_names``):
ROS ignores a ``-p`` for a name no one declares, so a misspelt name would silently run the
default (a benchmark once ran ``lost_tiles_per_frame:=1`` for ``tracker.lost_tiles_per_frame``).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from siamrpnpp_ros.tools.environment import isolated_ros_environment

REPO_ROOT = Path(__file__).resolve().parents[2]
TRACKER_MODULE = "siamrpnpp_ros.tracker_node"
PLAYER_MODULE = "siamrpnpp_ros.tools.player"
CONSOLE_MODULE = "siamrpnpp_ros.tools.console"
STOP_TIMEOUT_S = 15.0  # a clean shutdown finishes the step in progress first
LOG_TAIL_CHARS = 3000
# Declared by rclpy on every node; the node's own parameters are siamrpnpp_ros/ros/parameters.py's.
RCLPY_PARAMETERS = ("use_sim_time",)


class UnknownParameterError(ValueError):
    """A node parameter the tracker node does not declare (ROS would silently ignore it)."""


# ----------------------------------------------------------------------------- domain
def pick_domain_id(salt: int = 0) -> int:
    """A domain id unlikely to collide with another run on this machine; ``salt`` separates the
    domains of one process's runs. 1..100 (ids above 101 can clash with ephemeral ports).
    """
    return 1 + (os.getpid() + salt) % 100


@contextlib.contextmanager
def isolated_domain(domain_id: int) -> Iterator[dict[str, str]]:
    """This process's environment set for an isolated ROS domain (read when an rclpy context
    starts), restored afterwards; yields the environment for child processes, which also find
    this checkout's package and write their output unbuffered.
    """
    variables = isolated_ros_environment(domain_id)
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ----------------------------------------------------------------------------- parameters
def node_parameter_names() -> frozenset[str]:
    """Every parameter name the tracker node declares."""
    # deferred: ros.parameters loads ROS messages; the tools' --help works without ROS
    from siamrpnpp_ros.ros.parameters import MODEL_SPEC, NODE_SPECS, tracker_specs

    # The tracker.* names are the same for every model; only their defaults differ.
    specs = (MODEL_SPEC, *NODE_SPECS, *tracker_specs(MODEL_SPEC.default))
    return frozenset({spec.name for spec in specs} | set(RCLPY_PARAMETERS))


def check_parameter_names(parameters: Iterable[str]) -> None:
    """Raise ``UnknownParameterError`` (one line, naming the nearest declared names) for a
    ``NAME:=VALUE`` whose name the node does not declare, or an entry without ``:=``.
    """
    known = node_parameter_names()
    for parameter in parameters:
        name, separator, _ = parameter.partition(":=")
        if not separator:
            raise UnknownParameterError(f"node parameter {parameter!r} is not NAME:=VALUE")
        if name not in known:
            nearest = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
            hint = f"; nearest: {', '.join(nearest)}" if nearest else ""
            raise UnknownParameterError(f"the tracker node has no parameter {name!r}{hint}")


def node_parameter_argument(text: str) -> str:
    """The ``type`` of a ``--param NAME:=VALUE`` option: refuses a name the node does not declare."""
    try:
        check_parameter_names([text])
    except UnknownParameterError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def ros_arguments(
    parameters: Sequence[str] = (),
    remaps: Sequence[str] = (),
    params_file: str | None = None,
    log_level: str | None = None,
) -> list[str]:
    """``--ros-args`` with a params file, ``-r FROM:=TO`` remaps, ``-p NAME:=VALUE`` parameters
    (later ones win) and a log level; empty when there is none of them.
    """
    arguments = [
        *(["--params-file", params_file] if params_file else []),
        *(flag for remap in remaps for flag in ("-r", remap)),
        *(flag for parameter in parameters for flag in ("-p", parameter)),
        *(["--log-level", log_level] if log_level else []),
    ]
    return ["--ros-args", *arguments] if arguments else []


def ros_program_args(module: str, arguments: Sequence[str] = (), **ros: Any) -> list[str]:
    """The Python arguments that run ``module`` with its own ``arguments``, then ``ros_arguments(**ros)``."""
    return ["-m", module, *arguments, *ros_arguments(**ros)]


def console_args(port: int, *parameters: str, **ros: Any) -> list[str]:
    """The operator console serving on ``port``, with its other ``parameters`` (``NAME:=VALUE``)."""
    return ros_program_args(CONSOLE_MODULE, parameters=[f"port:={port}", *parameters], **ros)


def player_args(video: str | Path, *options: str, wait_subscribers: int = 2, **ros: Any) -> list[str]:
    """The camera player on ``video`` with its ``options``; it starts once ``wait_subscribers``
    subscriptions (by default the tracker's and the console's) matched its image publisher.
    """
    arguments = ["--video", str(video), *options, "--wait-subscribers", str(wait_subscribers)]
    return ros_program_args(PLAYER_MODULE, arguments, **ros)


# ----------------------------------------------------------------------------- processes
def stop_process(process: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> int:
    """SIGINT first (what Ctrl-C does, so the program shuts down cleanly), then kill after
    ``timeout`` seconds; the exit code.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class PythonProcess:
    """A Python program started in its own process from the checkout, its output in a log file."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.args = list(args)
        self.log_path = log_path
        self.started = time.monotonic()
        with open(log_path, "wb") as log:  # the child holds its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, *self.args],
                env=env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def output(self) -> str:
        """Everything the program wrote so far."""
        return self.log_path.read_text(errors="replace")

    def failure(self, reason: str) -> str:
        """``reason`` with the exit code (once exited) and the end of the log, for an error message."""
        code = self.process.poll()
        detail = f" (the node exited with {code})" if code is not None else ""
        try:
            tail = self.output()[-LOG_TAIL_CHARS:]
        except OSError:
            tail = ""
        return f"{reason}{detail}; node log {self.log_path}:\n{tail}"

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGINT first (what Ctrl-C does, so the program shuts down cleanly), then kill after
        ``timeout`` seconds; the exit code.
        """
        return stop_process(self.process, timeout)


def start_tracker_node(
    parameters: Sequence[str],
    env: dict[str, str],
    log_path: Path,
    *,
    lifecycle: bool = False,
    **ros: Any,
) -> PythonProcess:
    """The tracker node (the managed one with ``lifecycle``) in its own process, with
    ``parameters`` (``NAME:=VALUE``, checked: ``check_parameter_names``) and ``ros_arguments``'s
    other keywords (``remaps``, ``params_file``, ``log_level``).
    """
    check_parameter_names(parameters)
    arguments = ["--lifecycle"] if lifecycle else []
    return PythonProcess(ros_program_args(TRACKER_MODULE, arguments, parameters=parameters, **ros), env, log_path)


# ----------------------------------------------------------------------------- this process's node
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


class InProcessNode:
    """An rclpy node in this process, with its own context and executor (on the domain of the
    environment when it is created).
    """

    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_once(self, timeout: float = 0.05) -> None:
        """Run ready callbacks, waiting up to ``timeout`` seconds for one."""
        self.executor.spin_once(timeout_sec=timeout)

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Spin until ``condition`` holds; False if ``timeout`` seconds pass first."""
        return wait_until(condition, timeout, spin=self.spin_once)

    def wait_for_endpoints(
        self,
        process: PythonProcess,
        matched: Callable[[], bool],
        timeout: float,
        fail: Callable[[str], BaseException],
    ) -> float:
        """Spin until ``matched()`` (the node under test is discovered both ways); the seconds
        since ``process`` started. Raises ``fail(reason)`` if it exits first or ``timeout`` passes.
        """
        while not matched():
            if process.process.poll() is not None:
                raise fail("the tracker node stopped while starting")
            if time.monotonic() > process.started + timeout:
                raise fail(f"the tracker node was not discovered within {timeout:.0f} s")
            self.spin_once()
        return time.monotonic() - process.started

    def close(self) -> None:
        """Destroy the node and shut its context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


class TrackerDiagnostics:
    """What the tracker reports on /diagnostics, as ``node`` (this process's) receives it: the
    images it received so far (a selection before its first image is refused) and, with the
    arrival time here, the mean tracker step of each period.
    """

    def __init__(self, node: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self.frames_received = 0
        self.step_means_ms: list[tuple[float, float]] = []
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_diagnostics(self, message: Any) -> None:
        for status in message.status:
            values = {kv.key: kv.value for kv in status.values}
            if values.get("frames_received", "").isdigit():
                self.frames_received = max(self.frames_received, int(values["frames_received"]))
            with contextlib.suppress(KeyError, ValueError):
                self.step_means_ms.append((time.monotonic(), float(values["tracker_step_mean_ms"])))


# ----------------------------------------------------------------------------- both together
@dataclass
class NodeUnderTest:
    """The node's process and this process's node on its domain; ``exit_code`` once stopped."""

    process: PythonProcess
    observer: InProcessNode
    exit_code: int | None = None


@contextlib.contextmanager
def tracker_node_under_test(
    parameters: Sequence[str],
    log_path: Path,
    *,
    domain_id: int,
    observer_name: str,
    node_env: dict[str, str] | None = None,
    log_level: str | None = None,
) -> Iterator[NodeUnderTest]:
    """The tracker node with ``parameters`` on an isolated domain (``node_env``: extra variables
    for the node only) and an ``InProcessNode`` beside it; the node is stopped and the observer
    closed on exit.
    """
    with isolated_domain(domain_id) as env:
        process = start_tracker_node(parameters, env | (node_env or {}), log_path, log_level=log_level)
        try:
            under_test = NodeUnderTest(process, InProcessNode(observer_name))
        except BaseException:
            process.stop()
            raise
        try:
            yield under_test
        finally:
            under_test.exit_code = process.stop()
            under_test.observer.close()
