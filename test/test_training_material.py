"""The default model's training material: Debian cut-outs and backgrounds, composited pairs.

These tests fetch the real packages into the data cache (``material/debian.py``; about 300 MB
the first time) and skip where apt is not available.
"""

from __future__ import annotations

import numpy as np
import pytest

from siamrpnpp_ros.material.debian import DebianDataError


@pytest.fixture(scope="module")
def material():
    from siamrpnpp_ros.training.sources import build_material

    try:
        return build_material(progress=False)
    except DebianDataError as exc:
        pytest.skip(f"Debian data packages not available: {exc}")


def test_material_is_mostly_photographic_objects_split_by_name(material):
    counts = material.counts()
    assert counts["stamps_photographic"] >= 250  # several hundred photos of real objects
    assert counts["stamps_photographic"] > counts["stamps_cartoon"]
    assert counts["backgrounds_photographic"] >= 30
    assert all(version for version in material.packages.values())
    train, val = material.select("train"), material.select("val")
    assert not {s.name for s in train.stamps} & {s.name for s in val.stamps}
    assert not {b.name for b in train.backgrounds} & {b.name for b in val.backgrounds}
    assert len(val.stamps) > 20 and sum(b.photographic for b in val.backgrounds) >= 3
    # Letters and signs are dropped; nothing comes from the test domain.
    assert not any(s.category == "symbols" and not s.photographic for s in material.stamps)
    assert not any("opencv" in s.path or "skimage" in s.path for s in material.stamps + material.backgrounds)
    assert all(len(entry.sha256) == 64 for entry in material.stamps + material.backgrounds)


def test_photographic_test_tells_photos_from_flat_artwork(material):
    from siamrpnpp_ros.training.sources import is_photographic, load_stamp

    photo = next(s for s in material.stamps if s.photographic)
    assert is_photographic(load_stamp(photo))
    flat = np.zeros((64, 64, 4), np.uint8)
    flat[..., 3] = 255
    flat[:32, :, :3] = (0, 0, 255)
    assert not is_photographic(flat)


@pytest.mark.slow
def test_composited_pairs_are_reproducible_with_exact_boxes_and_all_negative_kinds(material):
    from siamrpnpp_ros.training.composite import CompositeConfig, CompositeSource

    config = CompositeConfig(negative_probs=(0.15, 0.15, 0.1))
    source = CompositeSource(material.select("train"), config)
    first = source.sample_pair(np.random.default_rng([7, 0]))
    again = source.sample_pair(np.random.default_rng([7, 0]))
    np.testing.assert_array_equal(first.search_frame, again.search_frame)
    np.testing.assert_array_equal(first.search_box, again.search_box)

    width, height = config.frame_size
    negatives = 0
    count = 120
    for index in range(count):
        pair = source.sample_pair(np.random.default_rng([7, index]))
        for frame, box in ((pair.template_frame, pair.template_box), (pair.search_frame, pair.search_box)):
            assert frame.shape == (height, width, 3) and frame.dtype == np.uint8
            x, y, w, h = box
            assert 0 <= x and 0 <= y and x + w <= width + 1e-6 and y + h <= height + 1e-6
            assert w >= 2 and h >= 2
        negatives += pair.negative
    assert 0.2 * count <= negatives <= 0.6 * count  # 40% configured


def _box_similarity(pair) -> float:
    """Normalised cross-correlation of the template's target patch with the search box's patch."""
    import cv2

    def patch(frame, box):
        x, y, w, h = np.round(box).astype(int)
        return cv2.resize(frame[y : y + h, x : x + w], (32, 32)).astype(np.float64).ravel()

    a, b = patch(pair.template_frame, pair.template_box), patch(pair.search_frame, pair.search_box)
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


def test_absent_negatives_show_no_target_where_positives_show_it(material):
    """At the search box, a positive shows the target (high correlation with the template's
    target) and an ``absent`` negative shows whatever was behind it (low correlation)."""
    from siamrpnpp_ros.training.composite import CompositeConfig, CompositeSource

    steady = dict(occlusion_prob=0.0, lookalike_prob=0.0, rotation=0.0, scale_change=0.0, camera_zoom=0.0)
    positive = CompositeSource(material.select("train"), CompositeConfig(negative_probs=(0.0, 0.0, 0.0), **steady))
    absent = CompositeSource(material.select("train"), CompositeConfig(negative_probs=(0.999, 0.0, 0.0), **steady))
    positives = [_box_similarity(positive.sample_pair(np.random.default_rng([11, i]))) for i in range(16)]
    absents = []
    for index in range(16):
        pair = absent.sample_pair(np.random.default_rng([11, index]))
        assert pair.negative
        absents.append(_box_similarity(pair))
    assert np.median(positives) > 0.6
    assert np.median(absents) < 0.4


def test_pair_dataset_mixes_composited_pairs_with_track_sources(material, tmp_path):
    import cv2

    from siamrpnpp_ros.training.augment import SEARCH_AUGMENT, TEMPLATE_AUGMENT
    from siamrpnpp_ros.training.composite import CompositeSource
    from siamrpnpp_ros.training.datasets import load_source
    from siamrpnpp_ros.training.pairs import PairDataset
    from siamrpnpp_ros.training.sources import load_background
    from siamrpnpp_ros.training.targets import AnchorTargetAssigner

    stills = tmp_path / "stills"
    stills.mkdir()
    for entry in [b for b in material.select("train").backgrounds if b.photographic][:3]:
        cv2.imwrite(str(stills / f"{entry.name}.jpg"), load_background(entry, 400))
    sources = [CompositeSource(material.select("train"), weight=3.0), load_source(stills, "unlabeled")]
    assigner = AnchorTargetAssigner(25, 8, (0.33, 0.5, 1, 2, 3), (8,))
    # negative_prob applies to the stills: their negatives draw the other object from track sources only.
    dataset = PairDataset(sources, 40, assigner, TEMPLATE_AUGMENT, SEARCH_AUGMENT, negative_prob=0.5)
    names = set()
    for index in range(40):
        item = dataset[index]
        assert item["template"].shape == (3, 127, 127) and item["search"].shape == (3, 255, 255)
        if item["negative"]:
            assert not (item["label_cls"] == 1).any()  # nothing to find: all labelled anchors background
        else:
            assert (item["label_cls"] == 1).any()
        names.add(dataset.sample_pair(dataset.rng_for(index)).source)
    assert len(names) == 2
