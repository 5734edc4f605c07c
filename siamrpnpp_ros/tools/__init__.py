"""ROS programs around the tracker node (they use ``siamrpnpp_ros.ros`` and the core, the
node uses none of them).

``demo`` (``make demo``: node, camera player and automatic selector in one run), ``player``
(a camera stand-in publishing a video), ``selector`` (an automatic operator that selects the
target on the first image), ``latency_bench`` (publish-to-box latency through ROS), ``soak``
(memory and latency of the node over a long run, with target absences and camera restarts),
``transport_check`` (how many camera-sized images survive a DDS set-up) and ``environment``
(the variables that keep such processes on one host with large images delivered). Tests reuse
them as peers.
"""
