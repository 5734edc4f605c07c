"""Start one tracker per camera, each in its own namespace with its own camera and parameters.

    ros2 launch siamrpnpp_ros cameras.launch.py                       # config/cameras.yaml: front, rear
    ros2 launch siamrpnpp_ros cameras.launch.py cameras:=/path/to/cameras.yaml lifecycle:=true

The cameras file (see config/cameras.yaml) maps each namespace to the tracker.launch.py
arguments of its camera (`image_topic`, `config`, `model`, `weights`, `device`, `max_targets`,
`console`, `console_port`, ...). Every camera's tracker is included from tracker.launch.py in a
scoped group, so one camera's arguments never leak into another's, and runs as a process of its
own: the trackers share no state, only the DDS domain. `lifecycle` and `autostart` given here
apply to every camera that does not set its own.

Scale-out is one process per camera; several targets in one camera are batched in one node
(`max_targets`), not spread over processes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

if TYPE_CHECKING:
    from launch import LaunchContext

# Arguments a camera may set: tracker.launch.py's, less `namespace` (the camera's key is it).
CAMERA_ARGUMENTS = (
    "config",
    "model",
    "weights",
    "device",
    "fp16",
    "backend",
    "image_topic",
    "use_compressed",
    "max_targets",
    "lifecycle",
    "autostart",
    "console",
    "console_host",
    "console_port",
    "console_token",
)
SHARED_ARGUMENTS = ("lifecycle", "autostart")  # this file's arguments, the default for every camera


def camera_arguments(document: object, shared: Mapping[str, str] | None = None) -> list[tuple[str, dict[str, str]]]:
    """``[(namespace, {tracker.launch.py argument: value})]`` from a parsed cameras file.

    Raises ValueError naming the camera and the key at fault. ``shared``: arguments every camera
    gets unless it sets them itself.
    """
    cameras = (document or {}).get("cameras") if isinstance(document, dict) else None
    if not isinstance(cameras, dict) or not cameras:
        raise ValueError("the cameras file needs a 'cameras:' mapping of namespace -> arguments")
    result = []
    topics: dict[str, str] = {}
    for namespace, arguments in cameras.items():
        name = str(namespace).strip("/")
        if not name or not all(part.isidentifier() for part in name.split("/")):
            raise ValueError(f"camera {namespace!r}: not a valid ROS namespace")
        arguments = arguments or {}
        if not isinstance(arguments, dict):
            raise ValueError(f"camera {name}: expected a mapping of launch arguments")
        unknown = sorted(set(arguments) - set(CAMERA_ARGUMENTS))
        if unknown:
            raise ValueError(
                f"camera {name}: unknown arguments {', '.join(unknown)}; use {', '.join(CAMERA_ARGUMENTS)}"
            )
        values = {key: value for key, value in (shared or {}).items() if value != ""}
        for key, value in arguments.items():
            values[key] = str(value).lower() if isinstance(value, bool) else str(value)
        values.setdefault("image_topic", f"/{name}/camera/image_raw")
        if values["image_topic"] in topics:
            raise ValueError(
                f"cameras {topics[values['image_topic']]} and {name} both track {values['image_topic']}; "
                "one tracker per camera (several targets in one camera: max_targets)"
            )
        topics[values["image_topic"]] = name
        values["namespace"] = name
        result.append((name, values))
    return result


def _cameras_file(context: LaunchContext) -> str:
    path: str = LaunchConfiguration("cameras").perform(context)
    return path or os.path.join(get_package_share_directory("siamrpnpp_ros"), "config", "cameras.yaml")


def _trackers(context: LaunchContext, *args: Any, **kwargs: Any) -> list[Any]:
    with open(_cameras_file(context), encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    shared = {name: LaunchConfiguration(name).perform(context) for name in SHARED_ARGUMENTS}
    tracker_launch = os.path.join(get_package_share_directory("siamrpnpp_ros"), "launch", "tracker.launch.py")
    return [
        # Scoped: each camera's launch configurations stay inside its group.
        GroupAction(
            [
                IncludeLaunchDescription(
                    PythonLaunchDescriptionSource(tracker_launch), launch_arguments=list(values.items())
                )
            ],
            scoped=True,
        )
        for _, values in camera_arguments(document, shared)
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "cameras",
                default_value="",
                description="cameras file: namespace -> tracker.launch.py arguments; empty: the package's "
                "config/cameras.yaml (front and rear)",
            ),
            DeclareLaunchArgument(
                "lifecycle", default_value="false", description="true: every camera's tracker is a managed node"
            ),
            DeclareLaunchArgument(
                "autostart",
                default_value="false",
                description="with lifecycle:=true: configure and activate every tracker at start",
            ),
            OpaqueFunction(function=_trackers),
        ]
    )
