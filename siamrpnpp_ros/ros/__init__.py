"""The ROS 2 adapter around the tracking core.

The node: ``node`` (the tracker node), ``conversions`` (image messages <-> BGR arrays),
``frames`` (frame cache and latest-frame slot), ``parameters``, ``qos``, ``diagnostics`` and
``drawing`` (the debug image). Nothing else belongs here: the programs around the node (demo,
player, selector, benchmarks) live in ``siamrpnpp_ros.tools``, which imports this package,
never the other way round.
"""
