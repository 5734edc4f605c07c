"""Start the SiamRPN++ tracker node.

    ros2 launch siamrpnpp_ros tracker.launch.py          # the bundled default model
    ros2 launch siamrpnpp_ros tracker.launch.py config:=/path/to/params.yaml \
        model:=mobilev2 weights:=/path/to/model.pth device:=cuda \
        image_topic:=/camera/image_raw namespace:=drone1 use_compressed:=false

With `console:=true` the operator console runs beside the node, in the same namespace and on
the same camera topic: open http://127.0.0.1:8080/ on this machine (`console_port`,
`console_host`; its access token comes from `console_token` or the environment variable
SIAMRPNPP_CONSOLE_TOKEN).

With `lifecycle:=true` the node is a managed (lifecycle) node: it starts unconfigured, and a
lifecycle manager (nav2_lifecycle_manager, `ros2 lifecycle set <namespace>/siamrpnpp_tracker
configure`, ...) configures it (loads the model) and activates it (starts tracking).
`autostart:=true` has this launch file do both at start, configure, then activate once the
node reports `inactive`; a failed configure leaves the node unconfigured, with the reason logged.

`model`, `weights`, `device`, `fp16`, `backend`, `use_compressed` and `max_targets` (most
targets tracked at once) override the config file only when given; left empty, the file's
values apply. Without `config`, the package's
file for the model is used, with its tracker settings and also its `device` and `fp16`
(`model:=mobilev2` gets `jetson_mobilenet.yaml`, fp16 on: add `fp16:=false` on a CPU).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import lifecycle_msgs.msg
import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState

if TYPE_CHECKING:
    from launch import LaunchContext

OVERRIDABLE_PARAMETERS = ("model", "weights", "device", "backend")
OVERRIDABLE_SWITCHES = ("use_compressed", "fp16")
DEFAULT_MODEL = "alex-w0.25"  # siamrpnpp_ros.tracking.factory.DEFAULT_MODEL (a test keeps them equal)
# Without config:=, the file holding the model's tracker settings (a thinner variant such as
# mobilev2-w1.0 shares its preset's): another model's settings would be wrong for it.
CONFIG_FOR_MODEL = {
    "alex-w0.25": "default_model.yaml",
    "r50": "desktop_r50.yaml",
    "mobilev2": "jetson_mobilenet.yaml",
    "alex": "cpu_alex.yaml",
}


def _config_file(context: LaunchContext) -> str:
    config: str = LaunchConfiguration("config").perform(context)
    if config:
        return config
    model = LaunchConfiguration("model").perform(context) or DEFAULT_MODEL
    filename = CONFIG_FOR_MODEL.get(model) or CONFIG_FOR_MODEL.get(model.split("-w")[0])
    if filename is None:
        raise ValueError(f"unknown model {model!r}; use r50, mobilev2, alex or {DEFAULT_MODEL}, or pass config:=")
    return os.path.join(get_package_share_directory("siamrpnpp_ros"), "config", filename)


def _tracker_node(context: LaunchContext, *args: Any, **kwargs: Any) -> list[Any]:
    overrides: dict[str, str | bool | int] = {}
    for name in OVERRIDABLE_PARAMETERS:
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = value
    for name in OVERRIDABLE_SWITCHES:
        switch = _optional_switch(context, name)
        if switch is not None:
            overrides[name] = switch
    max_targets = LaunchConfiguration("max_targets").perform(context).strip()
    if max_targets:
        if not max_targets.isdigit() or int(max_targets) < 1:
            raise ValueError(f"max_targets must be a whole number >= 1, got {max_targets!r}")
        overrides["max_targets"] = int(max_targets)

    remappings = _camera_remappings(context)
    common = {
        "package": "siamrpnpp_ros",
        "executable": "tracker_node",
        "name": "siamrpnpp_tracker",
        "namespace": LaunchConfiguration("namespace").perform(context),
        "parameters": [_config_file(context), overrides],
        "remappings": remappings,
        "output": "screen",
        "emulate_tty": True,
    }
    lifecycle = _switch(context, "lifecycle")
    autostart = _switch(context, "autostart")
    if not lifecycle:
        if autostart:
            raise ValueError("autostart applies to lifecycle:=true only")
        return [Node(**common)]
    # The executable's own flag (before --ros-args) selects the managed node.
    node = LifecycleNode(arguments=["--lifecycle"], **common)
    if not autostart:
        return [node]  # unconfigured until a lifecycle manager configures it
    return [
        node,
        # Activate once configured (a failed configure returns to unconfigured: nothing follows).
        RegisterEventHandler(
            OnStateTransition(
                target_lifecycle_node=node,
                start_state="configuring",
                goal_state="inactive",
                entities=[
                    EmitEvent(
                        event=ChangeState(
                            lifecycle_node_matcher=matches_action(node),
                            transition_id=lifecycle_msgs.msg.Transition.TRANSITION_ACTIVATE,
                        )
                    )
                ],
            )
        ),
        EmitEvent(
            event=ChangeState(
                lifecycle_node_matcher=matches_action(node),
                transition_id=lifecycle_msgs.msg.Transition.TRANSITION_CONFIGURE,
            )
        ),
    ]


def _optional_switch(context: LaunchContext, name: str) -> bool | None:
    """The true/false launch argument ``name``; None when left empty."""
    value: str = LaunchConfiguration(name).perform(context).strip().lower()
    if not value:
        return None
    if value not in ("true", "false"):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value == "true"


def _switch(context: LaunchContext, name: str) -> bool:
    switch = _optional_switch(context, name)
    if switch is None:
        raise ValueError(f"{name} must be true or false, got ''")
    return switch


def _camera_remappings(context: LaunchContext) -> list[tuple[str, str]]:
    image_topic = LaunchConfiguration("image_topic").perform(context)
    return [("image", image_topic), ("image/compressed", image_topic + "/compressed")]


def _node_uses_compressed(context: LaunchContext) -> bool:
    """The node's use_compressed: the launch argument when given, else the parameter file's."""
    value: str = LaunchConfiguration("use_compressed").perform(context).strip().lower()
    if value:
        return value == "true"
    with open(_config_file(context), encoding="utf-8") as handle:
        document = yaml.safe_load(handle) or {}
    for key in ("/**", "siamrpnpp_tracker", "/siamrpnpp_tracker"):
        parameters = (document.get(key) or {}).get("ros__parameters") or {}
        if "use_compressed" in parameters:
            return bool(parameters["use_compressed"])
    return False


def _console_node(context: LaunchContext, *args: Any, **kwargs: Any) -> list[Any]:
    if not _switch(context, "console"):
        return []
    port_text: str = LaunchConfiguration("console_port").perform(context).strip()
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"console_port must be a port number (0-65535), got {port_text!r}")
    parameters: dict[str, str | int | bool] = {
        "host": LaunchConfiguration("console_host").perform(context).strip(),
        "port": int(port_text),
        # Watches the camera topic the node tracks on.
        "compressed": _node_uses_compressed(context),
    }
    token = LaunchConfiguration("console_token").perform(context)
    if token:
        parameters["token"] = token
    return [
        Node(
            package="siamrpnpp_ros",
            executable="operator_console",
            name="operator_console",
            namespace=LaunchConfiguration("namespace"),
            parameters=[parameters],
            remappings=_camera_remappings(context),
            output="screen",
            emulate_tty=True,
        )
    ]


# Every launch argument: name, default, description.
LAUNCH_ARGUMENTS = (
    (
        "config",
        "",
        "ROS parameters file; empty: the package's file for the model "
        "(default_model.yaml, desktop_r50.yaml, jetson_mobilenet.yaml, cpu_alex.yaml)",
    ),
    ("model", "", f"r50, mobilev2, alex or {DEFAULT_MODEL} (the bundled model); empty keeps the config file's"),
    ("weights", "", "pysot checkpoint (model.pth); empty keeps the config file's"),
    ("device", "", "auto, cuda, cuda:N or cpu; empty keeps the config file's"),
    ("fp16", "", "true/false: half precision (CUDA only); empty keeps the config file's"),
    ("backend", "", "torch or onnxruntime; empty keeps the config file's"),
    ("image_topic", "/camera/image_raw", "camera topic; with use_compressed, its /compressed sibling is used"),
    ("use_compressed", "", "true to subscribe to sensor_msgs/CompressedImage; empty keeps the config file's"),
    ("max_targets", "", "most targets tracked at once (the node's default is 1); empty keeps the config file's"),
    ("namespace", "", "namespace for the node and its topics"),
    (
        "lifecycle",
        "false",
        "true: run the managed (lifecycle) node, which starts unconfigured and loads the model on configure",
    ),
    (
        "autostart",
        "false",
        "with lifecycle:=true: configure and then activate the node at start, instead of "
        "waiting for a lifecycle manager",
    ),
    (
        "console",
        "false",
        "true: also run the operator console (a web page to watch and select targets) in the same namespace",
    ),
    (
        "console_host",
        "127.0.0.1",
        "address the console binds to; anything but 127.0.0.1 lets everyone "
        "who reaches it steer the robot (set console_token)",
    ),
    ("console_port", "8080", "the console's TCP port"),
    (
        "console_token",
        "",
        "access token the console requires on every request; empty: $SIAMRPNPP_CONSOLE_TOKEN, else none",
    ),
)


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            *(
                DeclareLaunchArgument(name, default_value=default, description=description)
                for name, default, description in LAUNCH_ARGUMENTS
            ),
            OpaqueFunction(function=_tracker_node),
            OpaqueFunction(function=_console_node),
        ]
    )
