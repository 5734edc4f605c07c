"""Start the SiamRPN++ tracker node.

    ros2 launch siamrpnpp_ros tracker.launch.py          # the bundled default model
    ros2 launch siamrpnpp_ros tracker.launch.py config:=/path/to/params.yaml \
        model:=mobilev2 weights:=/path/to/model.pth device:=cuda \
        image_topic:=/camera/image_raw namespace:=drone1 use_compressed:=false

`model`, `weights`, `device` and `use_compressed` override the config file only
when given; left empty, the file's values apply.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

OVERRIDABLE_PARAMETERS = ("model", "weights", "device")


def _tracker_node(context, *args, **kwargs):
    overrides = {}
    for name in OVERRIDABLE_PARAMETERS:
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = value
    use_compressed = LaunchConfiguration("use_compressed").perform(context).strip().lower()
    if use_compressed:
        if use_compressed not in ("true", "false"):
            raise ValueError(f"use_compressed must be true or false, got {use_compressed!r}")
        overrides["use_compressed"] = use_compressed == "true"

    image_topic = LaunchConfiguration("image_topic").perform(context)
    remappings = [("image", image_topic), ("image/compressed", image_topic + "/compressed")]
    return [
        Node(
            package="siamrpnpp_ros",
            executable="tracker_node",
            name="siamrpnpp_tracker",
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("config"), overrides],
            remappings=remappings,
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description() -> LaunchDescription:
    default_config = PathJoinSubstitution([FindPackageShare("siamrpnpp_ros"), "config", "default_model.yaml"])
    return LaunchDescription(
        [
            DeclareLaunchArgument("config", default_value=default_config,
                                  description="ROS parameters file (see the package's config/ folder)"),
            DeclareLaunchArgument("model", default_value="",
                                  description="r50, mobilev2, alex or alex-w0.5 (the bundled model); empty keeps the config file's"),
            DeclareLaunchArgument("weights", default_value="",
                                  description="pysot checkpoint (model.pth); empty keeps the config file's"),
            DeclareLaunchArgument("device", default_value="",
                                  description="auto, cuda, cuda:N or cpu; empty keeps the config file's"),
            DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                                  description="camera topic; with use_compressed, its /compressed sibling is used"),
            DeclareLaunchArgument("use_compressed", default_value="",
                                  description="true to subscribe to sensor_msgs/CompressedImage; empty keeps the config file's"),
            DeclareLaunchArgument("namespace", default_value="",
                                  description="namespace for the node and its topics"),
            OpaqueFunction(function=_tracker_node),
        ]
    )
