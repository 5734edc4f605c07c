"""SiamRPN++ visual tracking for ROS 2.

The subpackages ``models``, ``tracking``, ``training`` and ``eval`` are plain
PyTorch/NumPy code with no ROS imports; ``ros`` holds the thin node adapter.
"""

__version__ = "0.1.0"
