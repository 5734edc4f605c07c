"""Learning-rate schedule: linear warm-up, then log (geometric), cosine or constant.

A pure function of training progress (epochs as a float), so a resumed run
continues on exactly the same curve. pysot steps its warm-up once per epoch;
here it ramps every step, which avoids lr jumps with few, long epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LRSchedule:
    """``lr(progress)`` for ``progress`` in ``[0, epochs]`` (fractional epochs).

    Warm-up: ``warmup_start_lr -> base_lr`` linearly over ``warmup_epochs``. Then over the
    remaining epochs: ``log`` decays geometrically ``base_lr -> final_lr``; ``cosine`` follows
    half a cosine from ``base_lr`` to ``final_lr``; ``constant`` stays at ``base_lr``.
    """

    base_lr: float
    final_lr: float
    epochs: float
    kind: str = "log"
    warmup_epochs: float = 0.0
    warmup_start_lr: float = 0.001

    def __call__(self, progress: float) -> float:
        """The learning rate at ``progress`` epochs (clamped to ``[0, epochs]``)."""
        progress = min(max(float(progress), 0.0), float(self.epochs))
        if self.warmup_epochs > 0 and progress < self.warmup_epochs:
            t = progress / self.warmup_epochs
            return self.warmup_start_lr + (self.base_lr - self.warmup_start_lr) * t
        span = self.epochs - self.warmup_epochs
        t = 1.0 if span <= 0 else (progress - self.warmup_epochs) / span
        if self.kind == "constant":
            return self.base_lr
        if self.kind == "cosine":
            return self.final_lr + (self.base_lr - self.final_lr) * 0.5 * (1 + math.cos(math.pi * t))
        if self.kind == "log":
            return float(self.base_lr * (self.final_lr / self.base_lr) ** t)
        raise ValueError(f"unknown lr schedule {self.kind!r}")
