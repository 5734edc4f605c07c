"""Operator console: a web page to watch the camera and tracked boxes and to select targets.

    ros2 run siamrpnpp_ros operator_console --ros-args -p port:=8080
    python -m siamrpnpp_ros.tools.console --ros-args -r __ns:=/drone1 -p compressed:=true

Parts, in the direction the data flows:

- ``settings``: the ROS parameters (declared with descriptors) and their validated values.
- ``ros_bridge``: the console's rclpy node, spun in its own thread. It keeps only the
  newest camera image and the newest box of every target, and publishes selections.
- ``frames``: turns the newest image into a downscaled JPEG (once per frame and setting,
  whatever the number of browsers) and remembers the frames it showed, so a selection can
  name the exact image the operator drew on.
- ``validation``: checks every value a browser sends (selection, stream settings).
- ``server``: the aiohttp application: the page and its files, a WebSocket per browser
  that pulls the newest frame (no backlog), the selection endpoint, access control.
- ``main``: the entry point (``operator_console``).

No part of the console runs inside the tracker node: the tracker never waits for a browser.
"""
