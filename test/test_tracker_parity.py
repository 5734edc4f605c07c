"""End-to-end parity with pysot: every frame's box within 0.01 px and score within 1e-4.

The goldens are pysot's float32 CPU runs with 2 threads on the 60-frame synthetic video, with
seeded random weights in pysot's checkpoint layout (see test/data/parity/README.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from siamrpnpp_ros.tracking import build_tracker

BOX_TOLERANCE_PX = 0.01
SCORE_TOLERANCE = 1e-4
HEAD_TOLERANCE = 1e-4
MODELS = ("r50", "mobilev2", "alex")


pytestmark = pytest.mark.usefixtures("two_torch_threads")


@pytest.mark.parametrize("model", [pytest.param(m, marks=pytest.mark.slow) if m == "r50" else m for m in MODELS])
def test_frame1_head_outputs_match_pysot(model, parity_checkpoint, parity_frames, parity_dump):
    """The network sees pysot's exact inputs and gives its head outputs (narrows down a parity failure)."""
    frames, groundtruth = parity_frames
    dump = parity_dump(model)
    tracker = build_tracker(model, parity_checkpoint(model), device="cpu")
    tracker.init(frames[0], groundtruth[0])
    search = tracker.search_crop(frames[1])
    assert np.array_equal(search.numpy(), dump["x_crop_f1"])
    with torch.inference_mode():
        kernels = tracker.model.template(tracker.template_crop(frames[0], groundtruth[0]))
        cls, loc = tracker.model(search, kernels)
    for name, got in (("cls_f1", cls), ("loc_f1", loc)):
        expected = dump[name]
        assert tuple(got.shape) == expected.shape, name
        error = float(np.abs(got.float().numpy() - expected).max())
        assert error <= HEAD_TOLERANCE, f"{model} {name}: max abs error {error:.3g}"


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.slow
def test_tracking_matches_pysot(model, parity_checkpoint, parity_frames, parity_golden):
    frames, groundtruth = parity_frames
    golden = parity_golden(model)
    assert golden.shape == (60, 6)
    init_box = tuple(groundtruth[0])
    assert np.allclose(golden[0, 1:5], init_box) and golden[0, 5] == 1.0

    tracker = build_tracker(model, parity_checkpoint(model), device="cpu")
    tracker.init(frames[0], init_box)
    rows = [[*init_box, 1.0]]
    for frame in frames[1:]:
        result = tracker.track(frame)
        rows.append([*result.box, result.score])
    ours = np.asarray(rows, dtype=np.float64)

    box_error = np.abs(ours[:, :4] - golden[:, 1:5]).max(axis=1)
    score_error = np.abs(ours[:, 4] - golden[:, 5])
    bad = np.flatnonzero((box_error > BOX_TOLERANCE_PX) | (score_error > SCORE_TOLERANCE))
    if bad.size:
        first = int(bad[0])
        pytest.fail(
            f"{model}: {bad.size} frame(s) off; first bad frame {first}: ours {np.round(ours[first], 6).tolist()} "
            f"vs pysot {np.round(golden[first, 1:], 6).tolist()}; max box error {box_error.max():.3g} px, "
            f"max score error {score_error.max():.3g}"
        )
    print(f"{model}: max box error {box_error.max():.2e} px, max score error {score_error.max():.2e}")
