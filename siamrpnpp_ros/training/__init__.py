"""SiamRPN++ training (ROS-free): data sources, pair sampling, anchor targets, losses, loop.

    from siamrpnpp_ros.training import TrainConfig, Trainer, DataSpec
    config = TrainConfig(model="alex", data=(DataSpec("/data/sequences"),), epochs=20, out="runs/alex")
    result = Trainer(config).fit()            # result.final_weights: pysot-format weights
    # later: Trainer(config).fit(resume="runs/alex")

Command line: ``siamrpnpp-train`` / ``python -m siamrpnpp_ros.train`` (see ``--help``). The default
model's whole pipeline (data from real photos, training, report) is
``python -m siamrpnpp_ros.training.default_model --out runs/default_alex``.

Names are imported from their submodules on first use (PEP 562), so the torch-free
parts (``augment``, ``boxes``) load without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "AnchorTargetAssigner": "targets",
    "AnchorTargetConfig": "targets",
    "AnchorTargets": "targets",
    "AugmentConfig": "augment",
    "DataError": "datasets",
    "DataSpec": "config",
    "LRSchedule": "schedule",
    "LossOutput": "losses",
    "PairDataset": "pairs",
    "PairSample": "pairs",
    "SEARCH_AUGMENT": "augment",
    "TEMPLATE_AUGMENT": "augment",
    "Track": "datasets",
    "TrainConfig": "config",
    "TrainResult": "trainer",
    "Trainer": "trainer",
    "TrainingCrop": "augment",
    "TrainingSource": "datasets",
    "augmented_view": "augment",
    "build_training_model": "model",
    "center_to_corner": "boxes",
    "center_to_xywh": "boxes",
    "checkpoint_path": "trainer",
    "context_side": "augment",
    "corner_iou": "boxes",
    "decode_deltas": "targets",
    "encode_deltas": "targets",
    "find_resume_point": "trainer",
    "load_backbone_weights": "model",
    "load_source": "datasets",
    "load_train_config": "config",
    "output_score_size": "model",
    "random_patch_box": "augment",
    "save_train_config": "config",
    "select_cross_entropy_loss": "losses",
    "siamrpn_loss": "losses",
    "state_path_for": "trainer",
    "train_config_from_mapping": "config",
    "training_crop": "augment",
    "training_model_config": "model",
    "weighted_l1_loss": "losses",
    "xywh_to_center": "boxes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
