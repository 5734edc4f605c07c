"""Backbones: each maps ``(B, 3, H, W)`` images to a list of feature maps.

Every backbone exposes ``out_channels`` (channels of each returned feature, in
``used_layers`` order) so the neck/RPN can be checked against it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .alexnet import AlexNetLegacy
from .mobilenet_v2 import InvertedResidual, MobileNetV2
from .resnet import Bottleneck, ResNet50

if TYPE_CHECKING:
    # Annotation only: ``models/config.py`` imports the backbones (it sizes the neck from a
    # backbone's ``out_channels``), so at run time the backbones do not import it back.
    from ..config import BackboneConfig

__all__ = [
    "AlexNetLegacy",
    "Bottleneck",
    "InvertedResidual",
    "MobileNetV2",
    "ResNet50",
    "build_backbone",
]


def build_backbone(cfg: BackboneConfig) -> ResNet50 | MobileNetV2 | AlexNetLegacy:
    """Instantiate the backbone described by ``cfg`` (untrained weights)."""
    if cfg.name == "resnet50":
        return ResNet50(used_layers=cfg.used_layers)
    if cfg.name == "mobilenetv2":
        return MobileNetV2(width_mult=cfg.width_mult, used_layers=cfg.used_layers)
    if cfg.name == "alexnet":
        return AlexNetLegacy(width_mult=cfg.width_mult)
    raise ValueError(f"unknown backbone {cfg.name!r}")
