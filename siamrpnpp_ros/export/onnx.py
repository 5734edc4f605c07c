"""``siamrpnpp-export``: write the ONNX graphs of a SiamRPN++ checkpoint (see
:mod:`siamrpnpp_ros.models.onnx_graphs` for what the graphs hold).

    siamrpnpp-export --model mobilev2 --weights model.pth --out export/ [--instance-size 255]
    python -m siamrpnpp_ros.export ...   # the same

writes ``export/mobilev2_search_255.onnx`` and ``export/mobilev2_template_127.onnx``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from siamrpnpp_ros.models import build_model, load_checkpoint
from siamrpnpp_ros.models.config import THIN_NAME_HELP, model_name_argument
from siamrpnpp_ros.models.fusion import fuse_for_inference
from siamrpnpp_ros.models.onnx_graphs import (
    DEFAULT_OPSET,
    export_search_onnx,
    export_template_onnx,
    verify_search_onnx,
)
from siamrpnpp_ros.requirements_check import require_supported_versions
from siamrpnpp_ros.tracking.config import preset_for

PROGRAM = "siamrpnpp-export"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``siamrpnpp-export``."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Export SiamRPN++ to ONNX: a per-frame search graph (template kernels as inputs) "
        "and a once-per-target template graph, fixed shapes, for ONNX Runtime or TensorRT.",
    )
    parser.add_argument("--model", required=True, type=model_name_argument, help=THIN_NAME_HELP)
    parser.add_argument("--weights", help="pysot checkpoint (.pth); omitted: seeded random weights (testing only)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--instance-size", type=int, help="search crop side in pixels (default: the preset, 255/287)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (>= 17, default {DEFAULT_OPSET})")
    parser.add_argument(
        "--no-fuse",
        action="store_true",
        help="export the model as trained (BatchNorm layers kept) instead of the folded copy",
    )
    parser.add_argument("--no-template", action="store_true", help="skip the template graph")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="run the search graph in ONNX Runtime and print its max difference to PyTorch",
    )
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of ``siamrpnpp-export``; returns the exit code."""
    require_supported_versions()
    args = build_parser().parse_args(argv)
    try:
        trained = build_model(args.model)
        if args.weights:
            load_checkpoint(trained, args.weights)
        else:
            torch.manual_seed(0)
            print(f"{PROGRAM}: warning: no --weights, exporting random weights", file=sys.stderr)
        model: nn.Module = trained if args.no_fuse else fuse_for_inference(trained)
        size = args.instance_size or preset_for(args.model).instance_size
        out = Path(args.out)
        search_path = export_search_onnx(model, out / f"{args.model}_search_{size}.onnx", size, args.opset)
        print(search_path)
        if not args.no_template:
            print(export_template_onnx(model, out / f"{args.model}_template_127.onnx", 127, args.opset))
        if args.verify:
            print(f"max |onnxruntime - torch|: {verify_search_onnx(model, search_path, size):.3g}")
    except (ValueError, OSError, RuntimeError, ImportError) as exc:
        print(f"{PROGRAM}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return 0
