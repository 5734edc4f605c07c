"""Frame sources: video files and image folders (OTB layout) with their ground-truth boxes.

Core and ROS-free, and without PyTorch (OpenCV and NumPy only), so that light programs such
as the camera player start quickly; the offline tracker, training, evaluation, the speed
benchmark and the ROS tools all read their sequences through it.

    from siamrpnpp_ros.sequences import open_sequence
    sequence = open_sequence("clip.mp4")      # or an image folder with groundtruth.txt
    for frame in sequence: ...                # BGR uint8
"""

from .reader import (
    GROUNDTRUTH_NAMES,
    IMAGE_EXTENSIONS,
    FrameSequence,
    SequenceError,
    open_sequence,
    read_groundtruth,
)

__all__ = [
    "GROUNDTRUTH_NAMES",
    "IMAGE_EXTENSIONS",
    "FrameSequence",
    "SequenceError",
    "open_sequence",
    "read_groundtruth",
]
