"""Presence: score-map and appearance features, the presence model, its calibration, and what follows it."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from siamrpnpp_ros.tracking.presence import (
    RAW_SCORE_WEIGHTS,
    PresenceFeatures,
    presence_features,
    presence_from_features,
)

SAME_LOOK = (1.0, 1.0)

ANCHORS, SIDE = 5, 17


def _score_map(peaks: dict[tuple[int, int], float], floor: float = 0.01) -> np.ndarray:
    scores = np.full((ANCHORS, SIDE, SIDE), floor)
    for (y, x), value in peaks.items():
        scores[2, y, x] = value
    return scores.reshape(-1)


def _index(y: int, x: int, anchor: int = 2) -> int:
    return anchor * SIDE * SIDE + y * SIDE + x


def test_one_clear_peak_has_no_rival_and_a_small_spread():
    features = presence_features(_score_map({(8, 8): 0.95, (8, 9): 0.9}), ANCHORS, _index(8, 8), SAME_LOOK)
    assert features.peak_ratio == pytest.approx(0.01 / 0.95)  # the neighbour belongs to the same peak
    assert features.spread == pytest.approx(2 / SIDE**2)
    assert features.logit_score == pytest.approx(np.log(0.95 / 0.05))


def test_a_look_alike_elsewhere_shows_as_a_rival_peak():
    features = presence_features(_score_map({(8, 8): 0.9, (2, 14): 0.85}), ANCHORS, _index(8, 8), SAME_LOOK)
    assert features.peak_ratio == pytest.approx(0.85 / 0.9)


def test_raw_score_weights_give_the_score_itself_and_calibrated_ones_a_probability():
    features = PresenceFeatures(
        logit_score=2.0, peak_ratio=0.9, spread=0.2, colour_similarity=0.3, pattern_similarity=0.1
    )
    assert presence_from_features(features, 0.8807970779778823, RAW_SCORE_WEIGHTS) == 0.8807970779778823
    low = presence_from_features(features, 0.88, (0.0, 1.0, -6.0, 0.0, 0.0, 0.0))
    assert 0.0 < low < 0.05  # a strong rival peak pulls presence down
    # The same score on a box whose colours are not the selection's, and on one whose colours are.
    colour_weights = (-8.0, 1.0, 0.0, 0.0, 8.0, 0.0)
    unlike = presence_from_features(features, 0.88, colour_weights)
    alike = presence_from_features(replace(features, colour_similarity=0.95), 0.88, colour_weights)
    assert unlike < 0.05 < 0.8 < alike


def test_appearance_tells_the_selection_from_other_things_in_a_real_frame(parity_frames):
    """The box on the selected target again, a little shifted, looks like it; boxes in the
    frame's corners or on a uniform grey frame (a covered lens) do not."""
    from siamrpnpp_ros.tracking import appearance

    frames, groundtruth = parity_frames
    photo = frames[0]
    height, width = photo.shape[:2]
    selection = tuple(float(v) for v in groundtruth[0])
    reference = appearance.describe(photo, selection)
    shifted = (selection[0] + 2, selection[1] - 1, selection[2], selection[3])
    colour, pattern = appearance.similarity(reference, appearance.describe(photo, shifted))
    assert colour > 0.9 and pattern > 0.8
    w, h = selection[2], selection[3]
    elsewhere = [
        appearance.similarity(reference, appearance.describe(photo, (x, y, w, h)))
        for x, y in [(0, 0), (width - w, 0), (0, height - h), (width - w, height - h)]
    ]
    assert max(c for c, _ in elsewhere) < colour and max(p for _, p in elsewhere) < pattern
    grey = np.full_like(photo, 128)
    assert appearance.similarity(reference, appearance.describe(grey, selection))[1] == 0.0
    # Boxes outside the frame look like nothing, and so does a box whose reference is missing.
    assert appearance.describe(photo, (width + 5, 0, 20, 20)) is None
    assert appearance.similarity(reference, None) == (0.0, 0.0)
    assert appearance.similarity(None, reference) == (0.0, 0.0)


