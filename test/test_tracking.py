"""Tracker building blocks: crops, anchors, config/YAML, input validation, long-term states, devices."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from siamrpnpp_ros.tracking import (
    TRACKER_PRESETS,
    LongTermTracker,
    SiamRPNTracker,
    TrackerConfig,
    anchor_shapes,
    build_tracker,
    channel_average,
    clip_state,
    cosine_window,
    generate_anchors,
    load_tracker_config,
    padding_color,
    preset_for,
    select_device,
    square_crop,
    square_crop_tensor,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS = ("r50", "mobilev2", "alex")


pytestmark = pytest.mark.usefixtures("two_torch_threads")


class TemplateMatchingNet(nn.Module):
    """A tiny real Siamese network with a closed-form answer, for testing tracker logic.

    Both crops are average-pooled in 8x8 cells (the anchor stride); the foreground logit at each
    score-map cell is ``gain * (NCC - threshold)`` where NCC is the normalised cross-correlation
    of the pooled search window with the pooled template. Background logits are 0 and box
    regressions 0, so the best cell is where the template matches and the score says how well.
    Output sizes follow SiamRPN's: S = (I - 127) // 8 + 1 (base size 0, as alex's config).
    """

    def __init__(self, anchor_count: int = 5, cell: int = 8, gain: float = 30.0, threshold: float = 0.6):
        super().__init__()
        self.anchor_count = anchor_count
        self.cell = cell
        self.gain = gain
        self.threshold = threshold
        self.flat_floor = 25.0

    def template(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pooled = F.avg_pool2d(z.float(), self.cell)
        pooled = pooled - pooled.mean()
        return (pooled / pooled.norm().clamp_min(1e-6),)

    def forward(self, x: torch.Tensor, kernels: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        (kernel,) = kernels
        if kernel.shape[0] > 1:  # a kernel per search crop, like the real heads take them
            outputs = [self(x[i : i + 1], (kernel[i : i + 1],)) for i in range(x.shape[0])]
            return torch.cat([cls for cls, _ in outputs]), torch.cat([loc for _, loc in outputs])
        pooled = F.avg_pool2d(x.float(), self.cell)
        ones = torch.ones_like(kernel)
        count = kernel[0].numel()
        dot = F.conv2d(pooled, kernel)
        window_sum = F.conv2d(pooled, ones)
        window_sq = F.conv2d(pooled * pooled, ones)
        variance = (window_sq - window_sum * window_sum / count).clamp_min(0.0)
        # The floor (5 grey levels per cell) keeps flat windows, e.g. all padding, at NCC ~ 0.
        ncc = dot / (variance + self.flat_floor * count).sqrt()
        logit = self.gain * (ncc - self.threshold)
        a = self.anchor_count
        cls = torch.cat([torch.zeros_like(logit).expand(-1, a, -1, -1), logit.expand(-1, a, -1, -1)], dim=1)
        loc = torch.zeros(x.shape[0], 4 * a, *logit.shape[-2:])
        return cls, loc


class SyntheticScene:
    """Flat grey background with a 64x64 block-textured target; ``frame(pos)`` places it at top-left ``pos``."""

    def __init__(self, seed: int = 0, width: int = 480, height: int = 360, target_side: int = 64):
        self.rng = np.random.default_rng(seed)
        self.background = np.full((height, width, 3), 110, np.uint8)
        cells = self.rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
        self.texture = cv2.resize(cells, (target_side, target_side), interpolation=cv2.INTER_NEAREST)
        self.side = target_side

    def frame(self, pos: tuple[int, int] | None) -> np.ndarray:
        frame = self.background.astype(np.int16)
        if pos is not None:
            x, y = pos
            frame[y : y + self.side, x : x + self.side] = self.texture
        frame += self.rng.integers(-3, 4, frame.shape, dtype=np.int16)
        return np.clip(frame, 0, 255).astype(np.uint8)


def _read_parity_frames(parity_video: Path, count: int) -> list[np.ndarray]:
    return [cv2.imread(str(parity_video / "img" / f"{i + 1:04d}.png")) for i in range(count)]


def _first_groundtruth(parity_video: Path) -> tuple[float, ...]:
    return tuple(np.loadtxt(parity_video / "groundtruth.txt", delimiter=",", ndmin=2)[0])


# --------------------------------------------------------------------------- crops
def _reference_crop(frame, center, crop_side, output_side, average):
    """get_subwindow as FACTS.md section 4 describes it: pad the whole frame, then slice."""
    height, width = frame.shape[:2]
    c = (crop_side + 1) / 2
    xmin = math.floor(center[0] - c + 0.5)
    ymin = math.floor(center[1] - c + 0.5)
    xmax, ymax = xmin + crop_side - 1, ymin + crop_side - 1
    left, top = max(0, -xmin), max(0, -ymin)
    right, bottom = max(0, xmax - width + 1), max(0, ymax - height + 1)
    if left or top or right or bottom:
        canvas = np.zeros((height + top + bottom, width + left + right, 3), np.uint8)
        canvas[:, :] = average  # numpy truncates the float mean
        canvas[top : top + height, left : left + width] = frame
        patch = canvas[ymin + top : ymax + top + 1, xmin + left : xmax + left + 1]
    else:
        patch = frame[ymin : ymax + 1, xmin : xmax + 1]
    if crop_side != output_side:
        patch = cv2.resize(patch, (output_side, output_side))
    return patch


def test_square_crop_matches_padded_canvas_reference():
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    average = channel_average(frame)
    pad = padding_color(average)
    cases = [
        ((65.0, 48.0), 41, 127),  # inside
        ((3.2, 5.7), 60, 127),  # off the top-left
        ((128.9, 95.1), 77, 255),  # off the bottom-right
        ((65.5, 48.5), 300, 255),  # bigger than the frame
        ((-80.0, -60.0), 50, 127),  # wholly outside
        ((400.0, 20.0), 64, 64),  # wholly outside, no resize
        ((60.0, 40.0), 31, 31),  # inside, no resize
        ((0.49, 96.5), 10, 127),  # rounding of the window origin
    ]
    for center, side, out in cases:
        expected = _reference_crop(frame, center, side, out, average)
        got = square_crop(frame, center, side, out, pad)
        assert got.dtype == np.uint8 and got.shape == (out, out, 3)
        assert np.array_equal(got, expected), f"crop differs for centre {center}, side {side}, output {out}"


def test_a_huge_window_is_scaled_from_the_frame_part_not_built(monkeypatch):
    """Past MAX_WINDOW_BYTES a window reaching outside the frame is not built at frame
    resolution: the frame's part lands in the same place within a pixel, the rest is padding."""
    from siamrpnpp_ros.tracking import crop

    rng = np.random.default_rng(5)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (97, 131, 3), dtype=np.uint8), (0, 0), 3)
    pad = padding_color(channel_average(frame))
    for center, side, out in [((65.5, 48.5), 1500, 127), ((10.0, 90.0), 900, 255), ((-300.0, 40.0), 800, 127)]:
        exact = square_crop(frame, center, side, out, pad)  # 900-1500 px: built, as pysot does
        monkeypatch.setattr(crop, "MAX_WINDOW_BYTES", 1000)
        scaled = square_crop(frame, center, side, out, pad)
        monkeypatch.undo()
        assert scaled.dtype == np.uint8 and scaled.shape == exact.shape
        shown_exact, shown_scaled = np.any(exact != pad, axis=2), np.any(scaled != pad, axis=2)
        if not shown_exact.any():
            assert not shown_scaled.any()
            continue
        for axis in (0, 1):
            lines_exact = np.flatnonzero(shown_exact.any(axis=axis))
            lines_scaled = np.flatnonzero(shown_scaled.any(axis=axis))
            assert abs(int(lines_exact[0]) - int(lines_scaled[0])) <= 1
            assert abs(int(lines_exact[-1]) - int(lines_scaled[-1])) <= 1
        assert np.abs(exact.astype(int) - scaled.astype(int)).mean() < 2.0
    # A window inside the frame is never scaled (nothing to build: a view is resized).
    monkeypatch.setattr(crop, "MAX_WINDOW_BYTES", 1)
    assert np.array_equal(
        square_crop(frame, (65.0, 48.0), 41, 127, pad),
        _reference_crop(frame, (65.0, 48.0), 41, 127, channel_average(frame)),
    )


