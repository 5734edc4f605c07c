"""The ROS 2 adapter around the tracking core.

``conversions`` (image messages <-> BGR arrays), ``qos``, ``parameters``, ``frames`` (frame
cache and latest-frame slot) and ``node`` (the tracker node) make up the node; ``player``,
``selector`` and ``demo`` are the pieces of the demo that tests reuse as peers.
"""