def test_colour_follows_the_middle_of_the_box_when_the_ground_at_its_rim_changes(parity_frames):
    """A round target that moves onto differently coloured ground keeps its colour similarity
    (the box's middle, which the target fills, still matches); recolouring the target itself
    does change it."""
    from siamrpnpp_ros.tracking import appearance

    frames, groundtruth = parity_frames
    photo = frames[0]
    x, y, w, h = (int(round(v)) for v in groundtruth[0])
    box = (float(x), float(y), float(w), float(h))
    rows = (np.arange(h)[:, None] + 0.5) / h * 2.0 - 1.0
    columns = (np.arange(w)[None, :] + 0.5) / w * 2.0 - 1.0
    outside_ellipse = rows**2 + columns**2 > 1.0
    blue = np.array([200, 60, 20], dtype=np.uint8)

    reference = appearance.describe(photo, box)
    new_ground = photo.copy()
    new_ground[y : y + h, x : x + w][outside_ellipse] = blue
    moved = appearance.describe(new_ground, box)
    whole_box_only = float(np.sqrt(reference.histogram * moved.histogram).sum())
    colour, pattern = appearance.similarity(reference, moved)
    assert whole_box_only < 0.95  # the ground at the rim counts in the whole box's histogram
    assert colour == pytest.approx(1.0, abs=1e-9)
    assert pattern < 0.999  # the thumbnail sees the whole box, rim included

    recoloured = photo.copy()
    recoloured[y : y + h, x : x + w][~outside_ellipse] = blue
    assert appearance.similarity(reference, appearance.describe(recoloured, box))[0] < 0.5


def test_a_blank_view_does_not_look_like_a_dark_target(parity_frames):
    """A covered lens or a dropped frame (one grey level) is not taken for a target in dark
    clothing, whose grey and dark pixels fill the same hue-saturation bin; a view with camera
    noise is still compared, and a selection that was itself uniform still matches a uniform box."""
    from siamrpnpp_ros.tracking import appearance

    frames, groundtruth = parity_frames
    x, y, w, h = (int(round(v)) for v in groundtruth[0])
    box = (float(x), float(y), float(w), float(h))
    dark = frames[0].copy()
    # A fifth of the brightness and no colour: dark, grey clothing with the target's texture.
    grey_target = cv2.cvtColor(dark[y : y + h, x : x + w], cv2.COLOR_BGR2GRAY) // 5
    dark[y : y + h, x : x + w] = cv2.cvtColor(grey_target, cv2.COLOR_GRAY2BGR)
    reference = appearance.describe(dark, box)
    assert reference is not None and reference.textured

    for level in (0, 30, 128):
        blank = np.full_like(dark, level)
        assert appearance.similarity(reference, appearance.describe(blank, box)) == (0.0, 0.0)
    # The colour that the rule overrides: a blank of the target's own darkness matches it fully.
    same_bins = appearance.describe(np.full_like(dark, 20), box)
    assert same_bins is not None and not same_bins.textured
    assert float(np.sqrt(reference.histogram * same_bins.histogram).sum()) > 0.9

    noisy = np.clip(dark.astype(np.float64) + np.random.default_rng(0).normal(0.0, 3.0, dark.shape), 0, 255)
    assert appearance.similarity(reference, appearance.describe(noisy.astype(np.uint8), box))[1] > 0.9

    plain = appearance.describe(np.full_like(dark, 128), box)
    assert appearance.similarity(plain, appearance.describe(np.full_like(dark, 128), box))[0] == pytest.approx(1.0)


def test_logistic_fit_separates_on_target_from_off_target_frames():
    from siamrpnpp_ros.eval.presence import fit_logistic

    rng = np.random.default_rng(0)
    on = np.column_stack([rng.normal(3, 1, 300), rng.uniform(0, 0.4, 300), rng.uniform(0, 0.05, 300)])
    off = np.column_stack([rng.normal(2, 1, 300), rng.uniform(0.6, 1.0, 300), rng.uniform(0, 0.05, 300)])
    weights = fit_logistic(np.vstack([on, off]), np.r_[np.ones(300), np.zeros(300)])
    assert weights[2] < -3  # the rival-peak ratio is what tells them apart here
    z = weights[0] + np.vstack([on, off]) @ weights[1:]
    accuracy = np.mean((z > 0) == np.r_[np.ones(300), np.zeros(300)].astype(bool))
    assert accuracy > 0.9
    with pytest.raises(ValueError, match="both kinds"):
        fit_logistic(on, np.ones(300))


def test_tracker_reports_presence_equal_to_score_by_default(parity_model, parity_frames, two_torch_threads):
    from siamrpnpp_ros.tracking import SiamRPNTracker
    from siamrpnpp_ros.tracking.config import preset_for

    frames, groundtruth = parity_frames
    tracker = SiamRPNTracker(parity_model("alex"), preset_for("alex"))
    tracker.init(frames[0], groundtruth[0])
    for frame in frames[1:4]:
        result = tracker.track(frame)
        assert result.presence == result.score
        assert result.features is not None and 0 <= result.features.spread <= 1
        assert 0 <= result.features.colour_similarity <= 1 and -1 <= result.features.pattern_similarity <= 1


