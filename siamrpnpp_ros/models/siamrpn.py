"""The SiamRPN++ network with a template-caching inference API.

pysot's ``ModelBuilder`` keeps the exemplar features as hidden state and
re-runs the RPN template convs on every ``track()`` call. Here the template is
an explicit value instead: :meth:`SiamRPN.template` returns the RPN
correlation kernels once per target, and :meth:`SiamRPN.forward` takes them
with each search crop. That keeps the module stateless (safe to share, easy
to export: the kernels are just extra graph inputs) and skips the repeated
template work, with outputs identical to pysot's (same ops, same order).

Submodule names (``backbone``, ``neck``, ``rpn_head``) are the prefixes of
pysot's checkpoint keys and must not change.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor, nn

from .backbones import build_backbone
from .config import ModelConfig, model_config
from .neck import AdjustAllLayer, build_neck
from .rpn import build_rpn_head

#: Cached RPN template-branch outputs, flat and ordered by level:
#: ``(cls_kernel_lvl0, loc_kernel_lvl0, cls_kernel_lvl1, ...)``, each
#: ``(B, hidden, k, k)`` with ``k = 5`` for r50/mobilev2 and ``4`` for alex at
#: a 127 px exemplar. Two tensors for alex, six for the three-level models.
TemplateKernels = tuple[Tensor, ...]


class SiamRPN(nn.Module):
    """SiamRPN++: backbone -> neck (optional) -> depth-wise correlation RPN.

    Inputs are crops exactly as the tracker makes them: float tensors
    ``(B, 3, H, W)``, BGR channel order, raw 0..255 values (no mean/std
    normalisation; the weights were trained that way).

    Typical use::

        model = build_model("r50"); load_checkpoint(model, "model.pth")
        with torch.inference_mode():
            kernels = model.template(z)       # once per target
            cls, loc = model(x, kernels)      # every frame

    The model is plain ``nn.Module``: ``.to(device)``, ``.half()``,
    ``.double()`` all work; inputs are moved/cast to the parameters'
    device and dtype, outputs are returned in at least float32.
    """

    def __init__(self, config: Union[ModelConfig, str]) -> None:
        super().__init__()
        cfg = model_config(config)
        self.config: ModelConfig = cfg
        self.backbone = build_backbone(cfg.backbone)
        features = tuple(self.backbone.out_channels)
        self.neck: Optional[AdjustAllLayer]
        if cfg.neck is not None:
            if features != cfg.neck.in_channels:
                raise ValueError(
                    f"backbone {cfg.backbone.name} outputs {features} channels "
                    f"but the neck expects {cfg.neck.in_channels}"
                )
            self.neck = build_neck(cfg.neck)
            features = cfg.neck.out_channels
        else:
            self.neck = None
        if features != cfg.rpn.in_channels:
            raise ValueError(f"RPN expects {cfg.rpn.in_channels} channels, features have {features}")
        self.rpn_head = build_rpn_head(cfg.rpn)

    @property
    def anchor_num(self) -> int:
        """Anchors per score-map position ``A`` (cls has ``2A``, loc ``4A`` channels)."""
        return self.config.rpn.anchor_num

    @property
    def kernel_names(self) -> tuple[str, ...]:
        """Names for the tensors of :data:`TemplateKernels`, in order (e.g. ONNX I/O names).

        ``('cls_kernel_2', 'loc_kernel_2', 'cls_kernel_3', ...)`` for multi-level
        heads (numbered like the ``rpn2``.. modules), ``('cls_kernel', 'loc_kernel')``
        for a single head.
        """
        if not self.config.rpn.multi:
            return ("cls_kernel", "loc_kernel")
        names: list[str] = []
        for level in range(self.config.rpn.num_levels):
            names += [f"cls_kernel_{level + 2}", f"loc_kernel_{level + 2}"]
        return tuple(names)

    def _features(self, image: Tensor, is_template: bool) -> list[Tensor]:
        """Backbone + neck. ``image`` ``(B, 3, H, W)`` -> per-level ``(B, C, h, w)``."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) image tensor, got shape {tuple(image.shape)}")
        param = next(self.parameters())
        image = image.to(device=param.device, dtype=param.dtype)
        features: list[Tensor] = self.backbone(image)
        if self.neck is not None:
            # Template: pysot's width rule (crops the 15x15 exemplar feature to
            # 7x7). Search: never crop. pysot applies the width rule to both,
            # which only differs for search crops under ~160 px, where cropping
            # the search feature would be meaningless.
            features = self.neck(features, crop=None if is_template else False)
        return features

    def template(self, z: Tensor) -> TemplateKernels:
        """Run the exemplar branch once per target.

        Args:
            z: exemplar crop ``(B, 3, 127, 127)``, float, BGR, 0..255.

        Returns:
            The flat tuple of per-level RPN kernels (see :data:`TemplateKernels`),
            in the model's dtype and device. Pass it unchanged to :meth:`forward`.
        """
        return tuple(self.rpn_head.template_kernels(self._features(z, is_template=True)))

    def forward(self, x: Tensor, kernels: TemplateKernels) -> tuple[Tensor, Tensor]:
        """Score a search crop against cached template kernels.

        Args:
            x: search crop ``(B, 3, I, I)``, float, BGR, 0..255; any size works
                (255 for r50/mobilev2, 287 for alex, 831 for a widened search).
            kernels: from :meth:`template`, batch ``B`` or ``1`` (one template
                shared by all ``B`` crops).

        Returns:
            ``cls (B, 2A, S, S)`` raw logits (channel ``a`` background, ``A+a``
            foreground of anchor ``a``) and ``loc (B, 4A, S, S)`` raw deltas
            (channel ``k*A+a`` = component k of dx, dy, dw, dh), with
            ``S = (I - 127) // 8 + 9`` for r50/mobilev2 and ``(I - 127) // 8 + 1``
            for alex. At least float32 (half/bfloat16 models are upcast).
        """
        cls, loc = self.rpn_head.track(self._features(x, is_template=False), kernels)
        out_dtype = torch.promote_types(cls.dtype, torch.float32)
        return cls.to(out_dtype), loc.to(out_dtype)


def build_model(name_or_config: Union[str, ModelConfig]) -> SiamRPN:
    """A freshly initialised :class:`SiamRPN` (``'r50'``, ``'mobilev2'``, ``'alex'`` or a
    :class:`ModelConfig`), **in eval mode** because tracking is its main use; call
    ``.train()`` to train it. Load weights with :func:`load_checkpoint`.

    Raises:
        ValueError: unknown preset name.
    """
    return SiamRPN(model_config(name_or_config)).eval()
