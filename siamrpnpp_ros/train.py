r"""``siamrpnpp-train``: train or fine-tune SiamRPN++ (ROS-free), pysot-compatible checkpoints out.

    siamrpnpp-train --data my_sequences/ --data video:walk.mp4,boxes=walk.txt \
        --data unlabeled:photos/ --model alex --epochs 20 --out runs/alex
    siamrpnpp-train --config train.yaml --resume runs/alex        # continue after the last saved epoch
    siamrpnpp-train --config train.yaml --shift 0 --out runs/centred   # the centred-sampling baseline

Data (repeat ``--data``): ``[KIND:]PATH[,boxes=F][,annotations=F][,frame_range=N][,weight=W]`` with
KIND ``sequences`` (OTB-style folders: images + groundtruth.txt), ``video`` (a video and a box
file, default ``<video>.txt``), ``images`` (stills + ``annotations.csv``/COCO JSON),
``unlabeled`` (stills without boxes, self-supervised); detected from the path when omitted.
Boxes are ``x,y,w,h`` top-left pixels.

``--config`` reads a YAML TrainConfig (see siamrpnpp_ros/training/config.py); flags given on the
command line override it. The run folder gets ``config.yaml``, ``train_log.csv``, ``epochs.csv``,
``loss.png``, ``checkpoints/epoch_NNNN.pth`` (+ ``.state.pth`` for resuming) and ``model.pth``,
which loads with ``siamrpnpp-track --model MODEL --weights model.pth`` and with pysot.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from typing import Any, Optional

from siamrpnpp_ros.requirements_check import require_supported_versions
from siamrpnpp_ros.training.config import TrainConfig, load_train_config
from siamrpnpp_ros.training.trainer import Trainer

PROGRAM = "siamrpnpp-train"


def build_parser() -> argparse.ArgumentParser:
    """The ``siamrpnpp-train`` argument parser (flags override ``--config``)."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Train or fine-tune a SiamRPN++ model on sequences, videos and still images.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example: siamrpnpp-train --data bench_train/ --model alex --epochs 20 --out runs/alex",
    )
    add = parser.add_argument
    add("--config", help="YAML training config; command-line flags override it")
    add("--data", action="append", default=None, metavar="SPEC", help="[KIND:]PATH[,key=value...] (repeatable)")
    add("--model", choices=("r50", "mobilev2", "alex"), default=None, help="network preset (default alex)")
    add(
        "--width-mult", type=float, default=None, help="thinner alex/mobilev2 (faster; tracks as model <model>-w<mult>)"
    )
    add("--pretrained", default=None, help="full pysot checkpoint to start from (fine-tuning)")
    add("--backbone-weights", default=None, help="backbone-only weights to start from (e.g. ImageNet)")
    add("--out", default=None, help="run folder (default runs/train)")
    add("--epochs", type=int, default=None)
    add("--samples-per-epoch", type=int, default=None, help="training pairs per epoch")
    add("--batch-size", type=int, default=None)
    add("--optimizer", choices=("sgd", "adamw"), default=None)
    add("--lr", type=float, default=None, help="base learning rate (after warm-up)")
    add("--final-lr", type=float, default=None, help="learning rate at the end of the schedule")
    add("--lr-schedule", choices=("log", "cosine", "constant"), default=None)
    add("--warmup-epochs", type=float, default=None)
    add(
        "--shift",
        type=float,
        default=None,
        help="max target shift in the search crop, pixels (spatial-aware sampling; 0 = centred baseline, default 64)",
    )
    add("--template-shift", type=float, default=None, help="max target shift in the template crop (default 4)")
    add("--negative-prob", type=float, default=None, help="share of negative pairs (default 0.2)")
    add(
        "--freeze-backbone-epochs",
        type=int,
        default=None,
        help="epochs with a frozen backbone (default: half the epochs when starting from pretrained weights, else 0)",
    )
    add("--backbone-train-layers", nargs="+", default=None, help="backbone stages unfrozen afterwards, or 'all'")
    add("--backbone-lr-mult", type=float, default=None, help="lr factor of the unfrozen backbone (default 0.1)")
    add("--grad-clip", type=float, default=None, help="max gradient norm, 0 = off (default 10)")
    add("--device", default=None, help="auto | cpu | cuda | cuda:N (default auto)")
    add("--amp", action="store_true", default=None, help="mixed precision (CUDA only)")
    add("--workers", type=int, default=None, help="data-loading processes (default 2)")
    add("--threads", type=int, default=None, help="torch CPU threads")
    add("--seed", type=int, default=None)
    add("--save-every", type=int, default=None, help="checkpoint every N epochs (default 1)")
    add("--log-every", type=int, default=None, help="steps per CSV log row (default 10)")
    add("--val-benchmark", default=None, help="OTB-format folder evaluated (OPE AUC) after each epoch")
    add("--val-max-frames", type=int, default=None, help="frames per validation sequence")
    add(
        "--resume",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="continue from a checkpoint file or run folder (no PATH: the --out folder)",
    )
    add("--no-progress", action="store_true", help="no progress bar")
    add("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    return parser


def config_from_args(args: argparse.Namespace) -> Any:
    """The TrainConfig: YAML (if any), then every flag given on the command line."""
    config = load_train_config(args.config) if args.config else TrainConfig()
    changes: dict[str, Any] = {}
    direct = (
        "model",
        "width_mult",
        "pretrained",
        "backbone_weights",
        "out",
        "epochs",
        "samples_per_epoch",
        "batch_size",
        "optimizer",
        "lr",
        "final_lr",
        "lr_schedule",
        "warmup_epochs",
        "negative_prob",
        "freeze_backbone_epochs",
        "backbone_lr_mult",
        "grad_clip",
        "device",
        "amp",
        "workers",
        "threads",
        "seed",
        "save_every",
        "log_every",
        "val_benchmark",
        "val_max_frames",
    )
    for name in direct:
        value = getattr(args, name)
        if value is not None:
            changes[name] = value
    if args.backbone_train_layers is not None:
        changes["backbone_train_layers"] = tuple(args.backbone_train_layers)
    if args.data:
        changes["data"] = tuple(args.data)
    if args.shift is not None:
        changes["search_augment"] = dataclasses.replace(config.search_augment, shift=args.shift)
    if args.template_shift is not None:
        changes["template_augment"] = dataclasses.replace(config.template_augment, shift=args.template_shift)
    if args.no_progress:
        changes["progress"] = False
    return config.replace(**changes) if changes else config


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``siamrpnpp-train`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    require_supported_versions()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config = config_from_args(args)
        if args.print_config:
            import yaml

            print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
            return 0
        if not config.data:
            raise ValueError("no training data: pass --data PATH (or data: in --config)")

        trainer = Trainer(config)
        print(
            f"{PROGRAM}: {trainer.model.config.name} on {trainer.device}, {len(trainer.sources)} source(s), "
            f"{trainer.steps_per_epoch} steps/epoch x {config.epochs} epochs, "
            f"score map {trainer.score_size}x{trainer.score_size}, "
            f"search shift {config.search_augment.shift:g} px -> {config.out}",
            file=sys.stderr,
        )
        resume = None if args.resume is None else (args.resume or config.out)
        result = trainer.fit(resume=resume)
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"{PROGRAM}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROGRAM}: interrupted; resume with --resume {args.out or 'RUN_FOLDER'}", file=sys.stderr)
        return 130
    last = result.epoch_rows[-1] if result.epoch_rows else {}
    print(
        f"weights={result.final_weights} model={config.tracker_model_name} epochs={result.epochs_completed} "
        f"loss={last.get('loss', 'n/a')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