@pytest.mark.slow
def test_long_term_search_and_session_status_follow_presence(parity_model, parity_frames, two_torch_threads):
    """Weights that call every frame absent send the long-term tracker into its wide search at
    once and the session to LOST after ``lost_frames``, whatever the raw score says."""
    from siamrpnpp_ros.tracking import LongTermTracker
    from siamrpnpp_ros.tracking.config import preset_for
    from siamrpnpp_ros.tracking.session import LostPolicy, TrackingSession, TrackStatus, align_long_term_thresholds

    frames, groundtruth = parity_frames
    policy = LostPolicy(lost_frames=2)
    doubtful = align_long_term_thresholds(preset_for("alex"), policy).replace(
        presence_weights=(-20.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    )
    session = TrackingSession(LongTermTracker(parity_model("alex"), doubtful), policy)
    session.start(frames[0], groundtruth[0], target_id=3)
    results = [session.step(frame) for frame in frames[1:5]]
    assert [r.status for r in results] == [TrackStatus.TRACKING, TrackStatus.LOST, TrackStatus.LOST, TrackStatus.LOST]
    assert [r.search_wide for r in results] == [False, True, True, True]
    assert all(r.presence < 1e-6 for r in results)
    assert all(r.box == tuple(float(v) for v in groundtruth[0]) for r in results[1:])  # held: the last confident box


@pytest.mark.slow
def test_calibration_cli_runs_with_a_parameters_file_and_refuses_one_for_another_model(tmp_path, capsys):
    """``eval.presence --config`` calibrates with the tracker settings the node will run with."""
    import json

    from siamrpnpp_ros.eval.longterm_builder import LongTermConfig, build_long_term_benchmark
    from siamrpnpp_ros.eval.presence import main
    from siamrpnpp_ros.material.photos import find_photos

    config = LongTermConfig(
        sequences=1, seed=3, frames=60, fps=10.0, width=160, height=120, image_format="png", attributes=()
    )
    build_long_term_benchmark(tmp_path / "lt", config, find_photos())
    params = tmp_path / "wide.yaml"
    params.write_text("tracker_node:\n  ros__parameters:\n    tracker:\n      lost_search: wide\n")
    out = tmp_path / "presence.json"
    argv = ["--benchmark", str(tmp_path / "lt"), "--model", "alex-w0.25", "--config", str(params), "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["config"] == str(params) and report["frames"] == 60 - 1
    assert len(report["presence_weights"]) == 6 and all(np.isfinite(report["presence_weights"]))

    params.write_text("model: r50\ntracker:\n  lost_search: wide\n")
    capsys.readouterr()
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("presence: error:") and "r50" in error


def test_threshold_for_a_false_absent_budget_calls_at_most_that_share_of_present_frames_absent():
    from siamrpnpp_ros.eval.presence import PresenceSamples, threshold_for_false_absent

    rng = np.random.default_rng(0)
    present = rng.uniform(0.3, 1.0, 200)
    absent = rng.uniform(0.0, 0.6, 100)
    presence = np.r_[present, absent]
    flags = np.r_[np.zeros(200, bool), np.ones(100, bool)]
    samples = PresenceSamples(np.zeros((300, 5)), (~flags).astype(float), flags)
    point = threshold_for_false_absent(presence, samples, 0.05)
    assert point["present_false_absent"] <= 0.05
    assert np.mean(present < point["threshold"]) == point["present_false_absent"] == 10 / 200
    assert point["absent_detected"] == np.mean(absent < point["threshold"]) > 0.4
    # A budget of nothing: no present frame may fall below the threshold.
    assert threshold_for_false_absent(presence, samples, 0.0)["threshold"] == present.min()


def test_four_presence_weights_from_older_parameter_files_read_without_the_appearance_terms():
    from siamrpnpp_ros.tracking.config import preset_for

    legacy = preset_for("alex").replace(presence_weights=(-2.0, 1.0, 0.0, 0.5))
    assert legacy.presence_weights == (-2.0, 1.0, 0.0, 0.5, 0.0, 0.0)
    with pytest.raises(ValueError, match="presence_weights must be 6 finite numbers"):
        preset_for("alex").replace(presence_weights=(0.0, 1.0, 0.0, 0.0, 0.0))