def test_padding_colour_is_truncated_not_rounded():
    frame = np.zeros((2, 2, 3), np.uint8)
    frame[0, 0] = (255, 3, 2)  # means 63.75, 0.75, 0.5
    assert padding_color(channel_average(frame)).tolist() == [63, 0, 0]


def test_crop_tensor_layout_and_device():
    frame = np.random.default_rng(0).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    tensor = square_crop_tensor(frame, (30.0, 25.0), 20, 20, np.zeros(3, np.uint8), "cpu", torch.float32)
    assert tensor.shape == (1, 3, 20, 20) and tensor.dtype == torch.float32
    patch = frame[15:35, 20:40]  # floor(30 - 10.5 + 0.5) = 20, floor(25 - 10.5 + 0.5) = 15
    assert torch.equal(tensor[0], torch.from_numpy(patch).permute(2, 0, 1).float())


@pytest.mark.parametrize("model", MODELS)
def test_tracker_crops_bit_identical_to_pysot(model, parity_video, parity_dump):
    """Frame 0 template crop at the init box and frame-1 search crop from the post-init state."""
    dump = parity_dump(model)
    frame0, frame1 = _read_parity_frames(parity_video, 2)
    box = _first_groundtruth(parity_video)
    # The crops do not depend on the network; a cheap one gives the tracker its state.
    tracker = SiamRPNTracker(TemplateMatchingNet(), TRACKER_PRESETS[model])
    z_crop = tracker.template_crop(frame0, box).numpy()
    assert z_crop.dtype == np.float32 and z_crop.shape == dump["z_crop"].shape
    assert np.array_equal(z_crop, dump["z_crop"]), f"{model}: template crop differs from pysot"
    tracker.init(frame0, box)
    x_crop = tracker.search_crop(frame1).numpy()
    assert x_crop.shape == dump["x_crop_f1"].shape
    assert np.array_equal(x_crop, dump["x_crop_f1"]), f"{model}: frame-1 search crop differs from pysot"


