"""The ROS 2 adapter around the tracking core.

The node: ``node`` (the tracker node), ``conversions`` (image messages <-> BGR arrays),
``frames`` (frame cache and latest-frame slot), ``parameters``, ``qos``, ``diagnostics`` and
``drawing`` (the debug image). The demo: ``player`` (a camera stand-in), ``selector`` (an
automatic operator) and ``demo``; tests reuse them as peers.
"""
