"""Tests for siamrpnpp_ros.models: state-dict contract, pysot parity, checkpoint I/O.

Everything runs the real networks on CPU. The parity tests compare against
pysot's raw head outputs for frame 1 of the golden runs (see
``test/data/parity/README.md``).
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from siamrpnpp_ros.models import (
    MODEL_PRESETS,
    BackboneConfig,
    CheckpointError,
    ModelConfig,
    NeckConfig,
    RPNConfig,
    SiamRPN,
    build_model,
    guess_model_name,
    is_model_name,
    load_checkpoint,
    model_config,
    save_checkpoint,
    split_model_name,
)
from siamrpnpp_ros.models.compat import meta_device

PRESETS = ("r50", "mobilev2", "alex")
PARAM_COUNTS = {"r50": 53_950_624, "mobilev2": 11_150_446, "alex": 6_251_102}
# (score size at the model's default instance size, number of template kernels)
DEFAULT_GEOMETRY = {"r50": (255, 25, 6), "mobilev2": (255, 25, 6), "alex": (287, 21, 2)}
PARITY_ATOL = 1e-4


pytestmark = pytest.mark.usefixtures("two_torch_threads")


@pytest.fixture(scope="module")
def fresh_model():
    """``fresh_model(name)``: an untrained preset model, shared read-only across tests."""
    cache: dict[str, SiamRPN] = {}

    def get(name: str) -> SiamRPN:
        if name not in cache:
            cache[name] = build_model(name)
        return cache[name]

    return get


def _read_keys(path: Path) -> list[tuple[str, str, str]]:
    rows = []
    for line in path.read_text().splitlines():
        key, shape, dtype = line.split("\t")
        rows.append((key, shape, dtype))
    return rows


def _describe(tensor: torch.Tensor) -> tuple[str, str]:
    shape = "x".join(str(d) for d in tensor.shape) if tensor.dim() else "scalar"
    return shape, str(tensor.dtype).replace("torch.", "")


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_state(model: torch.nn.Module, snapshot: dict[str, torch.Tensor]) -> None:
    current = model.state_dict()
    assert current.keys() == snapshot.keys()
    for key, value in snapshot.items():
        assert torch.equal(current[key], value), f"{key} changed"


def _torch_state(parity_state_dict, name: str) -> "OrderedDict[str, torch.Tensor]":
    return OrderedDict((k, torch.from_numpy(np.ascontiguousarray(v))) for k, v in parity_state_dict(name).items())


# --------------------------------------------------------------------------- config


def test_presets_match_facts_table():
    r50, mv2, alex = (model_config(n) for n in PRESETS)
    assert set(MODEL_PRESETS) == set(PRESETS)
    assert r50.backbone == BackboneConfig("resnet50", (2, 3, 4), 1.0)
    assert r50.neck == NeckConfig((512, 1024, 2048), (256, 256, 256), template_crop=7)
    assert r50.rpn.weighted and r50.rpn.multi and r50.rpn.anchor_num == 5
    assert mv2.backbone == BackboneConfig("mobilenetv2", (3, 5, 7), 1.4)
    assert mv2.neck is not None and mv2.neck.in_channels == (44, 134, 448)
    assert not mv2.rpn.weighted and mv2.rpn.multi
    assert alex.backbone.name == "alexnet" and alex.neck is None
    assert not alex.rpn.multi and alex.rpn.in_channels == (256,) and alex.rpn.hidden_channels == (256,)
    assert model_config(r50) is r50
    with pytest.raises(TypeError):
        MODEL_PRESETS["r50"] = alex  # type: ignore[index]  # presets are read-only


def test_unknown_model_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        model_config("resnet18")
    for name in PRESETS:
        assert name in str(info.value)
    with pytest.raises(ValueError):
        build_model("nope")


def test_thinner_variant_names():
    half = model_config("alex-w0.5")
    assert half.name == "alex-w0.5" and half.backbone.width_mult == 0.5
    assert half.rpn.in_channels == half.rpn.hidden_channels == (128,)
    assert half.backbone == dataclasses.replace(MODEL_PRESETS["alex"].backbone, width_mult=0.5)
    # The preset's own width is the preset itself (same checkpoint shapes).
    assert model_config("mobilev2-w1.4") is MODEL_PRESETS["mobilev2"]
    assert split_model_name("mobilev2-w0.75") == ("mobilev2", 0.75)
    assert split_model_name("r50") == ("r50", None)
    for bad in ("r50-w0.5", "alex-w0", "alex-w", "alex-0.5", "Alex", ""):
        assert not is_model_name(bad)
        with pytest.raises(ValueError, match="alex-w0.5"):
            model_config(bad)


def test_inconsistent_config_is_rejected():
    with pytest.raises(ValueError):  # neck levels != backbone levels
        ModelConfig(
            backbone=BackboneConfig("resnet50", (3, 4)),
            neck=NeckConfig((512, 1024, 2048), (256, 256, 256)),
            rpn=RPNConfig(in_channels=(256, 256, 256), hidden_channels=(256, 256, 256)),
        )
    with pytest.raises(ValueError):  # neck channels do not fit the backbone
        SiamRPN(
            ModelConfig(
                backbone=BackboneConfig("resnet50", (2, 3, 4)),
                neck=NeckConfig((512, 1024, 1024), (256, 256, 256)),
                rpn=RPNConfig(in_channels=(256, 256, 256), hidden_channels=(256, 256, 256)),
            )
        )
    with pytest.raises(ValueError):
        BackboneConfig("alexnet", (3,))
    with pytest.raises(ValueError):
        RPNConfig(in_channels=(256,), hidden_channels=(256,), multi=False, weighted=True)


# --------------------------------------------------------------------------- state-dict contract


@pytest.mark.parametrize("name", PRESETS)
def test_state_dict_matches_pysot_keys(name, fresh_model, parity_dir):
    expected = _read_keys(parity_dir / f"keys_{name}.txt")
    actual = [(k, *_describe(v)) for k, v in fresh_model(name).state_dict().items()]
    assert [row[0] for row in actual] == [row[0] for row in expected]  # names and order
    assert actual == expected  # plus shapes and dtypes


@pytest.mark.parametrize("name", PRESETS)
def test_parameter_count(name, fresh_model):
    assert sum(p.numel() for p in fresh_model(name).parameters()) == PARAM_COUNTS[name]


@pytest.mark.parametrize("name", PRESETS)
def test_fresh_model_is_in_eval_mode_with_config(name, fresh_model):
    model = fresh_model(name)
    assert not model.training
    assert model.config is MODEL_PRESETS[name]
    assert (model.neck is None) == (name == "alex")
    assert model.anchor_num == 5


# --------------------------------------------------------------------------- parity with pysot


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "r50" else n for n in PRESETS])
def test_frame1_head_outputs_match_pysot(name, parity_model, parity_dump):
    dump = parity_dump(name)
    model = parity_model(name)
    instance, score, n_kernels = DEFAULT_GEOMETRY[name]
    z = torch.from_numpy(dump["z_crop"])
    x = torch.from_numpy(dump["x_crop_f1"])
    assert tuple(x.shape) == (1, 3, instance, instance)
    with torch.inference_mode():
        kernels = model.template(z)
        cls, loc = model(x, kernels)
    assert isinstance(kernels, tuple) and len(kernels) == n_kernels == len(model.kernel_names)
    assert cls.dtype == loc.dtype == torch.float32
    assert tuple(cls.shape) == (1, 10, score, score) == dump["cls_f1"].shape
    assert tuple(loc.shape) == (1, 20, score, score) == dump["loc_f1"].shape
    np.testing.assert_allclose(cls.numpy(), dump["cls_f1"], rtol=0, atol=PARITY_ATOL)
    np.testing.assert_allclose(loc.numpy(), dump["loc_f1"], rtol=0, atol=PARITY_ATOL)


def test_cached_kernels_are_reusable(parity_model, parity_dump):
    """The template is computed once per target; repeated frames must not alter it."""
    dump = parity_dump("alex")
    model = parity_model("alex")
    with torch.inference_mode():
        kernels = model.template(torch.from_numpy(dump["z_crop"]))
        copies = tuple(k.clone() for k in kernels)
        first = model(torch.from_numpy(dump["x_crop_f1"]), kernels)
        second = model(torch.from_numpy(dump["x_crop_f1"]), kernels)
    for kept, original in zip(kernels, copies, strict=True):
        assert torch.equal(kept, original)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


# --------------------------------------------------------------------------- other sizes and batches


@pytest.mark.parametrize(
    "name, instance, score",
    [("r50", 831, 97), ("mobilev2", 831, 97), ("alex", 831, 89), ("r50", 319, 33), ("alex", 300, 22)],
)
def test_score_size_for_other_search_sizes(name, instance, score):
    # Shapes only: the meta device runs the real module code without computing values.
    with meta_device():
        model = build_model(name)
        kernels = model.template(torch.zeros(1, 3, 127, 127))
        cls, loc = model(torch.zeros(1, 3, instance, instance), kernels)
    assert tuple(cls.shape) == (1, 10, score, score)
    assert tuple(loc.shape) == (1, 20, score, score)


@pytest.mark.slow
def test_wide_search_region_runs(parity_model, parity_dump):
    """The long-term tracker's 831 px search, computed for real."""
    dump = parity_dump("mobilev2")
    model = parity_model("mobilev2")
    z = torch.from_numpy(dump["z_crop"])
    # Widen the golden search crop with replicated borders to 831 x 831.
    x = torch.nn.functional.pad(torch.from_numpy(dump["x_crop_f1"]), (288, 288, 288, 288), mode="replicate")
    with torch.inference_mode():
        cls, loc = model(x, model.template(z))
    assert tuple(cls.shape) == (1, 10, 97, 97) and tuple(loc.shape) == (1, 20, 97, 97)
    assert torch.isfinite(cls).all() and torch.isfinite(loc).all()