# ------------------------------------------------------------------------- anchors
def test_anchor_shapes_are_pysots():
    shapes = anchor_shapes(8, (0.33, 0.5, 1, 2, 3), (8,))
    assert shapes.dtype == np.float32
    assert shapes.tolist() == [[104, 32], [88, 40], [64, 64], [40, 80], [32, 96]]


@pytest.mark.parametrize("score_size, extent", [(25, 96), (21, 80), (17, 64)])
def test_anchor_grid_layout(score_size, extent):
    anchors = generate_anchors(score_size, 8, (0.33, 0.5, 1, 2, 3), (8,))
    shapes = anchor_shapes(8, (0.33, 0.5, 1, 2, 3), (8,))
    assert anchors.dtype == np.float32 and anchors.shape == (5 * score_size * score_size, 4)
    grid = anchors.reshape(5, score_size, score_size, 4)
    offsets = np.arange(-extent, extent + 1, 8, dtype=np.float32)
    for a in range(5):
        # index a*S*S + i*S + j: x varies with the column j, y with the row i
        assert np.array_equal(grid[a, :, :, 0], np.broadcast_to(offsets[None, :], (score_size, score_size)))
        assert np.array_equal(grid[a, :, :, 1], np.broadcast_to(offsets[:, None], (score_size, score_size)))
        assert np.all(grid[a, :, :, 2] == shapes[a, 0]) and np.all(grid[a, :, :, 3] == shapes[a, 1])
    assert anchors[0].tolist() == [-extent, -extent, 104, 32]
    assert anchors[2 * score_size * score_size + score_size + 3].tolist() == [-extent + 24, -extent + 8, 64, 64]


def test_cosine_window():
    window = cosine_window(25, 5)
    assert window.dtype == np.float64 and window.shape == (5 * 625,)
    hann = np.hanning(25)
    assert np.array_equal(window[:625], np.outer(hann, hann).ravel())
    assert np.array_equal(window[625 * 4 :], window[:625])
    assert window[0] == 0.0 and window[12 * 25 + 12] == 1.0


# -------------------------------------------------------------------------- config
FACTS_TABLE = {
    "r50": dict(penalty_k=0.05, window_influence=0.42, lr=0.38, instance_size=255, base_size=8, score=25),
    "mobilev2": dict(penalty_k=0.04, window_influence=0.40, lr=0.50, instance_size=255, base_size=8, score=25),
    "alex": dict(penalty_k=0.16, window_influence=0.40, lr=0.30, instance_size=287, base_size=0, score=21),
}


@pytest.mark.parametrize("model", MODELS)
def test_presets_are_pysots(model):
    cfg = TRACKER_PRESETS[model]
    facts = FACTS_TABLE[model]
    for key in ("penalty_k", "window_influence", "lr", "instance_size", "base_size"):
        assert getattr(cfg, key) == facts[key], key
    assert (cfg.exemplar_size, cfg.context_amount, cfg.anchor_stride) == (127, 0.5, 8)
    assert cfg.anchor_ratios == (0.33, 0.5, 1.0, 2.0, 3.0) and cfg.anchor_scales == (8.0,)
    assert (cfg.lost_instance_size, cfg.confidence_low, cfg.confidence_high) == (831, 0.85, 0.998)
    assert cfg.score_size() == facts["score"]
    assert cfg.score_size(cfg.lost_instance_size) == (831 - 127) // 8 + 1 + facts["base_size"]
    assert cfg.anchor_count == 5


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TRACKER_PRESETS["r50"].lr = 0.1  # type: ignore[misc]
    with pytest.raises(TypeError):
        TRACKER_PRESETS["r50"] = TRACKER_PRESETS["alex"]  # type: ignore[index]


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(lr=-0.1), "lr"),
        (dict(lr=1.5), "lr"),
        (dict(window_influence=1.2), "window_influence"),
        (dict(window_influence=-0.01), "window_influence"),
        (dict(penalty_k=-1.0), "penalty_k"),
        (dict(instance_size=100), "instance_size"),
        (dict(lost_instance_size=200), "lost_instance_size"),
        (dict(confidence_low=0.99, confidence_high=0.9), "confidence_low"),
        (dict(anchor_ratios=()), "anchor_ratios"),
        (dict(anchor_scales=(8.0, -1.0)), "anchor_scales"),
        (dict(anchor_stride=0), "anchor_stride"),
        (dict(base_size=-1), "base_size"),
        (dict(instance_size=255.5), "instance_size"),
        (dict(exemplar_size=True), "exemplar_size"),
        (dict(lr="fast"), "lr"),
        (dict(penalty_k=float("nan")), "penalty_k"),
    ],
)
def test_config_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        TRACKER_PRESETS["r50"].replace(**changes)


