"""Speed of the tracker: ``speed`` times ``track()`` per model and mode (crop, backbone, neck,
head and decode split, GFLOP/s against this machine's peaks), ``report`` prints the table and
draws the chart. The command is ``siamrpnpp-bench`` (``siamrpnpp_ros/bench.py``); the ROS
latency benchmark is ``siamrpnpp_ros.tools.latency_bench``.
"""