@pytest.mark.slow
def test_batch_of_two_matches_single_items(parity_model, parity_dump):
    dump = parity_dump("alex")
    model = parity_model("alex")
    z1 = torch.from_numpy(dump["z_crop"])
    x1 = torch.from_numpy(dump["x_crop_f1"])
    z = torch.cat([z1, z1.flip(-1)])
    x = torch.cat([x1, x1.flip(-2)])
    with torch.inference_mode():
        single_kernels = [model.template(z[i : i + 1]) for i in range(2)]
        cls_b, loc_b = model(x, model.template(z))
        # one template (kernel batch 1) shared by the whole search batch
        shared_cls, shared_loc = model(x, single_kernels[0])
        for i in range(2):
            cls_i, loc_i = model(x[i : i + 1], single_kernels[i])
            torch.testing.assert_close(cls_b[i : i + 1], cls_i, rtol=0, atol=PARITY_ATOL)
            torch.testing.assert_close(loc_b[i : i + 1], loc_i, rtol=0, atol=PARITY_ATOL)
            cls_s, loc_s = model(x[i : i + 1], single_kernels[0])
            torch.testing.assert_close(shared_cls[i : i + 1], cls_s, rtol=0, atol=PARITY_ATOL)
            torch.testing.assert_close(shared_loc[i : i + 1], loc_s, rtol=0, atol=PARITY_ATOL)
    # the two items really differ, so the comparison above is meaningful
    assert (cls_b[0] - cls_b[1]).abs().max() > 1e-2
    torch.testing.assert_close(cls_b[:1], torch.from_numpy(dump["cls_f1"]), rtol=0, atol=PARITY_ATOL)


