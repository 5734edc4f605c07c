"""Training toolkit: anchor targets, losses, crops/sampling, data sources, the loop, checkpoints, resume.

Models are tiny (AlexNet at an eighth/quarter of its width, small search crops) so the whole
file runs in well under a minute on two CPU cores.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from siamrpnpp_ros.models import CheckpointError, build_model, load_checkpoint, read_state_dict, save_checkpoint
from siamrpnpp_ros.models.compat import load_weights_only
from siamrpnpp_ros.tracking import SiamRPNTracker, build_tracker, preset_for
from siamrpnpp_ros.training import (
    AnchorTargetAssigner,
    AugmentConfig,
    DataSpec,
    LRSchedule,
    PairDataset,
    TrainConfig,
    Trainer,
    augmented_view,
    build_training_model,
    decode_deltas,
    encode_deltas,
    load_source,
    load_train_config,
    save_train_config,
    select_cross_entropy_loss,
    siamrpn_loss,
    state_path_for,
    training_crop,
    weighted_l1_loss,
)
from siamrpnpp_ros.training.model import output_score_size, set_backbone_trainable, set_train_mode
from siamrpnpp_ros.training.targets import IGNORE, NEGATIVE, POSITIVE

# One torch thread: on a shared 2-core machine a second OpenMP thread mostly waits for a core.
TINY = dict(
    model="alex", width_mult=0.125, search_size=159, workers=0, device="cpu", progress=False, log_every=1, threads=1
)

#: TINY's network and machine settings as options of the training command lines (train, default_model).
TINY_OPTIONS = [
    "--model", "alex", "--width-mult", "0.125",
    "--workers", "0", "--threads", "1", "--device", "cpu", "--no-progress",
]  # fmt: skip


def tiny_config(sequences_dir: Path, out: Path, **settings: Any) -> TrainConfig:
    """A TrainConfig of the TINY network on ``sequences_dir``, writing to ``out``; ``settings``
    add to TINY or replace its values."""
    return TrainConfig(data=(str(sequences_dir),), out=str(out), **{**TINY, **settings})


def assert_tracks_a_flat_frame(model_name: str, weights: Path) -> None:
    tracker = build_tracker(model_name, weights, device="cpu")
    frame = _flat_frame()
    tracker.init(frame, (120, 90, 48, 36))
    assert np.isfinite(tracker.track(frame).box).all()


@pytest.fixture(autouse=True, scope="module")
def _restore_torch_threads():
    """The Trainer sets torch's global thread count (config.threads); give it back afterwards."""
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


# ------------------------------------------------------------------ helpers
def _flat_frame(
    width: int = 320, height: int = 240, box=(120, 90, 48, 36), background=(40, 90, 160), colour=(20, 220, 240)
):
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = background
    x, y, w, h = box
    frame[y : y + h, x : x + w] = colour
    return frame


def _colour_bbox(image: np.ndarray, colour, tolerance: float = 40.0):
    """Pixel bbox (x0, y0, x1, y1) of the pixels within ``tolerance`` of ``colour``."""
    distance = np.linalg.norm(image.astype(np.float64) - np.asarray(colour, np.float64), axis=2)
    ys, xs = np.nonzero(distance < tolerance)
    return xs.min(), ys.min(), xs.max(), ys.max()


