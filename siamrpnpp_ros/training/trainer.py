"""The training loop: SiamRPN++ on template/search pairs, checkpoints pysot can load.

Run folder layout (``config.out``)::

    config.yaml                      the resolved TrainConfig
    train_log.csv                    one row per ``log_every`` steps (losses, lr, grad norm, speed)
    epochs.csv                       one row per epoch (mean losses, time, validation AUC)
    loss.png                         loss curves (and validation AUC) so far
    checkpoints/epoch_0003.pth       weights only: pysot's {'state_dict': ...}, weights_only-safe
    checkpoints/epoch_0003.state.pth optimizer/scaler/epoch/step for --resume (also weights_only-safe)
    model.pth                        the final weights (same format)

The weight files load with ``siamrpnpp_ros.models.load_checkpoint`` and, for a
preset model, with ``build_tracker(model, path)`` or pysot's own loader.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from siamrpnpp_ros.eval.ope import evaluate_model
from siamrpnpp_ros.models import SiamRPN, load_checkpoint, save_checkpoint
from siamrpnpp_ros.models.compat import load_weights_only
from siamrpnpp_ros.tracking.config import preset_for
from siamrpnpp_ros.tracking.factory import select_device

from .composite import CompositeSource
from .config import DataSpec, TrainConfig, save_train_config
from .datasets import TrainingSource, load_source
from .losses import siamrpn_loss
from .model import (
    build_training_model,
    default_train_layers,
    init_pretrained_backbone,
    load_backbone_weights,
    output_score_size,
    parameter_groups,
    set_backbone_trainable,
    set_train_mode,
)
from .pairs import EpochSampler, PairDataset, PairGenerator
from .schedule import LRSchedule
from .sources import TrainingMaterial
from .targets import AnchorTargetAssigner

LOGGER = logging.getLogger(__name__)

STATE_FORMAT = "siamrpnpp_ros.train_state/1"
STEP_LOG_FIELDS = ("epoch", "step", "lr", "loss", "cls_loss", "loc_loss", "grad_norm", "pairs_per_s")
EPOCH_LOG_FIELDS = (
    "epoch",
    "steps",
    "lr",
    "loss",
    "cls_loss",
    "loc_loss",
    "seconds",
    "backbone",
    "val_auc",
    "val_precision",
)
_BATCH_KEYS = ("template", "search", "label_cls", "label_loc", "label_loc_weight")


def checkpoint_path(out_dir: str | os.PathLike[str], epoch: int) -> Path:
    """Weights file of ``epoch`` (1-based, completed epochs) in a run folder."""
    return Path(out_dir) / "checkpoints" / f"epoch_{epoch:04d}.pth"


def state_path_for(weights: str | os.PathLike[str]) -> Path:
    """The resume-state file beside a weights file (``epoch_0003.pth`` -> ``epoch_0003.state.pth``)."""
    weights = Path(weights)
    return weights.with_name(weights.stem + ".state.pth")


def find_resume_point(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(weights, state)`` to resume from: a weights file, or the latest complete epoch of a run
    folder (or of its ``checkpoints/``). FileNotFoundError when there is none.
    """
    target = Path(path)
    if target.is_file():
        state = state_path_for(target)
        if not state.is_file():
            raise FileNotFoundError(f"no resume state {state} beside {target} (it is needed to resume)")
        return target, state
    folder = target / "checkpoints" if (target / "checkpoints").is_dir() else target
    candidates = sorted(p for p in folder.glob("epoch_*.pth") if not p.name.endswith(".state.pth"))
    for weights in reversed(candidates):
        if state_path_for(weights).is_file():
            return weights, state_path_for(weights)
    raise FileNotFoundError(f"no checkpoint with resume state under {target}")


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` produced."""

    out_dir: Path
    final_weights: Path
    epochs_completed: int
    epoch_rows: list[dict[str, Any]] = field(default_factory=list)


def open_source(spec: DataSpec) -> TrainingSource | PairGenerator:
    """Open one configured data path: a track source, or composited pairs from a material manifest."""
    if spec.kind == "composite":
        material = TrainingMaterial.load(Path(spec.path)).select("train")
        return CompositeSource(material, weight=spec.weight, name=f"composite:{spec.path}")
    return load_source(spec.path, spec.kind, spec.boxes, spec.annotations, spec.frame_range, spec.weight)


class Trainer:
    """Trains one SiamRPN++ model from a :class:`TrainConfig`.

    ``sources`` replaces ``config.data`` (already opened sources, e.g. in tests).
    The device is resolved once here (``config.device``); AMP needs CUDA.
    """

    def __init__(self, config: TrainConfig, sources: Optional[list[TrainingSource | PairGenerator]] = None) -> None:
        self.config = config
        self.device = select_device(config.device)
        if config.amp and self.device.type != "cuda":
            raise ValueError(f"amp (mixed precision) needs a CUDA device, but the device is {self.device}")
        if config.threads:
            torch.set_num_threads(int(config.threads))
        torch.manual_seed(config.seed)  # reproducible initial weights

        self.model: SiamRPN = build_training_model(config.model, config.width_mult)
        #: The data-manifest entry of the pretrained backbone (None without ``backbone_init``).
        self.backbone_init_entry: Optional[dict[str, Any]] = None
        if config.backbone_init:
            # Before the checkpoints below, so that a full checkpoint or a resume overrides it.
            self.backbone_init_entry = init_pretrained_backbone(self.model, config.backbone_init)
        if config.pretrained:
            load_checkpoint(self.model, config.pretrained)
            LOGGER.info("starting from %s", config.pretrained)
        if config.backbone_weights:
            loaded, skipped = load_backbone_weights(self.model, config.backbone_weights)
            LOGGER.info(
                "backbone weights %s: %d tensors loaded, %d left at init", config.backbone_weights, loaded, skipped
            )
        self.model.to(self.device)
        if config.channels_last:
            # nn.Module.to takes memory_format, but torch's type stubs do not list it.
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

        tracker_preset = preset_for(config.model)
        self.score_size = output_score_size(self.model, config.exemplar_size, config.search_size)
        self.assigner = AnchorTargetAssigner(
            self.score_size,
            tracker_preset.anchor_stride,
            tracker_preset.anchor_ratios,
            tracker_preset.anchor_scales,
            config.targets,
        )
        if sources is None:
            if not config.data:
                raise ValueError("no training data: give at least one data path")
            sources = [open_source(d) for d in config.data]
        self.sources = sources
        self.dataset = PairDataset(
            sources,
            config.samples_per_epoch,
            self.assigner,
            config.template_augment,
            config.search_augment,
            config.exemplar_size,
            config.search_size,
            config.context_amount,
            config.negative_prob,
            config.gray_prob,
            config.seed,
        )

        pretrained = config.backbone_pretrained
        self.train_layers: tuple[str, ...] | str
        if config.backbone_train_layers is None:
            self.train_layers = default_train_layers(self.model) if pretrained else "all"
        elif tuple(config.backbone_train_layers) == ("all",):
            self.train_layers = "all"
        else:
            self.train_layers = tuple(config.backbone_train_layers)
            set_backbone_trainable(self.model, self.train_layers)  # validates the names early
        groups = parameter_groups(self.model, config.backbone_lr_mult if pretrained else 1.0)
        if config.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
            )
        else:
            self.optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
        self.schedule = LRSchedule(
            config.lr, config.final_lr, config.epochs, config.lr_schedule, config.warmup, config.warmup_start_lr
        )
        self.scaler = _make_grad_scaler() if config.amp else None
        self.steps_per_epoch = config.samples_per_epoch // config.batch_size
        self.sampler = EpochSampler(config.samples_per_epoch)
        self._loader: Optional[DataLoader] = None
        self.start_epoch = 0
        self.global_step = 0
        self.out_dir = Path(config.out)

    # ---------------------------------------------------------------- pieces
    def backbone_state(self, epoch: int) -> str:
        """``'frozen'``, ``'all'`` or the comma-joined unfrozen stages during ``epoch`` (0-based)."""
        if epoch < self.config.frozen_epochs:
            return "frozen"
        return "all" if self.train_layers == "all" else ",".join(self.train_layers)

    def prepare_epoch(self, epoch: int) -> None:
        """Apply the freeze plan and train/eval modes for ``epoch`` (0-based)."""
        if epoch < self.config.frozen_epochs:
            set_backbone_trainable(self.model, ())
        else:
            set_backbone_trainable(self.model, self.train_layers)
        set_train_mode(self.model)
        self.sampler.set_epoch(epoch)

    def set_learning_rate(self, progress: float) -> float:
        """Set every group's lr for ``progress`` (fractional epochs); returns the base lr."""
        lr = self.schedule(progress)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)
        return lr

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """One optimisation step on a collated batch; returns its losses and gradient norm."""
        cfg = self.config
        non_blocking = self.device.type == "cuda"
        tensors = {k: torch.as_tensor(batch[k]).to(self.device, non_blocking=non_blocking) for k in _BATCH_KEYS}
        if cfg.channels_last:
            for key in ("template", "search"):
                tensors[key] = tensors[key].contiguous(memory_format=torch.channels_last)
        self.optimizer.zero_grad(set_to_none=True)
        autocast = (
            torch.autocast(device_type="cuda", dtype=torch.float16)
            if self.scaler is not None
            else contextlib.nullcontext()
        )
        with autocast:
            kernels = self.model.template(tensors["template"])
            cls, loc = self.model(tensors["search"], kernels)
        losses = siamrpn_loss(
            cls,
            loc,
            tensors["label_cls"],
            tensors["label_loc"],
            tensors["label_loc_weight"],
            cfg.cls_weight,
            cfg.loc_weight,
        )
        if not torch.isfinite(losses.total):
            raise FloatingPointError(
                f"loss is {losses.total.item()} at step {self.global_step + 1}; lower the learning rate"
            )
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.scaler is not None:
            self.scaler.scale(losses.total).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            losses.total.backward()
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return {
            "loss": float(losses.total.detach()),
            "cls_loss": float(losses.cls.detach()),
            "loc_loss": float(losses.loc.detach()),
            "grad_norm": float(grad_norm),
        }

    @property
    def loader(self) -> DataLoader:
        """The DataLoader, made once: its workers persist across epochs, :attr:`sampler` picks the epoch."""
        if self._loader is None:
            workers = self.config.workers
            self._loader = DataLoader(
                self.dataset,
                batch_size=self.config.batch_size,
                sampler=self.sampler,
                drop_last=True,
                num_workers=workers,
                pin_memory=self.device.type == "cuda",
                persistent_workers=workers > 0,
                # Each worker decodes with OpenCV; its own threads would fight the trainer's.
                worker_init_fn=_quiet_worker if workers else None,
                # Fresh interpreters: a forked child of a process whose OpenCV or OpenMP thread
                # pools already ran (building data, validation) can deadlock on its first call.
                multiprocessing_context="spawn" if workers else None,
            )
        return self._loader

    # ---------------------------------------------------------------- checkpoints
    def save(self, epoch: int) -> Path:
        """Write weights + resume state after ``epoch`` completed epochs; returns the weights path."""
        weights = checkpoint_path(self.out_dir, epoch)
        save_checkpoint(self.model, weights)
        state = {
            "format": STATE_FORMAT,
            "epoch": int(epoch),
            "global_step": int(self.global_step),
            "model": self.config.model,
            "model_config": self.model.config.name,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "config": self.config.to_dict(),
        }
        state_file = state_path_for(weights)
        tmp = state_file.with_name(state_file.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, state_file)
        return weights

    def resume(self, path: str | os.PathLike[str]) -> int:
        """Load weights and optimizer state; training continues after the saved epoch (returned)."""
        weights, state_file = find_resume_point(path)
        state = load_weights_only(state_file, map_location="cpu")
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"{state_file} is not a training state file ({STATE_FORMAT})")
        if state.get("model_config") != self.model.config.name:
            raise ValueError(
                f"{state_file} is for model {state.get('model_config')!r}, this run trains {self.model.config.name!r}"
            )
        load_checkpoint(self.model, weights)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.start_epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        LOGGER.info("resumed from %s (epoch %d, step %d)", weights, self.start_epoch, self.global_step)
        return self.start_epoch

    def resume_weights_only(self, weights: str | os.PathLike[str], epoch: int) -> int:
        """Continue after ``epoch`` completed epochs from a weights-only checkpoint (the run's
        folder was lost): the learning-rate schedule picks up at ``epoch``, the optimizer's
        moments start afresh.
        """
        if not 0 <= epoch <= self.config.epochs:
            raise ValueError(f"resume epoch must be in [0, {self.config.epochs}], got {epoch}")
        load_checkpoint(self.model, weights)
        self.start_epoch = int(epoch)
        self.global_step = int(epoch) * self.steps_per_epoch
        LOGGER.info("resumed weights only from %s (epoch %d, fresh optimizer state)", weights, epoch)
        return self.start_epoch

    # ---------------------------------------------------------------- loop
    def fit(
        self,
        resume: Optional[str | os.PathLike[str]] = None,
        resume_weights: Optional[tuple[str | os.PathLike[str], int]] = None,
    ) -> TrainResult:
        """Train until ``config.epochs``; ``resume``: weights file or run folder to continue from;
        ``resume_weights``: ``(weights file, completed epochs)`` when only the weights survived.
        """
        cfg = self.config
        if resume is not None:
            self.resume(resume)
        elif resume_weights is not None:
            self.resume_weights_only(*resume_weights)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_train_config(cfg, self.out_dir / "config.yaml")
        step_log = CsvLog(self.out_dir / "train_log.csv", STEP_LOG_FIELDS)
        epoch_log = CsvLog(self.out_dir / "epochs.csv", EPOCH_LOG_FIELDS)
        # Rows written after the resume point (a run that died mid-epoch) would be duplicated.
        step_log.truncate(lambda row: int(row["step"]) <= self.global_step)
        epoch_log.truncate(lambda row: int(row["epoch"]) <= self.start_epoch)

        last_weights: Optional[Path] = None
        try:
            for epoch in range(self.start_epoch, cfg.epochs):
                self.prepare_epoch(epoch)
                row = self._run_epoch(epoch, step_log)
                if (epoch + 1) % cfg.save_every == 0 or epoch + 1 == cfg.epochs:
                    last_weights = self.save(epoch + 1)
                if cfg.val_benchmark and ((epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs):
                    row.update(self.validate())
                epoch_log.append(row)
                plot_training_curves(
                    self.out_dir / "train_log.csv",
                    self.out_dir / "epochs.csv",
                    self.out_dir / "loss.png",
                    samples_per_epoch=cfg.samples_per_epoch,
                )
        finally:
            self._loader = None  # stops the persistent data workers

        final = self.out_dir / "model.pth"
        if last_weights is None:  # nothing left to train (resumed at the end): keep the loaded weights
            save_checkpoint(self.model, final)
        else:
            shutil.copyfile(last_weights, final)
        return TrainResult(self.out_dir, final, max(self.start_epoch, cfg.epochs), epoch_log.rows())

    def _run_epoch(self, epoch: int, step_log: "CsvLog") -> dict[str, Any]:
        cfg = self.config
        from tqdm import tqdm

        window: list[dict[str, float]] = []
        totals = {"loss": 0.0, "cls_loss": 0.0, "loc_loss": 0.0}
        steps = 0
        started = window_start = time.perf_counter()
        lr = self.schedule(epoch)
        bar = tqdm(
            total=self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not cfg.progress,
            dynamic_ncols=True,
            leave=False,
        )
        try:
            for batch in self.loader:
                lr = self.set_learning_rate(epoch + steps / self.steps_per_epoch)
                values = self.train_step(batch)
                steps += 1
                self.global_step += 1
                window.append(values)
                for key in totals:
                    totals[key] += values[key]
                bar.update(1)
                bar.set_postfix(loss=f"{values['loss']:.3f}", lr=f"{lr:.2e}")
                if len(window) >= cfg.log_every or steps == self.steps_per_epoch:
                    elapsed = time.perf_counter() - window_start
                    step_log.append(
                        {
                            "epoch": epoch + 1,
                            "step": self.global_step,
                            "lr": f"{lr:.6g}",
                            **{
                                k: f"{np.mean([w[k] for w in window]):.6f}"
                                for k in ("loss", "cls_loss", "loc_loss", "grad_norm")
                            },
                            "pairs_per_s": f"{len(window) * cfg.batch_size / max(elapsed, 1e-9):.2f}",
                        }
                    )
                    window = []
                    window_start = time.perf_counter()
        finally:
            bar.close()
        seconds = time.perf_counter() - started
        means = {k: v / max(steps, 1) for k, v in totals.items()}
        LOGGER.info(
            "epoch %d/%d: loss %.4f (cls %.4f, loc %.4f), %.0f s",
            epoch + 1,
            cfg.epochs,
            means["loss"],
            means["cls_loss"],
            means["loc_loss"],
            seconds,
        )
        return {
            "epoch": epoch + 1,
            "steps": steps,
            "lr": f"{lr:.6g}",
            **{k: f"{v:.6f}" for k, v in means.items()},
            "seconds": f"{seconds:.1f}",
            "backbone": self.backbone_state(epoch),
            "val_auc": "",
            "val_precision": "",
        }

    def validate(self) -> dict[str, str]:
        """OPE on ``config.val_benchmark`` with the current weights: success AUC and precision@20."""
        cfg = self.config
        assert cfg.val_benchmark is not None
        summary = evaluate_model(
            self.model,
            preset_for(cfg.model),
            cfg.val_benchmark,
            device=self.device,
            max_sequences=cfg.val_max_sequences,
            max_frames=cfg.val_max_frames,
        )
        set_train_mode(self.model)
        LOGGER.info("validation: AUC %.3f, precision@20 %.3f", summary.auc, summary.precision_20)
        return {"val_auc": f"{summary.auc:.4f}", "val_precision": f"{summary.precision_20:.4f}"}


def _make_grad_scaler() -> Any:
    amp = getattr(torch, "amp", None)
    if amp is not None and hasattr(amp, "GradScaler"):
        return amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()  # torch < 2.3


def _quiet_worker(_: int) -> None:
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


class CsvLog:
    """Append-only CSV with a fixed header (created on first use)."""

    def __init__(self, path: Path, fields: Iterable[str]) -> None:
        self.path = Path(path)
        self.fields = tuple(fields)

    def rows(self) -> list[dict[str, Any]]:
        """The rows written so far, as dicts of strings (none before the file exists)."""
        if not self.path.is_file():
            return []
        with self.path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    def truncate(self, keep: Callable[[dict[str, Any]], bool]) -> None:
        """Rewrite the file with only the rows ``keep`` accepts (or drop it if it has none)."""
        rows = [r for r in self.rows() if keep(r)]
        if not self.path.is_file():
            return
        with self.path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields)
            writer.writeheader()
            writer.writerows({k: r.get(k, "") for k in self.fields} for r in rows)

    def append(self, row: dict[str, Any]) -> None:
        """Append ``row`` (fields not in the header are dropped, missing ones left empty), writing the header first."""
        new = not self.path.is_file()
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields)
            if new:
                writer.writeheader()
            writer.writerow({k: row.get(k, "") for k in self.fields})


def plot_training_curves(
    step_csv: Path, epoch_csv: Path, out_png: Path, samples_per_epoch: Optional[int] = None
) -> Optional[Path]:
    """Loss curves (per logged step, x in epochs) and validation AUC, as a PNG; None without matplotlib.

    With ``samples_per_epoch`` the validation panel is the learning curve: AUC against the
    training pairs seen, which shows whether more training would pay.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is in the venv; keep training without it
        LOGGER.warning("matplotlib is not installed: no loss plot")
        return None
    steps = CsvLog(step_csv, STEP_LOG_FIELDS).rows()
    epochs = CsvLog(epoch_csv, EPOCH_LOG_FIELDS).rows()
    if not steps:
        return None
    # x position of a logged row: its epoch index plus the share of that epoch's steps done.
    last_step_of_epoch: dict[int, int] = {}
    for row in steps:
        last_step_of_epoch[int(row["epoch"])] = int(row["step"])
    x_values = []
    for row in steps:
        epoch = int(row["epoch"])
        end = last_step_of_epoch[epoch]
        start = last_step_of_epoch.get(epoch - 1, 0)
        x_values.append(epoch - 1 + (int(row["step"]) - start) / max(end - start, 1))
    has_val = any(r.get("val_auc") for r in epochs)
    figure, axes = plt.subplots(1, 2 if has_val else 1, figsize=(11 if has_val else 7, 4), squeeze=False)
    ax = axes[0][0]
    for key, label in (("loss", "total"), ("cls_loss", "classification"), ("loc_loss", "localisation")):
        ax.plot(x_values, [float(r[key]) for r in steps], label=label, linewidth=1)
    if epochs:
        ax.plot(
            [int(r["epoch"]) for r in epochs],
            [float(r["loss"]) for r in epochs],
            "ko",
            markersize=4,
            label="epoch mean",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("SiamRPN++ training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    if has_val:
        val = [(int(r["epoch"]), float(r["val_auc"])) for r in epochs if r.get("val_auc")]
        ax2 = axes[0][1]
        if samples_per_epoch:  # the learning curve: validation AUC against training pairs seen
            ax2.plot([v[0] * samples_per_epoch / 1000 for v in val], [v[1] for v in val], "o-")
            ax2.set_xlabel("training pairs seen (thousands)")
        else:
            ax2.plot([v[0] for v in val], [v[1] for v in val], "o-")
            ax2.set_xlabel("epoch")
        ax2.set_ylabel("success AUC")
        ax2.set_title("validation (OPE)")
        ax2.grid(alpha=0.3)
    figure.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png, dpi=100)
    plt.close(figure)
    return out_png
