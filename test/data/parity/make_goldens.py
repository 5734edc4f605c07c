#!/usr/bin/env python3
"""Regenerate expected/ with pysot itself: the per-frame results and the frame-1 dumps.

Run it where a pysot checkout can be imported (pysot is not installable on this project's
machines, so this script has not been run there; the files in expected/ were made by the
same steps). The steps, for one model:

1. ``python make_video.py --out video_s0 --frames 60 --seed 0``
2. ``python parity_weights.py --npz mobilev2_s1.npz --keys keys_mobilev2.txt --out mobilev2_s1.pth``
3. ``python make_goldens.py --pysot PYSOT_CHECKOUT --model mobilev2 --weights mobilev2_s1.pth
   --video video_s0 --out expected``

with STVIR/pysot at commit d04028f8e18c, torch 2.13.0+cpu, NumPy 2.4.6 and OpenCV 5.0.0 on
the CPU (the versions in the existing files' headers). Any CPU will do: the tests replay
pysot's states, so goldens need not be remade when the CPU changes (README.md).

Boxes are written with 17 significant digits, so a state read back from them is pysot's to
the last bit (the current files carry 6 decimals, which the tests also accept).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

# pysot's experiment folder for each model name used by the tests.
PYSOT_CONFIGS = {
    "r50": "siamrpn_r50_l234_dwxcorr",
    "mobilev2": "siamrpn_mobilev2_l234_dwxcorr",
    "alex": "siamrpn_alex_dwxcorr",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pysot", required=True, type=Path, help="a pysot checkout (the folder holding pysot/)")
    parser.add_argument("--model", required=True, choices=sorted(PYSOT_CONFIGS))
    parser.add_argument("--weights", required=True, type=Path, help="pysot {'state_dict': ...} file")
    parser.add_argument("--video", required=True, type=Path, help="make_video.py's output folder")
    parser.add_argument("--out", required=True, type=Path, help="where <weights>_<video>.txt and _dump/ go")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    sys.path.insert(0, str(args.pysot.resolve()))
    import cv2
    import numpy as np
    import torch
    from pysot.core.config import cfg
    from pysot.models.model_builder import ModelBuilder
    from pysot.tracker.tracker_builder import build_tracker

    torch.set_num_threads(args.threads)
    config_name = PYSOT_CONFIGS[args.model]
    cfg.merge_from_file(str(args.pysot / "experiments" / config_name / "config.yaml"))
    cfg.CUDA = False
    model = ModelBuilder()
    state = torch.load(args.weights, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict(state)
    model.eval()
    tracker = build_tracker(model)

    # Record the first track() call's network inputs and outputs for the dumps.
    calls: dict[str, np.ndarray] = {}
    template, track = model.template, model.track

    def recording_template(z):
        calls.setdefault("z_crop", z.detach().numpy().copy())
        return template(z)

    def recording_track(x):
        outputs = track(x)
        if "x_crop_f1" not in calls:
            calls["x_crop_f1"] = x.detach().numpy().copy()
            calls["cls_f1"] = outputs["cls"].detach().numpy().copy()
            calls["loc_f1"] = outputs["loc"].detach().numpy().copy()
        return outputs

    model.template, model.track = recording_template, recording_track

    frames = [cv2.imread(str(p)) for p in sorted((args.video / "img").glob("*.png"))]
    init_box = [float(v) for v in (args.video / "groundtruth.txt").read_text().splitlines()[0].split(",")]
    started = time.perf_counter()
    tracker.init(frames[0], init_box)
    init_ms = (time.perf_counter() - started) * 1e3
    rows, times = [[0, *init_box, 1.0]], []
    for index, frame in enumerate(frames[1:], start=1):
        started = time.perf_counter()
        outputs = tracker.track(frame)
        times.append((time.perf_counter() - started) * 1e3)
        rows.append([index, *outputs["bbox"], float(outputs["best_score"])])

    run = f"{args.weights.stem}_{args.video.name}"
    args.out.mkdir(parents=True, exist_ok=True)
    # SHA-256 over each key and its tensor's bytes, in order. The current files' digests were
    # made another way (not recorded), so they do not compare with this one.
    digest = hashlib.sha256()
    for key, tensor in state.items():
        digest.update(key.encode())
        digest.update(tensor.numpy().tobytes())
    header = [
        f"pysot reference run: config={args.model} ({config_name})",
        f"ckpt={args.weights.name} weights_digest={digest.hexdigest()}",
        f"video={args.video.name} frames={len(frames)}",
        f"torch={torch.__version__} numpy={np.__version__} cv2={cv2.__version__} threads={args.threads} "
        f"grad={torch.is_grad_enabled()}",
        f"track_ms_median={float(np.median(times)):.3f} init_ms={init_ms:.3f}",
    ]
    lines = [f"# {line}" for line in header]
    lines += [f"{int(r[0])}," + ",".join(f"{v:.17g}" for v in r[1:]) for r in rows]
    (args.out / f"{run}.txt").write_text("\n".join(lines) + "\n")
    dump = args.out / f"{run}_dump"
    dump.mkdir(exist_ok=True)
    for name, array in calls.items():
        np.save(dump / f"{name}.npy", array.astype(np.float32))
    print(f"wrote {args.out / f'{run}.txt'} and {dump}/")


if __name__ == "__main__":
    main()