def test_config_coerces_yaml_numbers():
    cfg = TRACKER_PRESETS["alex"].replace(instance_size=287.0, lr=1, anchor_scales=[8])
    assert isinstance(cfg.instance_size, int) and isinstance(cfg.lr, float)
    assert cfg.anchor_scales == (8.0,)


def test_load_ros_layout(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(
        "/**:\n"
        "  ros__parameters:\n"
        "    model: mobilev2\n"
        "    weights: ''\n"
        "    device: auto\n"
        "    image_topic: /camera/image_raw\n"  # node-only key: ignored here
        "    tracker:\n"
        "      penalty_k: 0.07\n"
        "      lr: 0.45\n"
    )
    model, cfg = load_tracker_config(path)
    assert model == "mobilev2"
    assert cfg == TRACKER_PRESETS["mobilev2"].replace(penalty_k=0.07, lr=0.45)


def test_load_named_node_and_dotted_keys():
    document = {"siamrpnpp_tracker": {"ros__parameters": {"model": "alex", "tracker.window_influence": 0.3}}}
    model, cfg = load_tracker_config(document)
    assert model == "alex" and cfg == TRACKER_PRESETS["alex"].replace(window_influence=0.3)


def test_load_plain_mapping_and_model_argument():
    model, cfg = load_tracker_config({"tracker": {"lr": 0.2}}, model="r50")
    assert model == "r50" and cfg == TRACKER_PRESETS["r50"].replace(lr=0.2)
    model, cfg = load_tracker_config({"model": "alex"})
    assert model == "alex" and cfg == TRACKER_PRESETS["alex"]


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="penalty_kk.*window_size|window_size.*penalty_kk"):
        load_tracker_config({"model": "r50", "tracker": {"penalty_kk": 1, "window_size": 3}})
    with pytest.raises(ValueError, match="no model"):
        load_tracker_config({"tracker": {"lr": 0.2}})
    with pytest.raises(ValueError, match="'r50'.*'alex'"):
        load_tracker_config({"model": "r50"}, model="alex")
    with pytest.raises(ValueError, match="unknown model"):
        load_tracker_config({"model": "vgg"})
    with pytest.raises(ValueError, match="lr"):
        load_tracker_config({"model": "r50", "tracker": {"lr": -1}})
    with pytest.raises(FileNotFoundError):
        load_tracker_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ValueError, match="YAML"):
        load_tracker_config(bad)


@pytest.mark.parametrize(
    "filename, model",
    [
        ("desktop_r50.yaml", "r50"),
        ("jetson_mobilenet.yaml", "mobilev2"),
        ("cpu_alex.yaml", "alex"),
        ("default_model.yaml", "alex-w0.25"),
    ],
)
def test_shipped_config_files(filename, model):
    import yaml

    path = REPO_ROOT / "config" / filename
    loaded_model, cfg = load_tracker_config(path)
    assert loaded_model == model
    assert cfg == preset_for(model)
    # Every tracker key is spelled out in the file, not left to the preset fallback.
    document = yaml.safe_load(path.read_text())
    params = document["/**"]["ros__parameters"]
    assert set(params["tracker"]) == {f.name for f in dataclasses.fields(TrackerConfig)}


# ---------------------------------------------------------------- input validation
@pytest.fixture
def matcher_tracker() -> SiamRPNTracker:
    return SiamRPNTracker(TemplateMatchingNet(), TRACKER_PRESETS["alex"])


def test_frame_validation(matcher_tracker):
    good = np.zeros((48, 64, 3), np.uint8)
    bad_frames = [
        (np.zeros((48, 64, 3), np.float32), "float32"),
        (np.zeros((48, 64), np.uint8), r"\(48, 64\)"),
        (np.zeros((48, 64, 4), np.uint8), r"\(48, 64, 4\)"),
        ([[0, 0, 0]], "list"),
    ]
    for frame, detail in bad_frames:
        with pytest.raises(ValueError, match=detail):
            matcher_tracker.init(frame, (10, 10, 20, 20))
    matcher_tracker.init(good, (10, 10, 20, 20))
    with pytest.raises(ValueError, match="uint8"):
        matcher_tracker.track(np.zeros((48, 64, 3), np.int32))


