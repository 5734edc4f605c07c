"""SiamRPN++ tracking logic on top of ``siamrpnpp_ros.models`` (plain NumPy/PyTorch, no ROS).

Usage::

    from siamrpnpp_ros.tracking import build_tracker
    tracker = build_tracker("r50", "model.pth", device="auto")
    tracker.init(first_frame, (x, y, w, h))   # top-left box, pixels
    result = tracker.track(next_frame)         # result.box, result.score
"""

from .anchors import anchor_shapes, cosine_window, generate_anchors
from .config import MODEL_NAMES, TRACKER_PRESETS, TrackerConfig, load_tracker_config, preset_for
from .crop import channel_average, crop_to_tensor, padding_color, square_crop, square_crop_tensor
from .factory import build_tracker, default_weights_path, select_device
from .longterm import LongTermTracker
from .tracker import SiamRPNTracker, TrackResult, clip_state, validate_frame, validate_init_box

__all__ = [
    "MODEL_NAMES",
    "TRACKER_PRESETS",
    "LongTermTracker",
    "SiamRPNTracker",
    "TrackResult",
    "TrackerConfig",
    "anchor_shapes",
    "build_tracker",
    "channel_average",
    "clip_state",
    "cosine_window",
    "crop_to_tensor",
    "default_weights_path",
    "generate_anchors",
    "load_tracker_config",
    "padding_color",
    "preset_for",
    "select_device",
    "square_crop",
    "square_crop_tensor",
    "validate_frame",
    "validate_init_box",
]
