"""Evaluation toolkit: OPE metrics, the benchmark builder, OPE runs, reports, baselines, CLI, ablation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from siamrpnpp_ros import evaluate
from siamrpnpp_ros.eval import (
    RunResult,
    TrackerSummary,
    load_benchmark,
    normalized_precision_curve,
    opencv_availability,
    opencv_runner,
    precision_curve,
    run_ope,
    score_sequence,
    success_curve,
    write_report,
)
from siamrpnpp_ros.eval import trackers as trackers_module
from siamrpnpp_ros.eval.builder import BuilderConfig, build_benchmark, render_sequence
from siamrpnpp_ros.eval.metrics import NORM_PRECISION_THRESHOLDS, PRECISION_THRESHOLDS
from siamrpnpp_ros.material.photos import OPENCV_DOC_DATA, find_photos, generated_textures, pool_from_images
from siamrpnpp_ros.models import build_model, save_checkpoint

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True, scope="module")
def _restore_torch_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory) -> Path:
    """Two short generated sequences (real photos when available, else textures)."""
    out = tmp_path_factory.mktemp("bench")
    config = BuilderConfig(sequences=2, frames=8, width=160, height=120, seed=11, image_format="png")
    build_benchmark(out, config, find_photos())
    return out


# ------------------------------------------------------------------ metrics
GT = np.array([[0, 0, 10, 10]] * 4, dtype=float)
PRED = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [0, 0, 16, 10], [100, 100, 10, 10]], dtype=float)
# IoU: 1, 50/150 = 1/3, 100/160 = 0.625, 0.  Centre errors (centre x + (w-1)/2): 0, 5, 3, 141.4 px.


def test_success_curve_and_auc_hand_computed():
    curve = success_curve(GT, PRED)
    # thresholds 0..0.30 (7 values): 3 of 4 frames; 0.35..0.60 (6): 2; 0.65..0.95 (7): 1; 1.0: none.
    expected = np.array([0.75] * 7 + [0.5] * 6 + [0.25] * 7 + [0.0])
    assert np.allclose(curve, expected)
    score = score_sequence("s", GT, PRED)
    assert math.isclose(score.auc, (7 * 0.75 + 6 * 0.5 + 7 * 0.25) / 21)


def test_precision_and_normalized_precision_hand_computed():
    precision = precision_curve(GT, PRED)
    assert precision[list(PRECISION_THRESHOLDS).index(20)] == 0.75
    assert precision[list(PRECISION_THRESHOLDS).index(4)] == 0.5  # errors 0 and 3
    assert precision[0] == 0.25
    normalized = normalized_precision_curve(GT, PRED)  # errors 0, 0.5, 0.3, 14.1 ground-truth sizes
    assert normalized[20] == 0.25 and np.isclose(NORM_PRECISION_THRESHOLDS[20], 0.2)
    assert normalized[50] == 0.75
    score = score_sequence("s", GT, PRED)
    assert score.precision_20 == 0.75 and score.norm_precision_02 == 0.25


def test_missing_groundtruth_is_skipped_and_lost_predictions_fail():
    gt = np.vstack([GT, [[np.nan] * 4], [[3, 3, 0, 5]]])
    pred = np.vstack([PRED, [[0, 0, 10, 10]], [[3, 3, 4, 5]]])
    assert np.allclose(success_curve(gt, pred), success_curve(GT, PRED))
    lost = PRED.copy()
    lost[0] = np.nan
    assert success_curve(GT, lost)[0] == 0.5 and precision_curve(GT, lost)[-1] == 0.5
    with pytest.raises(ValueError, match="3 predicted boxes"):
        success_curve(GT, PRED[:3])


def test_dataset_summary_averages_sequences():
    long_perfect = score_sequence("a", np.tile(GT[:1], (10, 1)), np.tile(GT[:1], (10, 1)), seconds=0.5)
    short = score_sequence("b", GT, PRED, seconds=0.5)
    summary = TrackerSummary("t", (long_perfect, short))
    assert math.isclose(summary.auc, (long_perfect.auc + short.auc) / 2)  # each sequence weighs the same
    assert math.isclose(summary.fps, 14 / 1.0)
    assert summary.frames == 14


# ------------------------------------------------------------------ builder
def test_builder_is_deterministic(tmp_path):
    config = BuilderConfig(sequences=2, frames=5, width=128, height=96, seed=5, attribute_prob=1.0)
    pool = find_photos()
    first = build_benchmark(tmp_path / "a", config, pool)
    build_benchmark(tmp_path / "b", config, pool)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 2 * (5 + 1) + 1
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    other = build_benchmark(tmp_path / "c", BuilderConfig(**{**config.__dict__, "seed": 6}), pool)
    assert first["sequences"] != other["sequences"] or not np.array_equal(
        np.loadtxt(tmp_path / "a" / "seq000" / "groundtruth.txt", delimiter=","),
        np.loadtxt(tmp_path / "c" / "seq000" / "groundtruth.txt", delimiter=","),
    )
    assert set(first["sequences"][0]["attributes"]) <= set(config.attributes)


def exact_pixels_config(**fields: Any) -> BuilderConfig:
    """A small BuilderConfig (192x144) whose frames are exact: lossless and noise-free; every
    attribute in ``fields["attributes"]`` is on."""
    return BuilderConfig(width=192, height=144, attribute_prob=1.0, noise_sigma=0.0, image_format="png", **fields)


def _nearer(image: np.ndarray, colour, other) -> np.ndarray:
    a = np.linalg.norm(image.astype(float) - np.asarray(colour, float), axis=2)
    b = np.linalg.norm(image.astype(float) - np.asarray(other, float), axis=2)
    return a < b


def test_builder_groundtruth_is_where_the_object_is():
    """Flat red object on a flat grey background, scaled and rotated: the red pixels' bbox is the box."""
    background, red = (60, 60, 60), (0, 0, 255)
    pool = pool_from_images([np.full((300, 400, 3), background, np.uint8), np.full((200, 200, 3), red, np.uint8)])
    config = exact_pixels_config(
        sequences=4, frames=6, seed=2, kinds=("object",), attributes=("scale", "rotation", "fast_motion")
    )
    shapes = set()
    for index in range(config.sequences):
        frames, groundtruth, plan = render_sequence(pool, config, index)
        if plan.background != "image_00":
            continue  # the object came from the grey image: nothing to see
        shapes.add(plan.kind)
        for frame, (x, y, w, h) in zip(frames, groundtruth, strict=True):
            ys, xs = np.nonzero(_nearer(frame, red, background))
            assert abs(xs.min() - x) <= 1.5 and abs(ys.min() - y) <= 1.5
            assert abs(xs.max() - (x + w - 1)) <= 1.5 and abs(ys.max() - (y + h - 1)) <= 1.5
    assert shapes == {"object-rect", "object-ellipse"}