def test_init_box_validation(matcher_tracker):
    frame = np.zeros((48, 64, 3), np.uint8)
    for box, detail in [
        ((10, 10, 0, 20), "positive width"),
        ((10, 10, 20, -5), "positive width"),
        ((float("nan"), 10, 20, 20), "finite"),
        ((10, 10, float("inf"), 20), "finite"),
        ((64, 10, 20, 20), "wholly outside"),
        ((-30, 10, 30, 20), "wholly outside"),
        ((10, -25, 20, 25), "wholly outside"),
        ((10, 10, 20), "4 numbers"),
        ("abcd", "4 numbers"),
    ]:
        with pytest.raises(ValueError, match=detail):
            matcher_tracker.init(frame, box)
        assert not matcher_tracker.is_initialized
    matcher_tracker.init(frame, (-10, -10, 20, 20))  # partly outside is allowed, as in pysot
    assert matcher_tracker.is_initialized


def test_track_before_init_and_reset(matcher_tracker):
    frame = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(RuntimeError, match="init"):
        matcher_tracker.track(frame)
    matcher_tracker.init(frame, (10, 10, 20, 20))
    assert matcher_tracker.center == (19.5, 19.5) and matcher_tracker.size == (20.0, 20.0)
    matcher_tracker.track(frame)
    matcher_tracker.reset()
    assert not matcher_tracker.is_initialized
    with pytest.raises(RuntimeError, match="init"):
        matcher_tracker.track(frame)


def test_config_that_does_not_fit_the_model_is_reported():
    # r50's config expects 25x25 maps from a 255 crop; this network gives 17x17.
    tracker = SiamRPNTracker(TemplateMatchingNet(), TRACKER_PRESETS["r50"])
    frame = SyntheticScene().frame((100, 100))
    tracker.init(frame, (100, 100, 64, 64))
    with pytest.raises(RuntimeError, match="does not fit"):
        tracker.track(frame)


def test_clip_state_uses_frame_size_bounds():
    assert clip_state(-5.0, 500.0, 3.0, 900.0, 640, 480) == (0.0, 480.0, 10.0, 480.0)
    assert clip_state(700.0, -1.0, 1000.0, 5.0, 640, 480) == (640.0, 0.0, 640.0, 10.0)
    assert clip_state(12.5, 7.25, 30.0, 40.0, 640, 480) == (12.5, 7.25, 30.0, 40.0)


# ------------------------------------------------------------- tracking behaviour
def _near(box, pos, side=64, tol=8.0):
    x, y, w, h = box
    return abs(x + w / 2 - (pos[0] + side / 2)) <= tol and abs(y + h / 2 - (pos[1] + side / 2)) <= tol


def test_short_term_tracker_follows_a_moving_target():
    scene = SyntheticScene(seed=1)
    tracker = SiamRPNTracker(TemplateMatchingNet(), TRACKER_PRESETS["alex"])
    start = (100, 100)
    tracker.init(scene.frame(start), (*start, 64, 64))
    for step in range(1, 9):
        pos = (100 + 12 * step, 100 + 7 * step)
        result = tracker.track(scene.frame(pos))
        assert _near(result.box, pos), f"step {step}: box {result.box} not on target at {pos}"
        assert result.score > 0.9 and not result.search_wide and not result.lost
        assert result.center == pytest.approx((result.box[0] + result.box[2] / 2, result.box[1] + result.box[3] / 2))


def test_long_term_tracker_widens_search_when_lost_and_recovers():
    scene = SyntheticScene(seed=2)
    cfg = TRACKER_PRESETS["alex"].replace(lost_search="wide")  # pysot's SiamRPNLTTracker
    tracker = LongTermTracker(TemplateMatchingNet(), cfg)
    start = (100, 100)
    tracker.init(scene.frame(start), (*start, 64, 64))
    assert not tracker.is_lost

    result = tracker.track(scene.frame((104, 103)))
    assert result.score > cfg.confidence_high and not result.search_wide and not result.lost
    assert _near(result.box, (104, 103))
    held_center, held_size = tracker.center, tracker.size

    # Target gone: low score -> state held, lost; the next searches are wide.
    result = tracker.track(scene.frame(None))
    assert result.score < cfg.confidence_low
    assert not result.search_wide and result.lost and tracker.is_lost
    assert tracker.center == held_center and tracker.size == held_size
    for _ in range(2):
        result = tracker.track(scene.frame(None))
        assert result.search_wide and result.lost
        assert tracker.center == held_center and tracker.size == held_size

    # Target back far away: outside the normal search window, inside the wide one.
    reappear = (330, 240)
    normal_side = 2 * max(held_size) * cfg.instance_size / cfg.exemplar_size  # >= the actual window side
    assert abs(reappear[0] + 32 - held_center[0]) > normal_side / 2
    result = tracker.track(scene.frame(reappear))
    assert result.search_wide and not result.lost and not tracker.is_lost
    assert result.score > cfg.confidence_high
    assert _near(result.box, reappear)
    result = tracker.track(scene.frame((334, 243)))
    assert not result.search_wide and not result.lost
    assert _near(result.box, (334, 243))

    # The short-term tracker on the same events never finds it again.
    short = SiamRPNTracker(TemplateMatchingNet(), cfg)
    short.init(scene.frame(start), (*start, 64, 64))
    for pos in [(104, 103), None, None, None, reappear]:
        result = short.track(scene.frame(pos))
    assert not _near(result.box, reappear, tol=40)


