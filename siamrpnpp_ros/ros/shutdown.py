"""Ctrl-C in an rclpy process: a request to stop, whichever way it surfaces.

rclpy installs a SIGINT handler that shuts the process's context down. Where in the spinning
code the signal lands decides what that code sees: ``KeyboardInterrupt`` (before rclpy's
handler is installed), ``ExternalShutdownException`` (a spin that notices the shutdown), or
rclpy's ``RCLError`` "the given context is not valid" (a spin caught between its check of the
context and the creation of its wait set). All three mean the process was asked to stop and
should exit 0; anything raised while the context is still valid is a real failure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def stopped_by_shutdown(error: BaseException, context: Context) -> bool:
    """True when ``error``, raised while spinning on ``context``, comes from a request to stop."""
    if isinstance(error, (KeyboardInterrupt, ExternalShutdownException)):
        return True
    return isinstance(error, Exception) and not context.ok()


@contextlib.contextmanager
def running_node(node: Node, shutdown: bool = True) -> Iterator[None]:
    """The body runs ``node``: a request to stop (``stopped_by_shutdown``) ends it quietly,
    anything else propagates. The node is destroyed after, and with ``shutdown`` rclpy too.
    """
    try:
        yield
    except (KeyboardInterrupt, Exception) as error:
        if not stopped_by_shutdown(error, node.context):  # Ctrl-C, however it surfaces: exit 0
            raise
    finally:
        node.destroy_node()
        if shutdown:
            rclpy.try_shutdown()