def test_builder_window_groundtruth_follows_the_camera():
    """A photo encoding its own coordinates: the frame pixels at the box corners decode to the region's corners."""
    height, width = 400, 512
    ys, xs = np.mgrid[0:height, 0:width]
    photo = np.dstack([xs // 2, ys // 2, (xs * 7 + ys * 13) % 256]).astype(np.uint8)
    pool = pool_from_images([photo])
    config = exact_pixels_config(sequences=2, frames=5, seed=4, kinds=("window",), attributes=())
    checked = 0
    for index in range(config.sequences):
        frames, groundtruth, plan = render_sequence(pool, config, index)
        rx, ry, rw, rh = plan.target_region
        for frame, (x, y, w, h) in zip(frames, groundtruth, strict=True):
            if x < 1 or y < 1 or x + w > 191 or y + h > 143:
                continue  # clipped at the frame border
            top_left = frame[int(round(y)), int(round(x))]
            bottom_right = frame[int(round(y + h - 1)), int(round(x + w - 1))]
            assert abs(2 * int(top_left[0]) - rx) <= 3 and abs(2 * int(top_left[1]) - ry) <= 3
            assert abs(2 * int(bottom_right[0]) - (rx + rw - 1)) <= 3
            assert abs(2 * int(bottom_right[1]) - (ry + rh - 1)) <= 3
            checked += 1
    assert checked >= 5


def test_photo_sources_and_fallbacks(tmp_path, monkeypatch):
    pool = find_photos()
    if OPENCV_DOC_DATA.is_dir():
        assert pool.origin.startswith("opencv-doc") and len(pool) >= 20
        train, test = pool.select("train"), pool.select("test")
        assert not {p.name for p in train.photos} & {p.name for p in test.photos}
        assert {p.group for p in train.photos}.isdisjoint({p.group for p in test.photos})
    else:  # pragma: no cover - depends on the machine
        print(f"opencv-doc is not installed ({OPENCV_DOC_DATA}); photo pool: {pool.origin}")
    with pytest.raises(ValueError, match="no usable photos"):
        find_photos([tmp_path])
    # Nothing installed at all: generated textures, and the origin says so.
    monkeypatch.setattr("siamrpnpp_ros.material.photos.OPENCV_DOC_DATA", tmp_path / "missing")
    monkeypatch.setattr("siamrpnpp_ros.material.photos.skimage_photos", lambda: [])
    fallback = find_photos()
    assert fallback.origin.startswith("generated") and fallback.photos[0].load().shape == (512, 512, 3)
    with pytest.raises(ValueError, match="opencv-doc"):
        find_photos(allow_generated=False)
    assert len(generated_textures(3)) == 3


def test_builder_cli(tmp_path, capsys):
    from siamrpnpp_ros.eval.builder import main

    assert (
        main(
            [
                "--out",
                str(tmp_path),
                "--sequences",
                "1",
                "--frames",
                "3",
                "--size",
                "96x80",
                "--seed",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "wrote 1 sequences" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "benchmark.json").read_text())
    assert manifest["config"]["seed"] == 1 and len(load_benchmark(tmp_path)) == 1
    with pytest.raises(SystemExit):  # argparse rejects a malformed size
        main(["--out", str(tmp_path), "--size", "9x"])


# ------------------------------------------------------------------ OPE and report
class _OracleRunner:
    """Answers the ground truth (or the first box forever, ``static``)."""

    def __init__(self, name: str, static: bool = False) -> None:
        self.name, self.static = name, static

    def run(self, sequence):
        boxes = sequence.groundtruth.copy()
        if self.static:
            boxes[:] = boxes[0]
        return RunResult(boxes, np.full(len(boxes), 0.001))


def test_ope_and_report(tiny_benchmark, tmp_path):
    sequences = load_benchmark(tiny_benchmark)
    assert [s.name for s in sequences] == ["seq000", "seq001"] and len(sequences[0]) == 8
    summaries = run_ope([_OracleRunner("oracle"), _OracleRunner("static", True)], sequences, tmp_path / "results")
    oracle = summaries["oracle"]
    assert math.isclose(oracle.auc, 20 / 21) and oracle.precision_20 == 1.0 and math.isclose(oracle.fps, 1000)
    assert summaries["static"].auc < oracle.auc
    stored = np.loadtxt(tmp_path / "results" / "oracle" / "seq000.txt", delimiter=",")
    assert np.allclose(stored, sequences[0].groundtruth, atol=1e-3)
    # Stored results are reused instead of re-running.
    again = run_ope([_OracleRunner("static", False)], sequences, tmp_path / "results", reuse=True)
    assert math.isclose(again["static"].auc, summaries["static"].auc)

    attributes = {"seq000": ["scale", "occlusion"], "seq001": ["occlusion"]}
    files = write_report(summaries.values(), tmp_path / "report", title="tiny", notes=["a note"], attributes=attributes)
    for png in (files.success_plot, files.precision_plot, files.norm_precision_plot):
        assert png.read_bytes()[:8] == PNG_SIGNATURE
    text = files.markdown.read_text()
    assert "| oracle | 0.952 | 1.000 |" in text and "- a note" in text and "seq001" in text
    assert "| 1.0 | 2 | " in text  # ms per frame: the runner reports 1 ms
    static = {q.name: q.auc for q in summaries["static"].sequences}
    assert f"| scale | 1 | 0.952 | {static['seq000']:.3f} |" in text
    assert f"| occlusion | 2 | 0.952 | {summaries['static'].auc:.3f} |" in text
    assert text.index("## Success AUC per attribute") < text.index("## Success AUC per sequence")
    assert text.index("| oracle") < text.index("| static")  # ranked by AUC
    assert json.loads(files.json.read_text())["trackers"][0]["tracker"] == "oracle"


def test_opencv_baselines(tiny_benchmark):
    sequence = load_benchmark(tiny_benchmark, max_frames=5)[0]
    mil = opencv_availability("mil")
    assert mil.in_process  # MIL is in OpenCV's main modules
    result = opencv_runner("mil", mil).run(sequence)
    assert result.boxes.shape == (5, 4) and np.isfinite(result.boxes).all()
    csrt = opencv_availability("csrt")
    if not csrt.available:
        assert "contrib" in csrt.reason
        pytest.skip(f"CSRT unavailable here: {csrt.reason}")
    boxes = opencv_runner("csrt", csrt).run(sequence).boxes
    assert boxes.shape == (5, 4) and np.allclose(boxes[0], sequence.groundtruth[0])


@pytest.mark.slow
def test_evaluate_cli_compares_and_skips_unavailable_baselines(tiny_benchmark, tmp_path, capsys, monkeypatch):
    weights = tmp_path / "alex.pth"
    torch.manual_seed(0)
    save_checkpoint(build_model("alex"), weights)
    # No contrib anywhere: CSRT must be skipped with a message, the rest must run.
    monkeypatch.setattr(
        trackers_module,
        "_opencv_constructor",
        lambda kind, module=cv2: None if kind != "mil" else cv2.TrackerMIL_create,
    )
    monkeypatch.setattr(trackers_module, "contrib_dir_candidates", lambda: [])
    out = tmp_path / "report"
    code = evaluate.main([
        "--benchmark", str(tiny_benchmark),
        "--tracker", f"mine=alex:{weights}", "--tracker", "mil", "--tracker", "csrt",
        "--out", str(out),
        "--max-frames", "4", "--device", "cpu", "--threads", "1", "--no-progress",
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "skipped CSRT" in captured.err and "contrib" in captured.err
    assert "| mine |" in captured.out and "| MIL |" in captured.out
    report = (out / "report.md").read_text()
    assert "skipped CSRT" in report
    assert (out / "success_plot.png").read_bytes()[:8] == PNG_SIGNATURE
    assert (out / "results" / "mine" / "seq001.txt").is_file()
    assert (
        evaluate.main(["--benchmark", str(tiny_benchmark), "--tracker", "alex:/nonexistent.pth", "--out", str(out)])
        == 2
    )
    assert evaluate.main(["--benchmark", str(tiny_benchmark), "--tracker", "csrt", "--out", str(out)]) == 1


def test_tracker_spec_takes_an_optional_parameters_file(tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    config = tmp_path / "wide.yaml"
    config.write_text("tracker_node:\n  ros__parameters:\n    tracker:\n      lost_search: wide\n")
    spec = evaluate.parse_tracker_spec(f"pysot-lt=alex-w0.25:{weights}:{config}")
    assert (spec.label, spec.kind, spec.weights, spec.config) == ("pysot-lt", "alex-w0.25", str(weights), str(config))
    assert evaluate.parse_tracker_spec(f"alex:{weights}").config is None
    with pytest.raises(evaluate.UsageError, match="config file .* not found"):
        evaluate.parse_tracker_spec(f"alex:{weights}:{tmp_path / 'missing.yaml'}")


@pytest.mark.slow
def test_shift_ablation_writes_table_and_plot(tiny_benchmark, tmp_path):
    from siamrpnpp_ros.training import TrainConfig
    from siamrpnpp_ros.training.ablation import run_ablation

    base = TrainConfig(
        data=(str(tiny_benchmark),),
        model="alex",
        width_mult=0.125,
        search_size=159,
        epochs=1,
        samples_per_epoch=2,
        batch_size=2,
        workers=0,
        device="cpu",
        threads=1,
        progress=False,
    )
    rows = run_ablation(base, tiny_benchmark, tmp_path, shifts=(0, 16), max_frames=4, progress=False)
    assert [r.shift for r in rows] == [0.0, 16.0] and all(0 <= r.auc <= 1 for r in rows)
    table = (tmp_path / "ablation.md").read_text()
    assert "| 0 |" in table and "| 16 |" in table and "only the maximum search-crop shift differs" in table
    assert (tmp_path / "ablation.png").read_bytes()[:8] == PNG_SIGNATURE
    assert (tmp_path / "runs" / "shift_16" / "model.pth").is_file()
    assert (tmp_path / "report" / "success_plot.png").is_file()
