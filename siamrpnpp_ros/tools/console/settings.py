"""The operator console's ROS parameters: declarations with descriptors, and their checked values.

All of them are read-only (read once at start). ``ros2 param describe /operator_console
<name>`` shows the descriptions and ranges.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

NODE_NAME = "operator_console"
TOKEN_ENVIRONMENT_VARIABLE = "SIAMRPNPP_CONSOLE_TOKEN"
IMAGE_QOS_CHOICES = ("sensor_data", "reliable")  # as the tracker node's image_qos
MIN_STREAM_WIDTH = 64
MAX_STREAM_WIDTH = 7680
MIN_JPEG_QUALITY = 10
MAX_JPEG_QUALITY = 100


@dataclass(frozen=True)
class ConsoleSettings:
    """The validated parameter values (see ``PARAMETERS`` for their meaning)."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: str = ""
    image_topic: str = "image"
    compressed: bool = False
    image_qos: str = "sensor_data"
    jpeg_quality: int = 75
    width: int = 800
    max_fps: float = 15.0
    max_clients: int = 8
    nice: int = 10
    tracker_name: str = "siamrpnpp_tracker"

    @property
    def camera_topic(self) -> str:
        """The topic the console subscribes to (relative names resolve in the node's namespace)."""
        return f"{self.image_topic.rstrip('/')}/compressed" if self.compressed else self.image_topic

    @property
    def is_loopback(self) -> bool:
        """Whether ``host`` is reachable from this machine only (see ``is_loopback_host``)."""
        return is_loopback_host(self.host)


def is_loopback_host(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, ``localhost``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class _Parameter:
    name: str
    description: str
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None
    constraints: str = ""

    @property
    def default(self) -> Any:
        return getattr(ConsoleSettings(), self.name)

    def descriptor(self) -> ParameterDescriptor:
        default = self.default
        kind = (
            ParameterType.PARAMETER_BOOL
            if isinstance(default, bool)
            else ParameterType.PARAMETER_INTEGER
            if isinstance(default, int)
            else ParameterType.PARAMETER_DOUBLE
            if isinstance(default, float)
            else ParameterType.PARAMETER_STRING
        )
        descriptor = ParameterDescriptor(
            name=self.name,
            type=kind,
            description=self.description,
            read_only=True,
            additional_constraints=self.constraints,
        )
        if self.int_range is not None:
            descriptor.integer_range = [IntegerRange(from_value=self.int_range[0], to_value=self.int_range[1], step=1)]
        if self.float_range is not None:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=self.float_range[0], to_value=self.float_range[1], step=0.0)
            ]
        return descriptor


PARAMETERS: tuple[_Parameter, ...] = (
    _Parameter(
        "host",
        "Address the web server binds to. 127.0.0.1 (default) serves this machine only (use SSH "
        "port forwarding from elsewhere); any other address lets everyone who can reach it steer the "
        "robot: set a token.",
        constraints="an IP address or localhost",
    ),
    _Parameter("port", "TCP port of the web server; 0 = any free port (logged at start).", int_range=(0, 65535)),
    _Parameter(
        "token",
        "Access token required on every request when not empty (the page is then opened as "
        f"http://host:port/?token=...). Empty: the environment variable {TOKEN_ENVIRONMENT_VARIABLE}, "
        "if set, else no token.",
        constraints="printable ASCII without spaces, at most 256 characters",
    ),
    _Parameter(
        "image_topic",
        "Camera topic (sensor_msgs/Image); relative names resolve in the console's "
        "namespace, as the tracker's 'image'.",
    ),
    _Parameter("compressed", "Subscribe to sensor_msgs/CompressedImage on '<image_topic>/compressed' instead."),
    _Parameter(
        "image_qos",
        "Camera subscription QoS: sensor_data (best effort) or reliable.",
        constraints="one of " + ", ".join(IMAGE_QOS_CHOICES),
    ),
    _Parameter(
        "jpeg_quality",
        "JPEG quality of the stream for a browser that does not choose one.",
        int_range=(MIN_JPEG_QUALITY, MAX_JPEG_QUALITY),
    ),
    _Parameter(
        "width",
        "Width in pixels the stream is downscaled to for a browser that does not choose one (never upscaled).",
        int_range=(MIN_STREAM_WIDTH, MAX_STREAM_WIDTH),
    ),
    _Parameter(
        "max_fps",
        "Most frames per second sent to one browser; encoding runs in one thread, so this "
        "bounds the console's CPU use.",
        float_range=(1.0, 60.0),
    ),
    _Parameter("max_clients", "Most browsers streaming at once; more are refused with HTTP 503.", int_range=(1, 64)),
    _Parameter(
        "tracker_name",
        "Name of the tracker node in the console's namespace: what it logs (a selection "
        "accepted or refused, a target LOST) is shown on the page.",
    ),
    _Parameter(
        "nice",
        "CPU niceness added to the console's threads (0 = none), so that on a shared CPU the "
        "tracker keeps priority over serving browsers.",
        int_range=(0, 19),
    ),
)


def check_settings(values: dict[str, Any]) -> ConsoleSettings:
    """``ConsoleSettings`` from ``{name: value}``; ValueError naming the parameter at fault."""
    host = str(values.get("host", ConsoleSettings.host)).strip()
    if host.lower() != "localhost":
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            raise ValueError(f"parameter host must be an IP address or localhost, got {host!r}") from None
    token = str(values.get("token", ""))
    if not token:
        token = os.environ.get(TOKEN_ENVIRONMENT_VARIABLE, "")
    if token and (len(token) > 256 or not all(33 <= ord(c) <= 126 for c in token)):
        raise ValueError("parameter token must be printable ASCII without spaces, at most 256 characters")
    image_qos = str(values.get("image_qos", ConsoleSettings.image_qos))
    if image_qos not in IMAGE_QOS_CHOICES:
        raise ValueError(f"parameter image_qos must be one of {', '.join(IMAGE_QOS_CHOICES)}, got {image_qos!r}")
    image_topic = str(values.get("image_topic", ConsoleSettings.image_topic)).strip()
    if not image_topic:
        raise ValueError("parameter image_topic must not be empty")
    settings = ConsoleSettings(
        host=host.strip("[]"),
        port=int(values.get("port", ConsoleSettings.port)),
        token=token,
        image_topic=image_topic,
        compressed=bool(values.get("compressed", False)),
        image_qos=image_qos,
        jpeg_quality=int(values.get("jpeg_quality", ConsoleSettings.jpeg_quality)),
        width=int(values.get("width", ConsoleSettings.width)),
        max_fps=float(values.get("max_fps", ConsoleSettings.max_fps)),
        max_clients=int(values.get("max_clients", ConsoleSettings.max_clients)),
        nice=int(values.get("nice", ConsoleSettings.nice)),
        tracker_name=str(values.get("tracker_name", ConsoleSettings.tracker_name)).strip(),
    )
    for parameter in PARAMETERS:  # ranges again, for values that did not come through rclpy
        value = getattr(settings, parameter.name)
        bounds = parameter.int_range or parameter.float_range
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            raise ValueError(f"parameter {parameter.name} must be in [{bounds[0]}, {bounds[1]}], got {value}")
    return settings


def declare_console_parameters(node: Any) -> ConsoleSettings:
    """Declare every parameter on ``node`` and return the checked settings.

    Raises ``rclpy.exceptions.ParameterException`` (wrong type, out of range) or ValueError.
    """
    values = {p.name: node.declare_parameter(p.name, p.default, p.descriptor()).value for p in PARAMETERS}
    return check_settings(values)