def test_tiled_lost_search_costs_one_batched_pass_and_finds_the_target_anywhere():
    scene = SyntheticScene(seed=2, width=640, height=480)
    cfg = TRACKER_PRESETS["alex"]
    assert cfg.lost_search == "tiles"
    per_frame = cfg.lost_tiles_per_frame
    assert per_frame > 1
    tracker = LongTermTracker(TemplateMatchingNet(), cfg)
    crops, passes = [], []
    original_crop, original_model = tracker.search_crop, tracker._run_model

    def recording_crop(frame, instance_size=None, center=None):
        crop = original_crop(frame, instance_size, center)
        crops.append((crop.shape[-1], center))
        return crop

    def recording_model(search_crop, kernels=None):
        passes.append(search_crop.shape[0])
        return original_model(search_crop, kernels)

    tracker.search_crop = recording_crop
    tracker._run_model = recording_model
    tracker.init(scene.frame((100, 100)), (100, 100, 64, 64))
    result = tracker.track(scene.frame((104, 103)))
    assert not result.lost and _near(result.box, (104, 103))
    held_center, held_size = tracker.center, tracker.size

    result = tracker.track(scene.frame(None))  # gone: held, lost
    assert result.lost and not result.search_wide
    tiles = tracker.tile_centers(640, 480)
    assert len(tiles) > 2 * per_frame, "a 64 px target needs many tiles to cover a 640x480 frame"
    distances = [math.dist(tile, held_center) for tile in tiles]
    assert distances == sorted(distances), "nearest tiles first"
    # While the target is away every frame is one network pass over lost_tiles_per_frame
    # normal-size crops: the tiles in turn, from the one around the held state, then again.
    crops.clear()
    passes.clear()
    frames = math.ceil(len(tiles) / per_frame) + 1
    for _ in range(frames):
        result = tracker.track(scene.frame(None))
        assert result.search_wide and result.lost
        assert tracker.center == held_center and tracker.size == held_size
    assert passes == [per_frame] * frames
    assert [size for size, _ in crops] == [cfg.instance_size] * (frames * per_frame)
    assert [center for _, center in crops] == [tiles[i % len(tiles)] for i in range(frames * per_frame)]

    # Back in the far corner, outside the normal window around the held state: some tile finds it
    # within one round of the tiles, and the normal search follows it from there.
    reappear = (540, 380)
    normal_side = 2 * max(held_size) * cfg.instance_size / cfg.exemplar_size
    assert abs(reappear[0] + 32 - held_center[0]) > normal_side / 2
    for _ in range(frames):
        result = tracker.track(scene.frame(reappear))
        if not result.lost:
            break
    assert not result.lost and result.search_wide and result.presence >= cfg.confidence_high
    assert _near(result.box, reappear), f"found at {result.box}"
    result = tracker.track(scene.frame((536, 377)))
    assert not result.search_wide and not result.lost and _near(result.box, (536, 377))


def test_lost_search_goes_where_the_target_colours_appear():
    # One tile per lost frame: the tile around the held state first, then the one where the
    # target's colours have gathered, however far down the nearest-first order it is.
    scene = SyntheticScene(seed=2, width=640, height=480)
    cfg = TRACKER_PRESETS["alex"].replace(confidence_low=0.5, confidence_high=0.9, lost_tiles_per_frame=1)
    tracker = LongTermTracker(TemplateMatchingNet(), cfg)
    tracker.init(scene.frame((100, 100)), (100, 100, 64, 64))
    assert tracker.track(scene.frame(None)).lost
    tiles = tracker.tile_centers(640, 480)
    reappear = (540, 380)
    nearest = min(range(len(tiles)), key=lambda i: math.dist(tiles[i], (reappear[0] + 32, reappear[1] + 32)))
    assert nearest > 10, "in the nearest-first order that tile would come much later"
    searched = []
    for _ in range(len(tiles)):
        result = tracker.track(scene.frame(reappear))
        searched.append(result)
        if not result.lost:
            break
    assert len(searched) == 2 and _near(result.box, reappear), f"found after {len(searched)} lost frames"


