"""The multi-target tracker (tracking/multi.py): several targets, one batched network pass per frame.

Parity: three targets started from different boxes on the parity video, one of them added
mid-sequence, must each get the boxes and scores the single-target tracker gives that target
alone, within the pysot parity tolerances, with every back-end. (The exact torch and ONNX
Runtime paths are bit-identical here; the BN-folded path with NNPACK moves by float rounding.)
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from parity_support import BOX_TOLERANCE_PX, SCORE_TOLERANCE, assert_matches_pysot, first_ill_conditioned_frame

from siamrpnpp_ros.tracking import build_tracker, preset_for
from siamrpnpp_ros.tracking.multi import MultiTargetTracker, TargetExistsError, TooManyTargetsError
from siamrpnpp_ros.tracking.session import LostPolicy, TrackStatus

pytestmark = pytest.mark.usefixtures("two_torch_threads")


def starts(groundtruth: np.ndarray, frame_count: int) -> dict[int, tuple[int, tuple[float, ...]]]:
    """target id -> (first frame, box): the parity object, a background patch, and a third
    target selected halfway through on another patch."""
    return {
        7: (0, tuple(float(v) for v in groundtruth[0])),
        8: (0, (40.0, 30.0, 80.0, 100.0)),
        9: (frame_count // 2, (420.0, 300.0, 60.0, 50.0)),
    }


def single_runs(make_tracker, frames, plan) -> dict[int, np.ndarray]:
    """Each target tracked alone by its own single-target tracker: rows x, y, w, h, score."""
    rows = {}
    for target_id, (first, box) in plan.items():
        tracker = make_tracker()
        tracker.init(frames[first], box)
        rows[target_id] = np.array([[*r.box, r.score] for r in (tracker.track(f) for f in frames[first + 1 :])])
    return rows


def multi_run(make_tracker, frames, plan) -> tuple[dict[int, np.ndarray], dict[int, list]]:
    multi = MultiTargetTracker(make_tracker(), max_targets=3)
    results: dict[int, list] = {target_id: [] for target_id in plan}
    for index, frame in enumerate(frames):
        for result in multi.step(frame, index):
            results[result.target_id].append(result)
        for target_id, (first, box) in plan.items():
            if first == index:
                initializing = multi.add(frame, box, target_id, index)
                assert initializing.status == TrackStatus.INITIALIZING and initializing.age == 1
    assert multi.target_ids == tuple(plan)
    rows = {tid: np.array([[*r.box, r.score] for r in found]) for tid, found in results.items()}
    return rows, results


CASES = {
    # name: (model, build_tracker keywords, frames)
    "alex-exact": ("alex", {}, 60),
    "mobilev2-exact": ("mobilev2", {}, 8),
    "alex-fused": ("alex", {"fuse_bn": True}, 20),
    "alex-onnxruntime": ("alex", {"backend": "onnxruntime"}, 12),
    # Seeded weights score low, so targets go lost: lost-target and normal searches in one frame,
    # the tiles at the normal size (one batch), pysot's wide crop at its own size.
    "alex-long-term": ("alex", {"long_term": True}, 10),
    # A lost target's tiles are several crops: ONNX Runtime needs a kernel per crop.
    "alex-long-term-onnxruntime": ("alex", {"long_term": True, "backend": "onnxruntime"}, 6),
    "alex-long-term-wide": (
        "alex",
        {"long_term": True, "config_changes": {"lost_search": "wide", "lost_instance_size": 383}},
        10,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_three_targets_match_single_target_runs(case, parity_checkpoint, parity_frames, parity_golden):
    model, keywords, frame_count = CASES[case]
    if keywords.get("backend") == "onnxruntime":
        pytest.importorskip("onnxruntime")
    keywords = dict(keywords)
    changes = keywords.pop("config_changes", None)
    if changes:
        keywords["config"] = preset_for(model).replace(**changes)
    frames = parity_frames[0][:frame_count]
    plan = starts(parity_frames[1], frame_count)

    def make_tracker():
        return build_tracker(model, parity_checkpoint(model), device="cpu", **keywords)

    alone = single_runs(make_tracker, frames, plan)
    together, results = multi_run(make_tracker, frames, plan)
    for target_id, (first, _) in plan.items():
        expected, got = alone[target_id], together[target_id]
        assert got.shape == expected.shape == (frame_count - first - 1, 5), target_id
        box_error = np.abs(got[:, :4] - expected[:, :4]).max()
        score_error = np.abs(got[:, 4] - expected[:, 4]).max()
        assert box_error <= BOX_TOLERANCE_PX and score_error <= SCORE_TOLERANCE, (
            f"{case} target {target_id}: max box error {box_error:.3g} px, max score error {score_error:.3g}"
        )
        ages = [r.age for r in results[target_id]]
        assert ages == list(range(2, frame_count - first + 1)), "each target keeps its own age"
    if case == "alex-exact":  # and the parity object is still tracked like pysot, closed loop
        # as far as that is well conditioned on any CPU (parity_support)
        golden = parity_golden("alex")
        height, width = frames[0].shape[:2]
        end = first_ill_conditioned_frame(golden, preset_for("alex"), width, height)
        assert end > 5, "too few well-conditioned frames to compare"
        assert_matches_pysot(together[7][: end - 1], golden[1:end], "alex, three targets, parity object")
    if case.startswith("alex-long-term"):
        wide = [r.search_wide for found in results.values() for r in found]
        assert any(wide) and not all(wide), "the case must mix wide and normal searches"


@pytest.mark.parametrize("model", ["alex", "mobilev2"])
@pytest.mark.slow
def test_batched_heads_correlate_each_crop_with_its_own_kernels(model, parity_model):
    """One batch of crops with per-sample kernels equals one call per crop (plain and fused)."""
    from siamrpnpp_ros.models.fusion import fuse_for_inference

    source = parity_model(model)
    size = 287 if model == "alex" else 255
    generator = torch.Generator().manual_seed(3)
    crops = torch.rand((3, 3, size, size), generator=generator) * 255
    exemplars = torch.rand((3, 3, 127, 127), generator=generator) * 255
    for network in (source, fuse_for_inference(source, fold_bn=False)):
        with torch.inference_mode():
            kernels = [network.template(exemplars[i : i + 1]) for i in range(3)]
            stacked = tuple(torch.cat(parts) for parts in zip(*kernels, strict=True))
            cls, loc = network(crops, stacked)
            for i in range(3):
                one_cls, one_loc = network(crops[i : i + 1], kernels[i])
                assert torch.allclose(cls[i : i + 1], one_cls, atol=1e-5, rtol=0)
                assert torch.allclose(loc[i : i + 1], one_loc, atol=1e-5, rtol=0)
            # Another sample's kernels give other outputs: the kernels really are per sample.
            assert not torch.allclose(cls[1:2], network(crops[1:2], kernels[0])[0], atol=1e-3)


# --------------------------------------------------------------------------- the collection


@pytest.fixture(scope="module")
def default_tracker():
    """The bundled default model: fast enough to drive the bookkeeping tests for real."""
    return build_tracker("alex-w0.25", None, device="cpu")


@pytest.fixture(scope="module")
def clip(parity_frames):
    return parity_frames[0][:8], parity_frames[1]


def test_ids_limits_replace_and_remove(default_tracker, clip):
    frames, groundtruth = clip
    multi = MultiTargetTracker(default_tracker, max_targets=2)
    box = tuple(groundtruth[0])
    assert multi.add(frames[0], box, 1, 0).status == TrackStatus.INITIALIZING
    with pytest.raises(TargetExistsError, match="target 1"):
        multi.add(frames[0], box, 1, 0)
    multi.add(frames[0], (40, 30, 80, 100), 2, 0)
    assert multi.is_full
    with pytest.raises(TooManyTargetsError, match="max_targets 2"):
        multi.add(frames[0], box, 3, 0)
    with pytest.raises(TooManyTargetsError):
        multi.replace(frames[0], box, 3, 0)

    for index in (1, 2):
        assert [r.target_id for r in multi.step(frames[index], index)] == [1, 2]
    assert multi.get(1).age == 3

    # REPLACE of an existing id: new template and state, age from 1, same place in the order.
    replaced = multi.replace(frames[2], (300, 200, 50, 60), 1, 2)
    assert (replaced.target_id, replaced.age, replaced.box) == (1, 1, (300.0, 200.0, 50.0, 60.0))
    assert multi.target_ids == (1, 2)
    assert [r.target_id for r in multi.step(frames[3], 3)] == [1, 2]
    assert (multi.get(1).age, multi.get(2).age) == (2, 4)

    # Replacing one id by another (the node's single-slot switch) keeps the place too.
    multi.replace(frames[3], box, 5, 3, replacing=1)
    assert multi.target_ids == (5, 2)
    with pytest.raises(TargetExistsError):
        multi.replace(frames[3], box, 2, 3, replacing=5)

    # A refused box changes nothing.
    with pytest.raises(ValueError, match="outside"):
        multi.replace(frames[3], (900, 900, 10, 10), 2, 3)
    assert multi.target_ids == (5, 2) and multi.get(2).age == 4

    idle = multi.remove(2)
    assert (idle.status, idle.target_id, idle.age) == (TrackStatus.IDLE, 2, 0)
    assert multi.remove(2) is None and multi.target_ids == (5,)
    assert [r.status for r in multi.clear()] == [TrackStatus.IDLE]
    assert len(multi) == 0 and multi.step(frames[4], 4) == []


@pytest.mark.slow
def test_frame_indices_and_catching_up_alone(default_tracker, clip):
    """A target is never tracked on its init frame nor twice on one frame; a late target can
    catch up through frames the others have passed, alone, and equals a single tracker."""
    frames, groundtruth = clip
    multi = MultiTargetTracker(default_tracker, max_targets=4)
    multi.add(frames[0], tuple(groundtruth[0]), 1, 0)
    for index in range(1, 6):
        multi.step(frames[index], index)
    # Target 2 is selected on frame 2, which the node had cached: it catches up 3..5 alone.
    multi.add(frames[2], (40, 30, 80, 100), 2, 2)
    assert multi.step(frames[2], 2) == [], "nobody tracks a frame twice or on its init frame"
    caught_up = [multi.step(frames[i], i, target_ids=[2]) for i in (3, 4, 5)]
    assert [[r.target_id for r in results] for results in caught_up] == [[2], [2], [2]]
    assert multi.step(frames[5], 5) == [], "both have seen frame 5"
    both = multi.step(frames[6], 6)
    assert [r.target_id for r in both] == [1, 2] and [r.age for r in both] == [7, 5]

    alone = build_tracker("alex-w0.25", None, device="cpu")
    alone.init(frames[2], (40, 30, 80, 100))
    expected = [alone.track(frames[i]) for i in range(3, 7)]
    got = [results[0] for results in caught_up] + [both[1]]
    for e, g in zip(expected, got, strict=True):
        assert np.allclose(e.box, g.box, atol=BOX_TOLERANCE_PX, rtol=0)
        assert abs(e.score - g.score) <= SCORE_TOLERANCE


def test_default_indices_policy_and_bad_frames(default_tracker, clip):
    frames, groundtruth = clip
    # A copy: set_config below changes the prototype's config.
    multi = MultiTargetTracker(copy.copy(default_tracker), LostPolicy(lost_frames=2), max_targets=3)
    multi.add(frames[0], tuple(groundtruth[0]), 1)  # index 0
    assert [r.age for r in multi.step(frames[1])] == [2]  # index 1
    multi.add(frames[1], (40, 30, 80, 100), 2)  # on the frame just tracked
    assert [r.target_id for r in multi.step(frames[2])] == [1, 2]
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        multi.step(np.zeros((10, 10), np.uint8))
    assert [t.age for t in multi.targets] == [3, 2], "a bad frame changes nothing"
    strict = LostPolicy(lost_score_threshold=1.0, lost_frames=1, recover_score_threshold=1.0)
    multi.set_policy(strict)
    assert all(t.session.policy is strict for t in multi.targets)
    assert {r.status for r in multi.step(frames[3])} == {TrackStatus.LOST}
    config = multi.network_tracker.config.replace(window_influence=0.3)
    multi.set_config(config)
    assert all(t.tracker.config is config for t in multi.targets)
    multi.warm_up([2, 3])
    assert [t.age for t in multi.targets] == [4, 3], "warm-up leaves the targets alone"
    with pytest.raises(ValueError, match="max_targets"):
        MultiTargetTracker(default_tracker, max_targets=0)


def test_batch_sizes_include_lost_targets_tiles():
    # The sizes the node warms up: normal searches batch 1..max_targets crops; a lost target's
    # tiles batch apart, lost_tiles_per_frame crops per lost target.
    long_term = build_tracker("alex-w0.25", None, device="cpu", long_term=True)
    tiles = long_term.config.lost_tiles_per_frame
    assert tiles == 4
    assert MultiTargetTracker(long_term, max_targets=1).batch_sizes() == [1, 4]
    assert MultiTargetTracker(long_term, max_targets=3).batch_sizes() == [1, 2, 3, 4, 8, 12]
    short_term = build_tracker("alex-w0.25", None, device="cpu", long_term=False)
    assert MultiTargetTracker(short_term, max_targets=3).batch_sizes() == [1, 2, 3]
