"""SiamRPN++ training losses (pysot's ``select_cross_entropy_loss`` and ``weight_l1_loss``).

Head layouts (see ``SiamRPN.forward``): ``cls`` (B, 2A, S, S) with channel ``a``
the background and ``A + a`` the foreground logit of anchor ``a``; ``loc``
(B, 4A, S, S) with channel ``k*A + a`` the component ``k`` (dx, dy, dw, dh).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor


def cls_log_softmax(cls: Tensor) -> Tensor:
    """(B, 2A, S, S) logits -> (B, A, S, S, 2) log-probabilities, last axis (background, foreground)."""
    batch, channels, height, width = cls.shape
    paired = cls.reshape(batch, 2, channels // 2, height, width).permute(0, 2, 3, 4, 1)
    return F.log_softmax(paired.float(), dim=4)


def select_cross_entropy_loss(cls: Tensor, label_cls: Tensor) -> Tensor:
    """Balanced classification loss: ``0.5 * mean NLL(positives) + 0.5 * mean NLL(negatives)``.

    ``cls``: (B, 2A, S, S) raw logits; ``label_cls``: (B, A, S, S) int64 with 1 positive,
    0 negative, -1 ignored. Means are over the whole batch's positives (negatives); a term
    with no anchors contributes 0, as in pysot. Returns a scalar.
    """
    log_probs = cls_log_softmax(cls).reshape(-1, 2)
    labels = label_cls.reshape(-1)
    total = log_probs.new_zeros(())
    for value in (1, 0):
        mask = labels == value
        count = mask.sum()
        # Masked sums instead of index_select keep the graph static (no host sync on counts).
        picked = -log_probs[:, value] * mask
        total = total + 0.5 * picked.sum() / count.clamp(min=1)
    return total


def weighted_l1_loss(loc: Tensor, label_loc: Tensor, label_loc_weight: Tensor) -> Tensor:
    """``sum(|loc - label| summed over dx,dy,dw,dh * weight) / B`` (pysot's ``weight_l1_loss``).

    ``loc``: (B, 4A, S, S); ``label_loc``: (B, 4, A, S, S) normalised deltas;
    ``label_loc_weight``: (B, A, S, S), ``1/num_positives`` on positives so each pair's
    term is its mean L1 over positives. Returns a scalar.
    """
    batch, _, height, width = loc.shape
    diff = (loc.float().reshape(batch, 4, -1, height, width) - label_loc).abs().sum(dim=1)
    return (diff * label_loc_weight).sum() / batch


@dataclass(frozen=True)
class LossOutput:
    """``total = cls_weight * cls + loc_weight * loc`` (scalars, with graph)."""

    total: Tensor
    cls: Tensor
    loc: Tensor


def siamrpn_loss(
    cls: Tensor,
    loc: Tensor,
    label_cls: Tensor,
    label_loc: Tensor,
    label_loc_weight: Tensor,
    cls_weight: float = 1.0,
    loc_weight: float = 1.2,
) -> LossOutput:
    """The full SiamRPN++ loss; pysot weights: cls 1.0, loc 1.2."""
    cls_loss = select_cross_entropy_loss(cls, label_cls)
    loc_loss = weighted_l1_loss(loc, label_loc, label_loc_weight)
    return LossOutput(cls_weight * cls_loss + loc_weight * loc_loss, cls_loss, loc_loss)
