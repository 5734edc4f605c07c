"""Environment for ROS processes that exchange camera images on one host.

Used by the demo, the transport check and ``tools.node_under_test`` (the benchmarks' and the
ROS tests' harness), and a reference for users: see config/fastdds_large_images.xml for why
images need a transport profile.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_NAME = "siamrpnpp_ros"
LARGE_IMAGE_PROFILE_NAME = "fastdds_large_images.xml"


def large_image_profile() -> Path:
    """Path of the Fast DDS profile for large images: the checkout's when run from one,
    else the installed package's share folder.
    """
    in_checkout = Path(__file__).resolve().parents[2] / "config" / LARGE_IMAGE_PROFILE_NAME
    if in_checkout.is_file():
        return in_checkout
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE_NAME)) / "config" / LARGE_IMAGE_PROFILE_NAME


def isolated_ros_environment(domain_id: int) -> dict[str, str]:
    """Variables that keep ROS traffic on this host and domain, with large images delivered.

    ``domain_id``: 1..100 is safe (Fast DDS allows 0..232, but ids above 101 can clash
    with ephemeral ports). Discovery is limited to localhost (``ROS_LOCALHOST_ONLY`` is
    ignored since Kilted), and the large-image profile replaces the default transports.
    """
    profile = str(large_image_profile())
    return {
        "ROS_DOMAIN_ID": str(domain_id),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "FASTDDS_DEFAULT_PROFILES_FILE": profile,
        "RMW_IMPLEMENTATION": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
    }