@pytest.mark.slow
def test_other_dtype_and_float32_inputs(parity_checkpoint, parity_dump):
    """A float64 model takes the float32 crops as they come and stays close to float32."""
    dump = parity_dump("alex")
    model = build_model("alex")
    load_checkpoint(model, parity_checkpoint("alex"))
    model = model.double()
    with torch.inference_mode():
        kernels = model.template(torch.from_numpy(dump["z_crop"]))
        cls, loc = model(torch.from_numpy(dump["x_crop_f1"]), kernels)
    assert kernels[0].dtype == cls.dtype == loc.dtype == torch.float64
    np.testing.assert_allclose(cls.numpy(), dump["cls_f1"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(loc.numpy(), dump["loc_f1"], rtol=0, atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (fp16 on CPU is impractically slow)")
def test_half_precision_on_gpu(parity_checkpoint, parity_dump):
    dump = parity_dump("alex")
    model = build_model("alex")
    load_checkpoint(model, parity_checkpoint("alex"))
    model = model.to("cuda").half()
    with torch.inference_mode():
        cls, loc = model(torch.from_numpy(dump["x_crop_f1"]), model.template(torch.from_numpy(dump["z_crop"])))
    assert cls.dtype == torch.float32 and cls.device.type == "cuda"
    np.testing.assert_allclose(cls.cpu().numpy(), dump["cls_f1"], rtol=0, atol=5e-2)
    np.testing.assert_allclose(loc.cpu().numpy(), dump["loc_f1"], rtol=0, atol=5e-2)


def _half_head_error(model, dump, fold_bn: bool) -> float:
    """Max |cls/loc| difference of ``model`` in half precision against float32 on a parity crop."""
    from siamrpnpp_ros.models.fusion import fuse_for_inference

    z, x = torch.from_numpy(dump["z_crop"]).float(), torch.from_numpy(dump["x_crop_f1"]).float()
    with torch.inference_mode():
        reference = model(x, model.template(z))
        network = fuse_for_inference(model, fold_bn=fold_bn).half()
        try:
            half = network(x.half(), network.template(z.half()))
        except RuntimeError as error:  # older torch has no half convolutions on the CPU
            pytest.skip(f"no float16 convolution on this CPU build: {error}")
    return max(float((r - h.float()).abs().max()) for r, h in zip(reference, half, strict=True))


def test_half_precision_needs_batchnorm_folded_first(parity_dump):
    """Why ``build_tracker(fp16=True)`` folds BatchNorm first: the bundled model takes raw 0-255
    pixels, its first BatchNorm subtracts means in the thousands, and float16 loses that."""
    from siamrpnpp_ros.tracking.factory import DEFAULT_MODEL, default_weights_path

    model = build_model(DEFAULT_MODEL)
    load_checkpoint(model, default_weights_path(DEFAULT_MODEL))
    model.eval()
    dump = parity_dump("alex")
    folded, unfolded = _half_head_error(model, dump, True), _half_head_error(model, dump, False)
    assert folded < 0.05, folded
    assert unfolded > 10 * folded, (unfolded, folded)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (fp16 is refused on the CPU)")
def test_fp16_tracker_runs_folded_batchnorm():
    from siamrpnpp_ros.tracking.factory import DEFAULT_MODEL, build_tracker

    tracker = build_tracker(DEFAULT_MODEL, None, device="cuda", fp16=True)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in tracker.model.modules())
    assert next(tracker.model.parameters()).dtype == torch.float16


# --------------------------------------------------------------------------- checkpoint loading


@pytest.mark.parametrize("layout", ["wrapped", "bare", "module-bare", "module-wrapped", "training"])
def test_checkpoint_layouts_load(layout, parity_state_dict, tmp_path):
    state = _torch_state(parity_state_dict, "alex")
    if layout.startswith("module"):
        state = OrderedDict((f"module.{k}", v) for k, v in state.items())
    if layout.endswith("wrapped"):
        payload: object = {"state_dict": state}
    elif layout == "training":  # what a training loop saves beside the weights
        payload = {"epoch": 3, "state_dict": state, "optimizer": {"state": {}, "param_groups": [{"lr": 0.01}]}}
    else:
        payload = state
    path = tmp_path / "ckpt.pth"
    torch.save(payload, path)
    model = build_model("alex")
    load_checkpoint(model, path)
    for key, value in model.state_dict().items():
        # reshape: the files may hold num_batches_tracked as shape (1,) instead of a scalar
        expected = torch.from_numpy(np.array(parity_state_dict("alex")[key])).reshape(value.shape)
        assert torch.equal(value, expected), key


def test_missing_num_batches_tracked_is_accepted(parity_state_dict, tmp_path):
    state = _torch_state(parity_state_dict, "alex")
    state = OrderedDict((k, v) for k, v in state.items() if not k.endswith("num_batches_tracked"))
    torch.save(state, tmp_path / "old.pth")
    model = build_model("alex")
    load_checkpoint(model, tmp_path / "old.pth")
    assert torch.equal(model.state_dict()["backbone.features.0.weight"], state["backbone.features.0.weight"])


def _expect_refusal(model: SiamRPN, path: Path) -> str:
    """Loading ``path`` must raise CheckpointError naming the file and leave ``model`` as it was."""
    before = _snapshot(model)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(model, path)
    _assert_same_state(model, before)
    message = str(info.value)
    assert str(path) in message
    return message


@pytest.fixture()
def alex_loaded(parity_checkpoint) -> SiamRPN:
    model = build_model("alex")
    load_checkpoint(model, parity_checkpoint("alex"))
    return model


def test_other_models_checkpoint_is_refused(alex_loaded, parity_checkpoint):
    message = _expect_refusal(alex_loaded, parity_checkpoint("mobilev2"))
    assert "model 'alex'" in message
    assert "missing keys" in message and "backbone.features.0.weight" in message
    assert "unexpected keys" in message and "backbone.layer0.0.weight" in message
    assert "'mobilev2' checkpoint" in message


def test_missing_key_is_refused(alex_loaded, parity_state_dict, tmp_path):
    state = _torch_state(parity_state_dict, "alex")
    for value in state.values():  # different values, so a partial load would show
        value.zero_()
    del state["rpn_head.cls.head.3.bias"]
    path = tmp_path / "missing.pth"
    torch.save({"state_dict": state}, path)
    message = _expect_refusal(alex_loaded, path)
    assert "1 missing key (rpn_head.cls.head.3.bias)" in message
    assert "unexpected" not in message


def test_wrong_shape_is_refused(alex_loaded, parity_state_dict, tmp_path):
    state = _torch_state(parity_state_dict, "alex")
    for value in state.values():
        value.zero_()
    state["rpn_head.loc.head.3.weight"] = torch.zeros(25, 256, 1, 1)
    path = tmp_path / "shape.pth"
    torch.save({"state_dict": state}, path)
    message = _expect_refusal(alex_loaded, path)
    assert "1 shape mismatch" in message
    assert "rpn_head.loc.head.3.weight: file 25x256x1x1, model 20x256x1x1" in message


def test_unexpected_key_is_refused(alex_loaded, parity_state_dict, tmp_path):
    state = _torch_state(parity_state_dict, "alex")
    state["rpn_head.extra.weight"] = torch.zeros(3)
    path = tmp_path / "extra.pth"
    torch.save(state, path)
    assert "1 unexpected key (rpn_head.extra.weight)" in _expect_refusal(alex_loaded, path)


def test_corrupt_files_are_refused(alex_loaded, parity_checkpoint, tmp_path):
    random_bytes = tmp_path / "random.pth"
    random_bytes.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert "could not be read" in _expect_refusal(alex_loaded, random_bytes)

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(parity_checkpoint("alex").read_bytes()[:1_000_000])
    assert "could not be read" in _expect_refusal(alex_loaded, truncated)

    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert "empty or truncated" in _expect_refusal(alex_loaded, empty)

    message = _expect_refusal(alex_loaded, tmp_path / "does_not_exist.pth")
    assert "does not exist" in message
    _expect_refusal(alex_loaded, tmp_path)  # a directory


def test_non_state_dict_contents_are_refused(alex_loaded, tmp_path):
    not_tensors = tmp_path / "not_tensors.pth"
    torch.save({"state_dict": {"backbone.features.0.weight": [1.0, 2.0]}}, not_tensors)
    assert "not a state dict" in _expect_refusal(alex_loaded, not_tensors)

    a_list = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], a_list)
    assert "list" in _expect_refusal(alex_loaded, a_list)