def test_one_tile_per_frame_searches_like_several_at_a_time():
    # lost_tiles_per_frame only batches the same searches: one at a time visits the same tiles in
    # the same order and finds the target on the same tile, just later.
    scene = SyntheticScene(seed=2, width=640, height=480)
    found = {}
    for per_frame in (1, 3):
        cfg = TRACKER_PRESETS["alex"].replace(confidence_low=0.5, confidence_high=0.9, lost_tiles_per_frame=per_frame)
        tracker = LongTermTracker(TemplateMatchingNet(), cfg)
        centers = []
        original_crop = tracker.search_crop

        def recording_crop(frame, instance_size=None, center=None, record=centers, crop=original_crop):
            record.append(center)
            return crop(frame, instance_size, center)

        tracker.init(scene.frame((100, 100)), (100, 100, 64, 64))
        tracker.track(scene.frame(None))
        tracker.search_crop = recording_crop
        frame_count = 0
        while frame_count < 100:
            frame_count += 1
            result = tracker.track(scene.frame((540, 380)))
            if not result.lost:
                break
        found[per_frame] = (frame_count, result.box, centers)
    one, three = found[1], found[3]
    assert one[0] > three[0] == math.ceil(one[0] / 3)
    assert one[1] == pytest.approx(three[1])
    assert three[2][: len(one[2])] == one[2]


def test_a_tile_below_confidence_high_does_not_move_a_lost_target():
    # A look-alike scoring between confidence_low and confidence_high must not take the track over.
    scene = SyntheticScene(seed=4, width=640, height=480)
    net = TemplateMatchingNet()
    cfg = TRACKER_PRESETS["alex"].replace(confidence_low=0.5, confidence_high=1.0)
    tracker = LongTermTracker(net, cfg)
    tracker.init(scene.frame((100, 100)), (100, 100, 64, 64))
    tracker.track(scene.frame(None))
    held = tracker.center
    tiles = tracker.tile_centers(640, 480)
    for _ in range(2 * len(tiles)):
        result = tracker.track(scene.frame((400, 300)))  # scores ~1 but never reaches 1.0 exactly
        assert result.lost and tracker.center == held


def test_long_term_keeps_the_unclipped_state():
    # pysot's LT tracker stores the state before clipping; only the returned box is clipped.
    scene = SyntheticScene(seed=3)
    tracker = LongTermTracker(
        TemplateMatchingNet(),
        TRACKER_PRESETS["alex"].replace(confidence_low=1.0, confidence_high=1.0, lost_search="wide"),
    )
    tracker.init(scene.frame((0, 0)), (-20.0, -20.0, 64, 64))
    result = tracker.track(scene.frame((0, 0)))  # score < 1.0 -> held
    assert tracker.center == (11.5, 11.5) and tracker.size == (64.0, 64.0)
    assert result.box == (11.5 - 32, 11.5 - 32, 64.0, 64.0)
    assert result.lost and tracker.is_lost