def _write_sequences(root: Path, count: int = 2, frames: int = 6, size=(192, 144)) -> Path:
    """OTB-style folders with a textured target drifting over a textured background."""
    rng = np.random.default_rng(7)
    width, height = size
    for s in range(count):
        folder = root / f"seq{s}"
        (folder / "img").mkdir(parents=True)
        background = cv2.GaussianBlur((rng.random((height, width, 3)) * 255).astype(np.uint8), (0, 0), 2)
        target = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
        lines = []
        for f in range(frames):
            image = background.copy()
            x, y = 50 + 4 * f + 10 * s, 40 + 2 * f
            image[y : y + 24, x : x + 32] = target
            cv2.imwrite(str(folder / "img" / f"{f + 1:04d}.png"), image)
            lines.append(f"{x},{y},32,24")
        (folder / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def sequences_dir(tmp_path_factory) -> Path:
    return _write_sequences(tmp_path_factory.mktemp("train_data"))


# ------------------------------------------------------------------ anchor targets
def test_anchor_targets_hand_computed_positives():
    """A 64x64 target at the crop centre: exactly the 9 square anchors within one stride overlap > 0.6.

    IoU of two 64x64 boxes offset by (8, 0): 56*64 / (2*4096 - 56*64) = 0.78; by (8, 8):
    56*56 / (8192 - 3136) = 0.62; by (16, 0): 0.6 (not > 0.6). The other shapes stay below 0.6
    (e.g. 88x40: 2560 / 5056 = 0.51).
    """
    assigner = AnchorTargetAssigner(17)
    targets = assigner(np.array([0.0, 0.0, 64.0, 64.0]), np.random.default_rng(0))
    A, S = 5, 17
    assert targets.cls.shape == (A, S, S) and targets.delta.shape == (4, A, S, S)
    positives = set(zip(*np.nonzero(targets.cls == POSITIVE), strict=True))
    square = 2  # ratio 1.0 is the third anchor shape (64x64)
    expected = {(square, 8 + di, 8 + dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)}
    assert positives == expected
    assert targets.num_negatives == 64 - 9  # TOTAL_NUM - positives
    assert np.all(targets.overlap[targets.cls == NEGATIVE] < 0.3)
    assert np.allclose(targets.delta_weight[targets.cls == POSITIVE], 1 / 9, rtol=1e-5)
    assert targets.delta_weight[targets.cls != POSITIVE].sum() == 0
    # Deltas of the centre anchor are zero; the anchor one stride to the right must move left by 8/64.
    assert np.allclose(targets.delta[:, square, 8, 8], 0.0, atol=1e-7)
    assert np.isclose(targets.delta[0, square, 8, 9], -8 / 64)
    assert np.isclose(targets.overlap[square, 8, 10], 0.6)


def test_anchor_targets_sampling_counts_and_thresholds():
    assigner = AnchorTargetAssigner(25)
    rng = np.random.default_rng(1)
    for target in ([0, 0, 100, 40], [30, -20, 60, 60], [-50, 40, 40, 100]):
        targets = assigner(np.array(target, float), rng)
        assert 0 < targets.num_positives <= 16
        assert targets.num_positives + targets.num_negatives == 64
        assert np.all(targets.overlap[targets.cls == POSITIVE] > 0.6)
        assert np.all(targets.overlap[targets.cls == NEGATIVE] < 0.3)
        assert set(np.unique(targets.cls)) <= {IGNORE, NEGATIVE, POSITIVE}


def test_negative_pair_labels_only_negatives_around_the_distractor():
    assigner = AnchorTargetAssigner(25)
    targets = assigner(np.array([40.0, -24.0, 60, 60]), np.random.default_rng(2), negative=True)
    assert targets.num_positives == 0 and targets.num_negatives == 16
    assert targets.delta_weight.sum() == 0
    _, rows, cols = np.nonzero(targets.cls == NEGATIVE)
    # Distractor centre at cell (12 - 3, 12 + 5); the window is 7x7 around it.
    assert rows.min() >= 9 - 3 and rows.max() <= 9 + 3
    assert cols.min() >= 17 - 3 and cols.max() <= 17 + 3


def test_deltas_round_trip():
    anchors = AnchorTargetAssigner(9).anchors
    target = np.array([13.5, -7.25, 71.0, 33.0])
    decoded = decode_deltas(anchors, encode_deltas(anchors, target))
    assert np.allclose(decoded, target[None, :], atol=1e-4)


class _HeadStub(torch.nn.Module):
    """Stands in for SiamRPN: fixed head outputs, to check the tracker decodes our targets."""

    def __init__(self, cls: torch.Tensor, loc: torch.Tensor) -> None:
        super().__init__()
        self.cls, self.loc = cls, loc
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def template(self, z):
        return (z.mean().reshape(1),)

    def forward(self, x, kernels):
        return self.cls, self.loc


def test_targets_invert_the_tracker_decode():
    """Feed the tracker head outputs built from our anchor targets: it must land on the target."""
    config = preset_for("alex")
    frame = _flat_frame(640, 480)
    init_box = (300.0, 200.0, 60.0, 40.0)
    context = config.context_amount * (60 + 40)
    scale = config.exemplar_size / math.sqrt((60 + context) * (40 + context))  # crop px per frame px
    move = np.array([23.0, -11.0])  # target displacement, frame px
    relative = np.array([move[0] * scale, move[1] * scale, 60 * scale, 40 * scale])

    S = config.score_size()
    assigner = AnchorTargetAssigner(S, config.anchor_stride, config.anchor_ratios, config.anchor_scales)
    targets = assigner(relative, np.random.default_rng(0))
    best = np.unravel_index(np.argmax(targets.overlap), targets.overlap.shape)
    A = config.anchor_count
    cls = torch.zeros(1, 2 * A, S, S)
    cls[0, A + best[0], best[1], best[2]] = 12.0  # foreground logit of the best anchor only
    loc = torch.from_numpy(targets.delta.reshape(1, 4 * A, S, S).copy())  # channel k*A + a

    tracker = SiamRPNTracker(_HeadStub(cls, loc), config)
    tracker.init(frame, init_box)
    start = np.array(tracker.center)
    result = tracker.track(frame)
    assert np.allclose(np.array(result.center) - start, move, atol=1e-3)
    assert np.allclose(result.box[2:], (60.0, 40.0), atol=1e-3)


# ------------------------------------------------------------------ losses
def test_cross_entropy_loss_hand_computed():
    # A = 1, S = 2: logits (background, foreground) per cell.
    background = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    foreground = torch.tensor([[2.0, 0.0], [0.5, 3.0]])
    cls = torch.stack([background, foreground]).reshape(1, 2, 2, 2)
    label = torch.tensor([[[1, 0], [-1, 0]]])

    def nll(bg, fg, cls_index):
        log_p = torch.log_softmax(torch.tensor([bg, fg]), 0)
        return -float(log_p[cls_index])

    positive = nll(0.0, 2.0, 1)
    negative = (nll(1.0, 0.0, 0) + nll(-1.0, 3.0, 0)) / 2
    assert math.isclose(float(select_cross_entropy_loss(cls, label)), 0.5 * positive + 0.5 * negative, rel_tol=1e-6)
    # No positives: only the negative half remains (pysot returns 0 for an empty term).
    only_negative = torch.tensor([[[-1, 0], [-1, 0]]])
    assert math.isclose(float(select_cross_entropy_loss(cls, only_negative)), 0.5 * negative, rel_tol=1e-6)


def test_weighted_l1_loss_hand_computed():
    loc = torch.zeros(2, 4, 1, 2)  # B = 2, A = 1, S = 1x2
    label = torch.zeros(2, 4, 1, 1, 2)
    label[0, :, 0, 0, 0] = torch.tensor([0.1, -0.2, 0.3, 0.4])  # |.| sums to 1.0
    label[1, :, 0, 0, 1] = torch.tensor([1.0, 1.0, 0.0, 0.0])  # sums to 2.0
    weight = torch.zeros(2, 1, 1, 2)
    weight[0, 0, 0, 0] = 1.0
    weight[1, 0, 0, 1] = 0.5
    assert math.isclose(float(weighted_l1_loss(loc, label, weight)), (1.0 * 1.0 + 2.0 * 0.5) / 2, rel_tol=1e-6)
    total = siamrpn_loss(torch.zeros(2, 2, 1, 2), loc, torch.ones(2, 1, 1, 2, dtype=torch.long), label, weight)
    assert math.isclose(float(total.total), float(total.cls) + 1.2 * float(total.loc), rel_tol=1e-6)


# ------------------------------------------------------------------ crops and sampling
def test_shift_zero_keeps_the_target_centred():
    frame = _flat_frame()
    colour = (20, 220, 240)
    target = np.array([120 + 23.5, 90 + 17.5, 48, 36])  # centre x + (w-1)/2
    rng = np.random.default_rng(0)
    for _ in range(5):
        crop = training_crop(frame, target, 255, AugmentConfig(shift=0, scale=0.18, color=1.0), rng)
        assert np.allclose(crop.box[:2], 127.0)
    crop = training_crop(frame, target, 255, AugmentConfig(), rng)
    x0, y0, x1, y1 = _colour_bbox(crop.image, colour)
    # The pixels say the same as the box: centre within a pixel, size within two.
    assert abs((x0 + x1) / 2 - 127) <= 1.0 and abs((y0 + y1) / 2 - 127) <= 1.0
    assert abs((x1 - x0 + 1) - crop.box[2]) <= 2.0 and abs((y1 - y0 + 1) - crop.box[3]) <= 2.0


def test_shift_stays_within_range_and_matches_pixels():
    frame = _flat_frame()
    colour = (20, 220, 240)
    target = np.array([120 + 23.5, 90 + 17.5, 48, 36])
    rng = np.random.default_rng(3)
    offsets = []
    for _ in range(40):
        crop = training_crop(frame, target, 255, AugmentConfig(shift=32, scale=0.18), rng)
        offsets.append(crop.offset)
        assert np.all(np.abs(crop.offset) <= 32.0)
    for _ in range(3):
        crop = training_crop(frame, target, 255, AugmentConfig(shift=32, flip=1.0), rng)
        x0, y0, x1, y1 = _colour_bbox(crop.image, colour)
        assert abs((x0 + x1) / 2 - crop.box[0]) <= 1.0 and abs((y0 + y1) / 2 - crop.box[1]) <= 1.0
    assert np.abs(np.array(offsets)).max() > 20  # the range is actually used


def test_pair_dataset_centres_and_labels(sequences_dir):
    source = load_source(sequences_dir)
    assert source.kind == "sequences" and len(source.tracks) == 2
    assigner = AnchorTargetAssigner(5)
    common = dict(exemplar_size=127, search_size=159, negative_prob=0.0, seed=1)
    centred = PairDataset(
        [source], 8, assigner, AugmentConfig(), AugmentConfig(shift=0, scale=0.1, blur=1.0, color=1.0), **common
    )
    for index in range(4):
        item = centred[index]
        assert item["template"].shape == (3, 127, 127) and item["search"].shape == (3, 159, 159)
        assert item["template"].dtype == np.float32 and 0 <= item["search"].min() and item["search"].max() <= 255
        assert np.allclose(item["search_box"][:2], 79.0)
        assert (item["label_cls"] == POSITIVE).sum() > 0
    shifted = PairDataset([source], 8, assigner, AugmentConfig(), AugmentConfig(shift=16), **common)
    offsets = np.array([shifted[i]["search_box"][:2] - 79.0 for i in range(8)])
    assert np.all(np.abs(offsets) <= 16) and np.abs(offsets).max() > 4
    # Reproducible: an item depends only on (seed, epoch, index).
    assert np.array_equal(shifted[3]["search"], shifted[3]["search"])
    assert not np.array_equal(shifted[3]["search"], shifted[3 + 8]["search"])  # same index, next epoch


def test_all_four_source_kinds(tmp_path, sequences_dir):
    rng = np.random.default_rng(5)
    # Video + box file.
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    boxes = []
    for f in range(5):
        frame = np.full((120, 160, 3), 90, np.uint8)
        frame[30 + f : 60 + f, 40 + 2 * f : 80 + 2 * f] = (0, 0, 255)
        writer.write(frame)
        boxes.append(f"{40 + 2 * f},{30 + f},40,30" if f != 2 else "nan,nan,nan,nan")  # frame 2: target absent
    writer.release()
    (tmp_path / "clip.txt").write_text("\n".join(boxes) + "\n")
    # Stills with an annotation file, and stills without boxes.
    stills = tmp_path / "stills"
    stills.mkdir()
    for i in range(2):
        cv2.imwrite(str(stills / f"p{i}.jpg"), (rng.random((100, 140, 3)) * 255).astype(np.uint8))
    (stills / "annotations.csv").write_text("p0.jpg,10,20,40,30\np1.jpg,50,30,30,40\np1.jpg,5,5,20,20\n")
    unlabeled = tmp_path / "unlabeled"
    unlabeled.mkdir()
    texture = cv2.GaussianBlur((rng.random((150, 200, 3)) * 255).astype(np.uint8), (0, 0), 1.5)
    cv2.imwrite(str(unlabeled / "u0.png"), texture)

    sources = [load_source(p) for p in (sequences_dir, video, stills, unlabeled)]
    assert [s.kind for s in sources] == ["sequences", "video", "images", "unlabeled"]
    assert list(sources[1].tracks[0].valid) == [0, 1, 3, 4]
    assert len(sources[2].tracks) == 3
    dataset = PairDataset(
        sources,
        16,
        AnchorTargetAssigner(5),
        AugmentConfig(),
        AugmentConfig(shift=8),
        search_size=159,
        negative_prob=0.25,
        seed=0,
    )
    for index in range(16):
        item = dataset[index]
        assert np.isfinite(item["search"]).all() and np.isfinite(item["label_loc"]).all()
        if not item["negative"]:
            assert (item["label_cls"] == POSITIVE).sum() > 0


def test_self_supervised_view_box_follows_the_patch():
    image = _flat_frame(240, 200, box=(100, 80, 40, 30))
    view, box = augmented_view(
        image, np.array([100.0, 80.0, 40.0, 30.0]), np.random.default_rng(4), max_rotation_degrees=0
    )
    x0, y0, x1, y1 = _colour_bbox(view, (20, 220, 240), tolerance=90)
    assert abs(x0 - box[0]) <= 1.5 and abs(y0 - box[1]) <= 1.5
    assert abs((x1 - x0 + 1) - box[2]) <= 2 and abs((y1 - y0 + 1) - box[3]) <= 2


# ------------------------------------------------------------------ config and schedule
def test_config_yaml_round_trip_and_cli_specs(tmp_path):
    spec = DataSpec.parse("video:/d/walk.mp4,boxes=/d/walk.txt,frame_range=30,weight=0.5")
    assert (spec.kind, spec.path, spec.boxes, spec.frame_range, spec.weight) == (
        "video",
        "/d/walk.mp4",
        "/d/walk.txt",
        30,
        0.5,
    )
    config = TrainConfig(
        data=(spec, "unlabeled:/photos"), epochs=3, search_augment={"shift": 0}, targets={"positive_iou": 0.7}
    )
    assert config.search_augment.shift == 0 and config.search_augment.scale == 0.18
    save_train_config(config, tmp_path / "c.yaml")
    assert load_train_config(tmp_path / "c.yaml") == config
    (tmp_path / "bad.yaml").write_text("epochz: 3\n")
    with pytest.raises(ValueError, match="epochz"):
        load_train_config(tmp_path / "bad.yaml")
    with pytest.raises(ValueError, match="multiple of the anchor stride"):
        TrainConfig(search_size=250)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        Trainer(TrainConfig(data=("/nonexistent",), amp=True, device="cpu"))


def test_lr_schedule_warmup_then_log_decay():
    schedule = LRSchedule(base_lr=0.005, final_lr=0.0005, epochs=20, kind="log", warmup_epochs=5, warmup_start_lr=0.001)
    assert math.isclose(schedule(0), 0.001) and math.isclose(schedule(2.5), 0.003)
    assert math.isclose(schedule(5), 0.005) and math.isclose(schedule(20), 0.0005)
    assert math.isclose(schedule(12.5), math.sqrt(0.005 * 0.0005))
    cosine = LRSchedule(0.01, 0.001, 10, "cosine")
    assert math.isclose(cosine(5), 0.0055)


# ------------------------------------------------------------------ model and loop
@pytest.mark.slow
def test_frozen_backbone_keeps_weights_and_bn_statistics(sequences_dir, tmp_path):
    pretrained = tmp_path / "pretrained.pth"
    save_checkpoint(build_training_model("alex", 0.125), pretrained)
    config = tiny_config(
        sequences_dir, tmp_path / "run", samples_per_epoch=2, batch_size=2, epochs=2, pretrained=str(pretrained)
    )
    trainer = Trainer(config)
    assert config.frozen_epochs == 1 and trainer.train_layers == ("conv3", "conv4", "conv5")
    batch = torch.utils.data.default_collate([trainer.dataset[i] for i in range(2)])
    trainer.prepare_epoch(0)
    before = {k: v.clone() for k, v in trainer.model.backbone.state_dict().items()}
    head_before = trainer.model.rpn_head.cls.head[3].weight.clone()
    trainer.set_learning_rate(0.5)
    trainer.train_step(batch)
    after = trainer.model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and running stats untouched
    assert not torch.equal(head_before, trainer.model.rpn_head.cls.head[3].weight)
    trainer.prepare_epoch(1)
    lr = trainer.set_learning_rate(1.5)
    groups = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert math.isclose(groups["backbone"], 0.1 * lr) and math.isclose(groups["head"], lr)
    trainer.train_step(batch)
    after = trainer.model.backbone.state_dict()
    assert torch.equal(before["features.0.weight"], after["features.0.weight"])  # conv1 stays frozen
    assert not torch.equal(before["features.14.weight"], after["features.14.weight"])  # conv5 trains


@pytest.mark.slow
def test_overfits_a_fixed_batch(sequences_dir, tmp_path):
    config = tiny_config(
        sequences_dir,
        tmp_path / "run",
        samples_per_epoch=4,
        batch_size=4,
        epochs=1,
        optimizer="adamw",
        lr=2e-3,
        negative_prob=0.0,
        seed=3,
        width_mult=0.25,
    )
    torch.manual_seed(0)
    trainer = Trainer(config)
    batch = torch.utils.data.default_collate([trainer.dataset[i] for i in range(4)])
    trainer.prepare_epoch(0)
    trainer.set_learning_rate(config.warmup)  # past the warm-up: the full lr
    losses = [trainer.train_step(batch)["loss"] for _ in range(25)]
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.slow
def test_fit_checkpoint_formats_and_resume(sequences_dir, tmp_path):
    out = tmp_path / "run"
    config = tiny_config(
        sequences_dir,
        out,
        samples_per_epoch=4,
        batch_size=2,
        epochs=2,
        val_benchmark=str(sequences_dir),
        val_every=2,
        val_max_frames=3,
    )
    result = Trainer(config).fit()
    assert result.epoch_rows[0]["val_auc"] == "" and 0 <= float(result.epoch_rows[1]["val_auc"]) <= 1
    assert result.epochs_completed == 2
    for name in ("config.yaml", "train_log.csv", "epochs.csv", "loss.png", "model.pth"):
        assert (out / name).is_file(), name
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    weights = out / "checkpoints" / "epoch_0002.pth"
    # The weights file is a plain pysot state dict; optimizer state lives beside it.
    raw = torch.load(weights, map_location="cpu", weights_only=True)
    assert list(raw) == ["state_dict"] and all(isinstance(v, torch.Tensor) for v in raw["state_dict"].values())
    state = load_weights_only(state_path_for(weights), map_location="cpu")  # floats: torch 1.13 needs the shim
    assert state["epoch"] == 2 and state["global_step"] == 4
    model = build_training_model("alex", 0.125)
    load_checkpoint(model, out / "model.pth")
    assert torch.equal(
        model.state_dict()["rpn_head.loc.head.3.bias"], read_state_dict(weights)["rpn_head.loc.head.3.bias"]
    )

    # Resume after epoch 1 reproduces epoch 2 exactly (data depend only on seed/epoch/index).
    final_uninterrupted = read_state_dict(weights)
    for path in (weights, state_path_for(weights)):
        path.unlink()
    resumed = Trainer(config)
    resumed.fit(resume=out)
    assert resumed.start_epoch == 1
    final_resumed = read_state_dict(weights)
    assert all(
        torch.allclose(final_uninterrupted[k].float(), final_resumed[k].float(), atol=1e-6) for k in final_resumed
    )
    epochs = (out / "epochs.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in epochs[1:]] == ["1", "2"]

    # Continue for a third epoch.
    longer = Trainer(config.replace(epochs=3))
    longer.fit(resume=out)
    assert longer.start_epoch == 2 and (out / "checkpoints" / "epoch_0003.pth").is_file()


def test_preset_checkpoint_loads_into_build_tracker(sequences_dir, tmp_path):
    out = tmp_path / "alex"
    config = tiny_config(sequences_dir, out, samples_per_epoch=1, batch_size=1, epochs=1, width_mult=None)
    assert output_score_size(build_model("alex"), 127, 159) == 5
    Trainer(config).fit()
    assert_tracks_a_flat_frame("alex", out / "model.pth")


def test_thinner_checkpoint_loads_by_its_model_name(sequences_dir, tmp_path):
    out = tmp_path / "thin"
    config = tiny_config(sequences_dir, out, samples_per_epoch=1, batch_size=1, epochs=1)
    assert config.tracker_model_name == f"alex-w{TINY['width_mult']:g}"
    Trainer(config).fit()
    assert_tracks_a_flat_frame(config.tracker_model_name, out / "model.pth")
    with pytest.raises(CheckpointError, match="shape"):
        build_tracker("alex", out / "model.pth", device="cpu")


@pytest.mark.slow
def test_fit_with_a_worker_process(sequences_dir, tmp_path):
    """Data loading in a spawned worker (pickled dataset, fresh interpreter) gives the same run."""
    config = tiny_config(sequences_dir, tmp_path / "spawned", samples_per_epoch=4, batch_size=2, epochs=1, workers=1)
    result = Trainer(config).fit()
    assert result.epochs_completed == 1 and np.isfinite(float(result.epoch_rows[-1]["loss"]))


def test_set_backbone_trainable_rejects_unknown_layers():
    model = build_training_model("alex", 0.125)
    with pytest.raises(ValueError, match="conv3"):
        set_backbone_trainable(model, ("layer9",))
    set_backbone_trainable(model, ())
    set_train_mode(model)
    assert not model.backbone.features[1].training and model.rpn_head.training


@pytest.mark.slow
def test_train_cli(sequences_dir, tmp_path, capsys):
    from siamrpnpp_ros import train

    out = tmp_path / "cli"
    common = [
        *TINY_OPTIONS,
        "--data", f"sequences:{sequences_dir}",
        "--out", str(out),
        "--samples-per-epoch", "2", "--batch-size", "2",
        "--shift", "8",
    ]  # fmt: skip
    assert train.main(common + ["--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "shift: 8.0" in printed and "kind: sequences" in printed
    (tmp_path / "printed.yaml").write_text(printed)
    assert load_train_config(tmp_path / "printed.yaml").search_augment.shift == 8.0
    assert train.main(common + ["--epochs", "1"]) == 0
    assert f"weights={out / 'model.pth'} model=alex-w0.125 epochs=1" in capsys.readouterr().out
    assert train.main(common + ["--epochs", "2", "--resume"]) == 0  # continues in --out
    assert (out / "checkpoints" / "epoch_0002.pth").is_file()
    assert train.main(["--data", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_default_model_recipe_keeps_the_test_set_for_the_report(tmp_path, capsys):
    """The recipe end to end at toy size: training and validation data come from the Debian
    training material (validation from its own backgrounds), the test sequences only from
    the test domain's photos, and the report scores the chosen epoch."""
    import json

    from siamrpnpp_ros.material.debian import DebianDataError
    from siamrpnpp_ros.material.photos import OPENCV_DOC_DATA, find_photos
    from siamrpnpp_ros.training import default_model
    from siamrpnpp_ros.training.sources import build_material

    if "generated" in find_photos().origin:
        pytest.skip("needs real photos (Debian's opencv-doc or scikit-image)")
    try:
        build_material(progress=False)
    except DebianDataError as exc:
        pytest.skip(f"Debian data packages not available: {exc}")
    out = tmp_path / "recipe"
    argv = [
        *TINY_OPTIONS,
        "--out", str(out),
        "--train-sequences", "2", "--val-sequences", "1", "--test-sequences", "1", "--frames", "8",
        "--epochs", "1", "--samples-per-epoch", "4", "--batch-size", "2",
        "--baselines",
    ]  # fmt: skip
    assert default_model.main(argv) == 0
    material = json.loads((out / "data" / "material.json").read_text())
    assert set(material["packages"]) >= {"tuxpaint-stamps-default", "plasma-workspace-wallpapers"}
    origins = {
        name: json.loads((out / "data" / name / "benchmark.json").read_text())["photos"]
        for name in ("train", "val", "test")
    }
    assert str(out / "data" / "train_photos") in json.dumps(origins["train"])
    assert str(out / "data" / "val_photos") in json.dumps(origins["val"])
    assert "train_photos" not in json.dumps(origins["test"]) and "val_photos" not in json.dumps(origins["test"])
    train_photos = {p.name for p in (out / "data" / "train_photos").iterdir()}
    val_photos = {p.name for p in (out / "data" / "val_photos").iterdir()}
    assert train_photos and val_photos and not train_photos & val_photos
    assert not any(p.startswith(OPENCV_DOC_DATA.name) for p in train_photos | val_photos)
    assert [p.name for p in (out / "data" / "val").iterdir() if p.is_dir()] == ["val000"]
    assert (out / "best.pth").is_file() and (out / "report").is_dir()
    printed = capsys.readouterr().out
    assert "alex-w0.125" in printed and "default_alex-w0.125.pth" in printed