class _Payload:
    """Pickles to a call with a visible side effect, like a malicious checkpoint would."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_arbitrary_pickle_objects_are_refused(writer, alex_loaded, parity_state_dict, tmp_path):
    marker = tmp_path / "code_ran"
    payload = {"state_dict": _torch_state(parity_state_dict, "alex"), "extra": _Payload(marker)}
    path = tmp_path / "evil.pth"
    if writer == "torch":
        torch.save(payload, path)
    else:
        buffer = io.BytesIO()
        pickle.dump(payload, buffer, protocol=2)
        path.write_bytes(buffer.getvalue())
    message = _expect_refusal(alex_loaded, path)
    assert "could not be read" in message and "weights_only" in message
    assert not marker.exists(), "the checkpoint's pickled code was executed"


# --------------------------------------------------------------------------- saving and guessing


def test_save_checkpoint_round_trip(alex_loaded, tmp_path, parity_dump):
    path = tmp_path / "sub" / "saved.pth"
    save_checkpoint(alex_loaded, path)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert list(raw) == ["state_dict"] and isinstance(raw["state_dict"], OrderedDict)
    assert list(raw["state_dict"]) == list(alex_loaded.state_dict())
    assert [p.name for p in path.parent.iterdir()] == ["saved.pth"]  # no temporary left behind

    reloaded = build_model("alex")
    load_checkpoint(reloaded, path)
    _assert_same_state(reloaded, _snapshot(alex_loaded))


@pytest.mark.parametrize("name", PRESETS)
def test_guess_model_name(name, parity_state_dict):
    state = _torch_state(parity_state_dict, name)
    assert guess_model_name(state) == name
    assert guess_model_name(OrderedDict((f"module.{k}", v) for k, v in state.items())) == name
    state.popitem(last=False)
    assert guess_model_name(state) is None
