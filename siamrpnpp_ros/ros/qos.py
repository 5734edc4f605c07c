"""QoS profiles of the node's topics."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

IMAGE_QOS_CHOICES: tuple[str, ...] = ("sensor_data", "reliable")


def image_qos(name: str, depth: int) -> QoSProfile:
    """QoS for the camera subscription.

    ``sensor_data`` (best effort) matches every camera driver, reliable or not, and never
    makes a publisher wait on a slow tracker; ``reliable`` suits recorded or simulated
    sources that publish reliably and where no frame may be lost in transport. Either way
    the node keeps only the newest frame, so ``depth`` just bounds what DDS buffers.
    """
    if name not in IMAGE_QOS_CHOICES:
        raise ValueError(f"image_qos must be one of {', '.join(IMAGE_QOS_CHOICES)}, got {name!r}")
    if depth < 1:
        raise ValueError(f"image_qos_depth must be >= 1, got {depth}")
    reliability = qos_profile_sensor_data.reliability if name == "sensor_data" else ReliabilityPolicy.RELIABLE
    return _keep_last(depth, reliability)


def _keep_last(depth: int, reliability: ReliabilityPolicy = ReliabilityPolicy.RELIABLE) -> QoSProfile:
    """A volatile keep-last profile: a late-joining subscriber gets nothing old."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=reliability,
        durability=DurabilityPolicy.VOLATILE,
    )


# Selections and results are small and must not be lost; a late-joining subscriber must not
# receive stale boxes either (volatile).
COMMAND_QOS = _keep_last(10)
# Boxes come at the camera's rate: a reliable history of 10 is a sixth of a second at 60 Hz, and
# a subscriber whose thread is held up longer (a busy executor, a camera driver restarting in
# the same process) lost the oldest boxes that had not been acknowledged. 120 covers 2 s at 60 Hz.
RESULT_QOS = _keep_last(120)
# The debug image is for people watching: keep one. Reliable, because a reliable
# publisher serves both reliable (rviz, rqt default) and best-effort subscribers.
DEBUG_IMAGE_QOS = _keep_last(1)
DIAGNOSTICS_QOS = _keep_last(10)
