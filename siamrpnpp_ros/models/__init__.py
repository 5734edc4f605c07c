"""SiamRPN++ networks (pure PyTorch, no ROS): presets, model, checkpoint I/O.

Usage::

    from siamrpnpp_ros.models import build_model, load_checkpoint
    model = build_model("r50")            # eval mode
    load_checkpoint(model, "model.pth")   # pysot layout, weights_only
    kernels = model.template(z_crop)      # (1,3,127,127) BGR 0..255
    cls, loc = model(x_crop, kernels)     # (1,10,25,25), (1,20,25,25)
"""

from .checkpoints import (
    CheckpointError,
    guess_model_name,
    load_checkpoint,
    read_state_dict,
    save_checkpoint,
    state_dict_keys,
)
from .config import (
    MODEL_PRESETS,
    BackboneConfig,
    ModelConfig,
    ModelName,
    NeckConfig,
    RPNConfig,
    is_model_name,
    layout_model_config,
    model_config,
    parse_model_name,
    split_model_name,
    thinner_model_config,
)
from .siamrpn import SiamRPN, TemplateKernels, build_model

__all__ = [
    "MODEL_PRESETS",
    "BackboneConfig",
    "CheckpointError",
    "ModelConfig",
    "ModelName",
    "NeckConfig",
    "RPNConfig",
    "SiamRPN",
    "TemplateKernels",
    "build_model",
    "guess_model_name",
    "is_model_name",
    "layout_model_config",
    "load_checkpoint",
    "model_config",
    "parse_model_name",
    "read_state_dict",
    "save_checkpoint",
    "split_model_name",
    "state_dict_keys",
    "thinner_model_config",
]