def _drifting_outputs(config, score: float, size_factor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """What a network says about a search when every anchor scores ``score`` and predicts a box
    ``size_factor`` times its own size, centred on the anchor (pysot's cls/loc layouts)."""
    anchors, side = config.anchor_count, config.score_size()
    cls = torch.zeros(1, 2 * anchors, side, side)
    cls[:, anchors:] = math.log(score / (1.0 - score))  # foreground logits; background 0
    loc = torch.zeros(1, 4 * anchors, side, side)
    loc[:, 2 * anchors :] = math.log(size_factor)  # dw, dh
    return cls, loc


@pytest.mark.parametrize("lost_search", ["tiles", "wide"])
def test_a_drifted_state_is_bounded_and_a_loss_goes_back_to_the_last_confident_size(lost_search):
    # The soak's failure: presence sinks while the box grows past the target; the target is then
    # lost and, searched for at that size, never found again. Tiles keep the state in the frame and
    # look at the last confident size; pysot's wide search keeps both as they drifted.
    scene = SyntheticScene(seed=3, width=640, height=480)
    cfg = TRACKER_PRESETS["alex"].replace(lost_search=lost_search)
    tracker = LongTermTracker(TemplateMatchingNet(), cfg)
    frame = scene.frame((300, 200))
    tracker.init(frame, (300, 200, 64, 64))

    def step(score: float, size_factor: float):
        request = tracker.prepare_search(frame)
        return tracker.finish_search(request, *_drifting_outputs(cfg, score, size_factor))

    confident = step(0.999, 1.1)  # presence above confidence_high: a trusted size
    assert not confident.lost and confident.presence >= cfg.confidence_high
    confident_size = tracker.size
    for _ in range(40):  # between confidence_low and confidence_high: tracked, the size grows
        result = step(0.9, 2.0)
        assert not result.lost
    assert result.box[2] == 640.0, "the returned box is clipped to the frame"
    if lost_search == "tiles":
        assert tracker.size[0] <= 640.0 and tracker.size[1] <= 480.0, "the state stays in the frame"
    else:
        assert tracker.size[0] > 640.0, "pysot's state grows past the frame"
    drifted_size = tracker.size

    gone = step(0.1, 1.0)
    assert gone.lost and tracker.is_lost
    if lost_search == "tiles":
        assert tracker.size == confident_size and gone.box[2:] == confident_size
    else:
        assert tracker.size == drifted_size and gone.box[2:] == (640.0, 480.0)


@pytest.mark.slow
def test_long_term_wide_search_runs_the_real_network(parity_checkpoint, parity_video):
    """Forced into the lost state, a real alex network runs on the 831 px crop; the state is held."""
    frames = _read_parity_frames(parity_video, 3)
    box = _first_groundtruth(parity_video)
    cfg = TRACKER_PRESETS["alex"].replace(confidence_low=1.0, confidence_high=1.0, lost_search="wide")
    tracker = build_tracker("alex", parity_checkpoint("alex"), device="cpu", config=cfg, long_term=True)
    assert isinstance(tracker, LongTermTracker)
    tracker.init(frames[0], box)
    center, size = tracker.center, tracker.size
    first = tracker.track(frames[1])
    assert not first.search_wide and first.lost
    assert tracker.search_crop(frames[2], cfg.lost_instance_size).shape == (1, 3, 831, 831)
    second = tracker.track(frames[2])
    assert second.search_wide and second.lost
    assert 0.0 <= second.score <= 1.0
    assert tracker.center == center and tracker.size == size
    assert second.box == pytest.approx((center[0] - size[0] / 2, center[1] - size[1] / 2, *size))


# ----------------------------------------------------------------- device/factory
def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device(torch.device("cpu")) == torch.device("cpu")
    expected_auto = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected_auto
    assert select_device("AUTO").type == expected_auto
    with pytest.raises(ValueError, match="unknown device|unsupported device"):
        select_device("tpu")
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:1"):
            with pytest.raises(ValueError, match="CUDA is not available"):
                select_device(name)
    else:
        with pytest.raises(ValueError, match="CUDA device"):
            select_device(f"cuda:{torch.cuda.device_count()}")


def test_build_tracker_errors(parity_checkpoint, tmp_path):
    from siamrpnpp_ros.models import CheckpointError

    with pytest.raises(FileNotFoundError, match="--weights"):
        build_tracker("alex", None, device="cpu")
    with pytest.raises(FileNotFoundError, match="not found"):
        build_tracker("alex", tmp_path / "nope.pth", device="cpu")
    with pytest.raises(ValueError, match="unknown model"):
        build_tracker("vgg", parity_checkpoint("alex"), device="cpu")
    with pytest.raises(ValueError, match="fp16"):
        build_tracker("alex", parity_checkpoint("alex"), device="cpu", fp16=True)
    with pytest.raises(CheckpointError):
        build_tracker("alex", parity_checkpoint("mobilev2"), device="cpu")
    with pytest.raises(ValueError, match="fp16"):
        SiamRPNTracker(TemplateMatchingNet(), TRACKER_PRESETS["alex"], device="cpu", fp16=True)
    tracker = build_tracker("alex", parity_checkpoint("alex"), device="cpu")
    assert type(tracker) is SiamRPNTracker and tracker.device == torch.device("cpu")
    assert not tracker.model.training


def test_bundled_weights_load_weights_only_under_their_declared_name():
    """The shipped file is a plain pysot-format state dict (no pickled code) whose every tensor
    fits the network its name declares."""
    from siamrpnpp_ros.models import build_model
    from siamrpnpp_ros.tracking.factory import DEFAULT_MODEL, default_weights_path

    path = default_weights_path(DEFAULT_MODEL)
    assert path.name == f"default_{DEFAULT_MODEL}.pth"
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert list(raw) == ["state_dict"]
    network = build_model(DEFAULT_MODEL)
    expected = network.state_dict()
    assert {k: tuple(v.shape) for k, v in raw["state_dict"].items()} == {k: tuple(v.shape) for k, v in expected.items()}
    network.load_state_dict(raw["state_dict"], strict=True)
    assert all(torch.isfinite(v).all() for v in raw["state_dict"].values() if v.is_floating_point())


@pytest.mark.slow
def test_bundled_default_model_follows_generated_targets(tmp_path):
    """The weights shipped in the package load without a path and track real-photo targets
    (an untrained network of the same shape scores ~0.02 AUC here)."""
    from siamrpnpp_ros.eval.builder import BuilderConfig, build_benchmark
    from siamrpnpp_ros.eval.ope import load_benchmark, run_ope, siamrpn_runner
    from siamrpnpp_ros.material.photos import find_photos
    from siamrpnpp_ros.tracking.factory import DEFAULT_MODEL, default_weights_path

    assert default_weights_path(DEFAULT_MODEL).stat().st_size < 25e6
    pool = find_photos()
    if "generated" in pool.origin:
        pytest.skip("needs real photos (Debian's opencv-doc or scikit-image)")
    build_benchmark(
        tmp_path, BuilderConfig(sequences=3, frames=30, seed=123, photo_split="test", attribute_prob=0.0), pool
    )
    summary = run_ope([siamrpn_runner("default", DEFAULT_MODEL, None, "cpu")], load_benchmark(tmp_path))["default"]
    assert summary.auc > 0.15, [round(s.auc, 3) for s in summary.sequences]
