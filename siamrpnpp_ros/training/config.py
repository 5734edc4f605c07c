"""Training configuration: one dataclass, loadable from YAML and overridable from the CLI.

Defaults follow pysot's ``siamrpn_r50_l234_dwxcorr`` experiment where they are
model-independent (augmentation, anchor-target thresholds, loss weights, SGD
with warm-up and a log-decayed learning rate, gradient clipping at 10). The
config is a plain value passed to whoever needs it; nothing reads a global.

YAML layout (every key optional except ``data``)::

    model: alex
    data:
      - path: /data/my_sequences          # kind detected: sequences | video | images | unlabeled
      - {path: /data/walk.mp4, boxes: /data/walk.txt, frame_range: 50}
      - {path: /data/photos, kind: unlabeled, weight: 0.5}
    epochs: 20
    search_augment: {shift: 64, scale: 0.18, blur: 0.2}
    targets: {positive_iou: 0.6, negative_iou: 0.3}
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from siamrpnpp_ros.material.imagenet_weights import PRETRAINED_BACKBONES
from siamrpnpp_ros.models.config import THIN_NAME_HELP, is_model_name
from siamrpnpp_ros.training.model import training_model_config

from .augment import SEARCH_AUGMENT, TEMPLATE_AUGMENT, AugmentConfig
from .datasets import SOURCE_KINDS
from .targets import AnchorTargetConfig

OPTIMIZERS = ("sgd", "adamw")
LR_SCHEDULES = ("log", "cosine", "constant")
#: The presets; ``model`` also takes thinner variants and mobilev2 layouts (``models.config``).
MODEL_NAMES = ("r50", "mobilev2", "alex")


@dataclass(frozen=True)
class DataSpec:
    """One training data path (see ``training/datasets.py`` for the kinds and file formats).

    ``frame_range``: max frame distance of a positive pair (default 100 for sequences and
    videos, 0 for stills). ``weight``: relative share of pairs drawn from this source.
    """

    path: str
    kind: str = "auto"
    boxes: Optional[str] = None
    annotations: Optional[str] = None
    frame_range: Optional[int] = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"data kind must be one of {', '.join(SOURCE_KINDS)}, got {self.kind!r}")
        if not self.weight > 0:
            raise ValueError(f"data weight must be > 0, got {self.weight}")
        if self.frame_range is not None and self.frame_range < 0:
            raise ValueError(f"frame_range must be >= 0, got {self.frame_range}")

    @classmethod
    def parse(cls, text: str) -> "DataSpec":
        """CLI form ``[KIND:]PATH[,key=value...]``, e.g. ``video:/d/walk.mp4,boxes=/d/walk.txt``."""
        head, *options = text.split(",")
        kind = "auto"
        if ":" in head:
            prefix, rest = head.split(":", 1)
            if prefix in SOURCE_KINDS:
                kind, head = prefix, rest
        values: dict[str, Any] = {"path": head, "kind": kind}
        for option in options:
            key, sep, value = option.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in ("boxes", "annotations", "frame_range", "weight"):
                raise ValueError(
                    f"bad data option {option!r} in {text!r} (use boxes=, annotations=, frame_range=, weight=)"
                )
            values[key] = int(value) if key == "frame_range" else float(value) if key == "weight" else value
        return cls(**values)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs. Units: sizes in pixels, learning rates per step.

    Model:
        model: a model name ('r50' | 'mobilev2' | 'alex', a thinner 'alex-w0.5', a layout
            'mobilev2-w1-l345-n128'); the checkpoint fits ``build_tracker(tracker_model_name)``
            (the name itself without ``width_mult``).
        width_mult: thinner alex/mobilev2, loaded for tracking as ``tracker_model_name``
            (e.g. ``alex-w0.5``).
        backbone_init: named pretrained backbone fetched and mapped before training
            (``'imagenet-mobilenetv2'``: ``material/imagenet_weights.py``, ``models/pretrained.py``;
            needs a width-1.0 mobilev2).
        pretrained: full pysot-layout checkpoint to start from (fine-tuning).
        backbone_weights: backbone-only weights whose names match the backbone to start from.
    Data:
        data: training sources; samples_per_epoch: pairs per epoch.
        exemplar_size / search_size: crop sides (127 / 255; ``search_size - exemplar_size``
            must be a multiple of the anchor stride 8).
        negative_prob, gray_prob: share of negative / gray pairs.
        template_augment, search_augment: ``search_augment.shift`` is the
            spatial-aware sampling range (0 = centred baseline, 64 = the paper).
        targets: anchor IoU thresholds and sampling counts.
    Optimisation:
        optimizer 'sgd' (momentum) | 'adamw'; lr: base learning rate; lr_schedule 'log'
        (geometric decay to final_lr) | 'cosine' | 'constant'; warmup_epochs of linear
        warm-up from warmup_start_lr (None: a quarter of the epochs, pysot's 5 of 20).
        freeze_backbone_epochs: epochs with the backbone frozen (None: half the epochs when
        the backbone starts pretrained, else 0);
        backbone_train_layers: stages unfrozen afterwards (None: pysot's choice, ['all']:
        everything); backbone_lr_mult: their lr factor (pysot 0.1) when pretrained.
        grad_clip: max gradient norm (0 disables). amp: float16 autocast on CUDA.
        channels_last: keep the network's weights and the batches in NHWC memory layout. On
        CPU the depth-wise (and dilated) convs of mobilev2 train about 1.5x faster that way
        (measured on 2 cores, batch 16); results change by float rounding only, and the
        checkpoints are written in the usual layout.
    Run:
        device 'auto' | 'cpu' | 'cuda[:N]'; workers: DataLoader processes (started with
        ``spawn``, so a script calling ``Trainer.fit`` needs an ``if __name__ == "__main__":``
        guard; 0 loads in the training process); threads: torch CPU
        threads (None: torch's default); out: run folder; save_every: checkpoint period in
        epochs; log_every: steps per CSV row; val_benchmark: OTB-format folder evaluated
        (OPE, AUC) after every ``val_every`` epochs, limited to val_max_sequences and
        val_max_frames.
    """

    data: tuple[DataSpec, ...] = ()
    model: str = "alex"
    width_mult: Optional[float] = None
    backbone_init: Optional[str] = None
    pretrained: Optional[str] = None
    backbone_weights: Optional[str] = None

    samples_per_epoch: int = 20000
    exemplar_size: int = 127
    search_size: int = 255
    context_amount: float = 0.5
    negative_prob: float = 0.2
    gray_prob: float = 0.0
    template_augment: AugmentConfig = TEMPLATE_AUGMENT
    search_augment: AugmentConfig = SEARCH_AUGMENT
    targets: AnchorTargetConfig = field(default_factory=AnchorTargetConfig)
    cls_weight: float = 1.0
    loc_weight: float = 1.2

    epochs: int = 20
    batch_size: int = 16
    optimizer: str = "sgd"
    lr: float = 0.005
    final_lr: float = 0.0005
    lr_schedule: str = "log"
    warmup_epochs: Optional[float] = None
    warmup_start_lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 1e-4
    freeze_backbone_epochs: Optional[int] = None
    backbone_train_layers: Optional[tuple[str, ...]] = None
    backbone_lr_mult: float = 0.1
    grad_clip: float = 10.0
    amp: bool = False
    channels_last: bool = False

    device: str = "auto"
    workers: int = 2
    threads: Optional[int] = None
    seed: int = 0
    out: str = "runs/train"
    save_every: int = 1
    log_every: int = 10
    progress: bool = True
    val_benchmark: Optional[str] = None
    val_every: int = 1
    val_max_sequences: Optional[int] = None
    val_max_frames: Optional[int] = None

    def __post_init__(self) -> None:
        data = tuple(d if isinstance(d, DataSpec) else _data_spec(d) for d in self.data)
        object.__setattr__(self, "data", data)
        for name in ("template_augment", "search_augment"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, _replace_checked(getattr(TrainConfig, name), value, name))
        if isinstance(self.targets, Mapping):
            object.__setattr__(self, "targets", _replace_checked(AnchorTargetConfig(), self.targets, "targets"))
        if self.backbone_train_layers is not None:
            layers = self.backbone_train_layers
            object.__setattr__(self, "backbone_train_layers", (layers,) if isinstance(layers, str) else tuple(layers))

        problems = []
        if not is_model_name(self.model):
            problems.append(f"model must be {THIN_NAME_HELP}; got {self.model!r}")
        if self.backbone_init is not None and self.backbone_init not in PRETRAINED_BACKBONES:
            problems.append(
                f"backbone_init must be one of {', '.join(PRETRAINED_BACKBONES)}, got {self.backbone_init!r}"
            )
        if self.width_mult is not None and not self.width_mult > 0:
            problems.append(f"width_mult must be > 0, got {self.width_mult}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        for name in ("samples_per_epoch", "epochs", "batch_size", "save_every", "log_every", "val_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.samples_per_epoch < self.batch_size:
            problems.append(f"samples_per_epoch ({self.samples_per_epoch}) must be >= batch_size ({self.batch_size})")
        for name in ("lr", "final_lr", "warmup_start_lr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                problems.append(f"{name} must be > 0, got {value}")
        if self.warmup_epochs is not None and not 0 <= self.warmup_epochs <= self.epochs:
            problems.append(f"warmup_epochs must be in [0, epochs], got {self.warmup_epochs}")
        if self.exemplar_size < 1 or self.search_size < self.exemplar_size:
            problems.append("need 1 <= exemplar_size <= search_size")
        elif (self.search_size - self.exemplar_size) % 8:
            problems.append(
                "search_size - exemplar_size must be a multiple of the anchor stride 8, "
                f"got {self.search_size - self.exemplar_size}"
            )
        for name in ("negative_prob", "gray_prob"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.workers < 0:
            problems.append(f"workers must be >= 0, got {self.workers}")
        if self.grad_clip < 0:
            problems.append(f"grad_clip must be >= 0, got {self.grad_clip}")
        if self.freeze_backbone_epochs is not None and self.freeze_backbone_epochs < 0:
            problems.append(f"freeze_backbone_epochs must be >= 0, got {self.freeze_backbone_epochs}")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

    # ---------------------------------------------------------------- derived
    @property
    def backbone_pretrained(self) -> bool:
        """Whether the backbone starts from trained weights (decides freezing and its lr)."""
        return bool(self.pretrained or self.backbone_weights or self.backbone_init)

    @property
    def tracker_model_name(self) -> str:
        """The model name that ``build_tracker`` (and the node's ``model`` parameter) needs for
        this run's checkpoints: the preset, or ``<preset>-w<width_mult>``.
        """
        return training_model_config(self.model, self.width_mult).name

    @property
    def warmup(self) -> float:
        """Warm-up length in epochs (resolves ``warmup_epochs=None`` to ``epochs / 4``)."""
        return self.epochs / 4 if self.warmup_epochs is None else float(self.warmup_epochs)

    @property
    def frozen_epochs(self) -> int:
        """Epochs with a frozen backbone (resolves ``freeze_backbone_epochs=None``)."""
        if self.freeze_backbone_epochs is not None:
            return min(self.freeze_backbone_epochs, self.epochs)
        return self.epochs // 2 if self.backbone_pretrained else 0

    def replace(self, **changes: Any) -> "TrainConfig":
        """A validated copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-friendly dict (round-trips through :func:`train_config_from_mapping`)."""
        result = dataclasses.asdict(self)
        result["data"] = [{k: v for k, v in dataclasses.asdict(d).items() if v is not None} for d in self.data]
        if self.backbone_train_layers is not None:
            result["backbone_train_layers"] = list(self.backbone_train_layers)
        return result


def _replace_checked(base: Any, values: Mapping[str, Any], what: str) -> Any:
    allowed = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"unknown {what} key(s) {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}")
    return dataclasses.replace(base, **dict(values))


def _data_spec(value: Any) -> DataSpec:
    if isinstance(value, DataSpec):
        return value
    if isinstance(value, str):
        return DataSpec.parse(value)
    if isinstance(value, Mapping):
        allowed = {f.name for f in dataclasses.fields(DataSpec)}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ValueError(f"unknown data key(s) {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}")
        return DataSpec(**dict(value))
    raise ValueError(f"a data entry must be a path or a mapping, got {value!r}")


def train_config_from_mapping(values: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """A config from a mapping (e.g. parsed YAML) applied over ``base`` (defaults); unknown keys fail."""
    base = base or TrainConfig()
    allowed = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"unknown training config key(s) {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}")
    changes = dict(values)
    for name in ("template_augment", "search_augment", "targets"):
        if isinstance(changes.get(name), Mapping):
            changes[name] = _replace_checked(getattr(base, name), changes[name], name)
    if "data" in changes:
        changes["data"] = tuple(_data_spec(d) for d in changes["data"] or ())
    return dataclasses.replace(base, **changes)


def load_train_config(path: str | os.PathLike[str], base: TrainConfig | None = None) -> TrainConfig:
    """Read a YAML training config (see the module docstring); relative data paths are
    resolved against the YAML file's folder.
    """
    import yaml

    file_path = Path(path)
    if not file_path.is_file():
        raise FileNotFoundError(f"training config not found: {file_path}")
    with file_path.open(encoding="utf-8") as handle:
        document = yaml.safe_load(handle) or {}
    if not isinstance(document, Mapping):
        raise ValueError(f"{file_path}: expected a mapping at the top level")
    document = dict(document)
    if "data" in document:
        resolved = []
        for entry in document["data"] or ():
            spec = _data_spec(entry)
            updates: dict[str, Any] = {}
            for key in ("path", "boxes", "annotations"):
                value = getattr(spec, key)
                if value and not os.path.isabs(os.path.expanduser(value)):
                    updates[key] = str(file_path.parent / value)
            resolved.append(dataclasses.replace(spec, **updates))
        document["data"] = resolved
    return train_config_from_mapping(document, base)


def save_train_config(config: TrainConfig, path: str | os.PathLike[str]) -> None:
    """Write ``config`` as YAML (readable back with :func:`load_train_config`)."""
    import yaml

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config.to_dict(), handle, sort_keys=False)
