"""Tests of the evaluation metrics on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest

from normface.evaluation import metrics


def test_identical_inputs_give_zero_distance_and_full_similarity():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(5, 128))
    assert np.allclose(np.diag(metrics.pairwise_distances(d, d)), 0.0)
    image = rng.uniform(0, 255, (32, 32, 3))
    assert metrics.ssim(image, image) == pytest.approx(1.0)
    assert metrics.spread(np.stack([image] * 3))["pixel_l1"] < 1e-12
    lms = rng.uniform(0, 64, (68, 2))
    assert metrics.landmark_error(lms, lms) == 0.0


def test_tar_at_far_on_a_known_example():
    impostor = np.arange(1, 1001, dtype=float) / 1000.0  # 0.001 ... 1.0
    genuine = np.array([0.0005, 0.0015, 0.05, 0.5])
    # FAR 0.1% allows 1 of 1000 impostors: threshold = 2nd smallest = 0.002.
    tar, t = metrics.tar_at_far(genuine, impostor, 0.001)
    assert t == pytest.approx(0.002) and tar == pytest.approx(0.5)
    assert np.mean(impostor < t) <= 0.001
    tar, t = metrics.tar_at_far(genuine, impostor, 0.1)
    assert t == pytest.approx(0.101) and tar == pytest.approx(0.75)


def test_impostor_pairs_and_rank1():
    desc = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [5.1, 0.0]])
    labels = np.array(["a", "a", "b", "b"])
    imp = metrics.impostor_distances(desc, labels)
    assert imp.shape == (4,) and imp.min() == pytest.approx(4.9)
    assert metrics.rank1_identification(desc[[1, 3]], ["a", "b"], desc[[0, 2]], ["a", "b"]) == 1.0
    assert metrics.rank1_identification(desc[[1, 3]], ["b", "a"], desc[[0, 2]], ["a", "b"]) == 0.0


def test_share_within_and_landmark_error_scale():
    assert metrics.share_within([0.1, 0.5, 0.7], 0.6) == pytest.approx(2 / 3)
    truth = np.zeros((68, 2))
    truth[36:42] = [0.0, 0.0]
    truth[42:48] = [10.0, 0.0]
    assert metrics.landmark_error(truth + [1.0, 0.0], truth) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        metrics.share_within([], 0.6)


C1 = (0.01 * 255) ** 2  # SSIM's luminance constant


def test_ssim_known_answers():
    # Flat images: no structure, SSIM is the luminance term (2 ab + C1) / (a^2 + b^2 + C1).
    flat = np.full((32, 64, 3), 100.0)
    brighter = np.full_like(flat, 150.0)
    expected = (2 * 100 * 150 + C1) / (100**2 + 150**2 + C1)
    assert metrics.ssim(flat, brighter) == pytest.approx(expected, rel=1e-9)
    # Half brighter: 1 where the 11-px window sees only equal pixels, the flat answer where it
    # sees only the brighter half; near the edge only one image has structure, lower still. The
    # mask averages over its pixels only.
    half = flat.copy()
    half[:, 32:] = 150.0
    left = np.zeros((32, 64), bool)
    left[:, :27] = True
    right = np.zeros((32, 64), bool)
    right[:, 37:] = True
    assert metrics.ssim(flat, half, left) == pytest.approx(1.0, abs=1e-9)
    assert metrics.ssim(flat, half, right) == pytest.approx(expected, rel=1e-9)
    edge = ~left & ~right
    at_edge = metrics.ssim(flat, half, edge)
    assert at_edge < expected
    assert metrics.ssim(flat, half) == pytest.approx((27 * 1.0 + 10 * at_edge + 27 * expected) / 64, rel=1e-9)
    # Structure: a textured image against its negative has the same means (127.5) and opposite
    # contrast, so SSIM is about (C2 - 2 var) / (C2 + 2 var) ~ -0.99; noise lowers it step by step.
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (32, 32, 3))
    assert metrics.ssim(image, 255.0 - image) < -0.9
    noisy = [metrics.ssim(image, image + rng.normal(0, s, image.shape)) for s in (5, 20, 80)]
    assert 1.0 > noisy[0] > noisy[1] > noisy[2] > 0.0, noisy
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.ssim(image, image[:16])


def test_spread_and_distances_known_answers():
    images = np.stack([np.full((4, 4, 3), v) for v in (0.0, 30.0, 60.0)])  # mean 30
    landmarks = np.stack([np.zeros((68, 2)) + d for d in ([3.0, 4.0], [0.0, 0.0], [-3.0, -4.0])])
    spread = metrics.spread(images, landmarks)
    assert spread["pixel_l1"] == pytest.approx(20.0)  # |0-30|, 0, |60-30| -> mean 20
    assert spread["landmark_px"] == pytest.approx(10.0 / 3.0)  # 5, 0, 5 px
    assert set(metrics.spread(images)) == {"pixel_l1"}
    d = metrics.pairwise_distances(np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[0.0, 0.0], [6.0, 8.0]]))
    np.testing.assert_allclose(d, [[0.0, 10.0], [5.0, 5.0]])


# --- picture measures (issue 26): known answers ---------------------------------------------------


def _textured(size=128, seed=0, sigma=1.5):
    """A photo-like image: smooth random texture with fine detail, no lattice."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (size, size, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), sigma) * 3 - 255, 0, 255).astype(np.uint8)


def test_grid_ratio_is_far_above_one_for_a_periodic_pattern_and_about_one_for_smooth_images():
    photos = np.stack([_textured(seed=s) for s in range(12)])
    tile = np.random.default_rng(9).uniform(0, 255, (16, 16, 3))
    lattice = np.tile(tile, (8, 8, 1))  # repeats every 16 px: its energy on the period-16 lattice
    gridded = np.clip(0.5 * photos + 0.5 * lattice, 0, 255).astype(np.uint8)
    # The Hann window spreads each lattice line over its two neighbours (a quarter of its
    # amplitude each): 4/9 of a pure lattice's energy stays on the lattice bins, 1-2% of a photo's.
    assert metrics.grid_share(lattice.astype(np.uint8), 16) > 0.4
    assert metrics.grid_ratio(gridded, photos, 16) > 5.0
    # The period-32 lattice's bins include the period-16 ones.
    assert metrics.grid_ratio(gridded, photos, 32) > 2.0
    other = np.stack([_textured(seed=s) for s in range(20, 32)])
    for period in (16, 32):
        assert metrics.grid_ratio(other, photos, period) == pytest.approx(1.0, abs=0.3)
    with pytest.raises(ValueError, match="multiple of 16"):
        metrics.grid_share(np.zeros((40, 40, 3)), 16)


def test_blurring_lowers_sharpness_and_identity_keeps_it():
    import cv2

    photos = np.stack([_textured(seed=s) for s in range(3)])
    blurred = np.stack([cv2.GaussianBlur(p, (0, 0), 2.0) for p in photos])
    assert metrics.sharpness_ratio(photos, photos) == pytest.approx(1.0)
    assert metrics.sharpness_ratio(blurred, photos) < 0.2
    marks = np.stack([_face_landmarks()] * 3)
    assert metrics.hair_band_sharpness_ratio(photos, marks, photos, marks) == pytest.approx(1.0)
    assert metrics.hair_band_sharpness_ratio(blurred, marks, photos, marks) < 0.2
    # Only the band counts: blurring inside the hull alone leaves the hair band's ratio at 1.
    inside = blurred.copy()
    from normface.faces.masks import face_mask

    hull = face_mask(marks[0], 128)
    mixed = np.where(hull[None, ..., None], inside, photos)
    assert metrics.hair_band_sharpness_ratio(mixed, marks, photos, marks) == pytest.approx(1.0)


def _face_landmarks():
    """Face-shaped 68 landmarks in the 128 frame: the shipped model's mean landmarks."""
    import json

    from normface.utils import paths

    card = paths.REPO_ROOT / "normface" / "serving" / "pretrained" / "normface128" / "normface.json"
    return np.asarray(json.loads(card.read_text())["mean_landmarks"], np.float64)


def test_hair_band_is_above_the_nose_and_outside_the_hull():
    from normface.faces.masks import face_mask

    marks = _face_landmarks()
    band = metrics.hair_band_mask(marks, 128)
    assert band.any() and not (band & face_mask(marks, 128)).any()
    assert not band[int(np.ceil(marks[metrics.NOSE_TIP, 1])) + 1:].any()
    eyebrow_top = int(marks[17:27, 1].min())
    assert band[:eyebrow_top].any()  # above the eyebrows


def test_distinctiveness_is_maximal_for_identical_outputs():
    rng = np.random.default_rng(0)
    people = np.repeat(np.arange(6), 2)
    same = np.tile(rng.normal(size=(1, 16)), (12, 1))
    assert metrics.distinctiveness(same, people) == pytest.approx(1.0)
    varied = rng.normal(size=(12, 64))
    assert abs(metrics.distinctiveness(varied, people)) < 0.2
    with pytest.raises(ValueError, match="two people"):
        metrics.distinctiveness(varied[:2], np.array([0, 0]))


def test_similarity_far_threshold_and_person_balanced_rate():
    impostor = np.arange(1, 1001, dtype=float) / 1000.0  # 0.001 ... 1.0
    # FAR 0.1% allows 1 of 1000 impostors above the threshold: the 2nd largest, 0.999.
    t = metrics.similarity_threshold_at_far(impostor, 0.001)
    assert t == pytest.approx(0.999) and np.mean(impostor > t) <= 0.001
    genuine = np.array([1.0, 1.0, 1.0, 0.5])  # person a: three accepted pairs; person b: one rejected
    weights = metrics.person_balanced_weights(np.array(["a", "a", "a", "b"]))
    assert metrics.weighted_accept_rate(genuine, t) == pytest.approx(0.75)
    assert metrics.weighted_accept_rate(genuine, t, weights) == pytest.approx(0.5)


def test_mouth_landmark_error_counts_only_the_mouth():
    truth = _face_landmarks()
    moved = truth.copy()
    moved[48:68, 1] += 3.0
    assert metrics.landmark_error(moved, truth, metrics.MOUTH_POINTS) > 0
    assert metrics.landmark_error(moved, truth, slice(0, 48)) == 0.0
    assert metrics.landmark_error(moved, truth) == pytest.approx(
        metrics.landmark_error(moved, truth, metrics.MOUTH_POINTS) * 20 / 68)


def test_blur_to_sharpness_finds_the_blur_that_gives_the_asked_sharpness():
    import cv2

    photos = np.stack([_textured(seed=s) for s in range(6)])
    blurred = np.stack([cv2.GaussianBlur(p, (0, 0), 1.3) for p in photos])
    target = metrics.sharpness_ratio(blurred, photos)
    matched, sigma = metrics.blur_to_sharpness(photos, target)
    assert sigma == pytest.approx(1.3, abs=0.05)
    assert metrics.sharpness_ratio(matched, photos) == pytest.approx(target, rel=0.05)
    same, zero = metrics.blur_to_sharpness(photos, 1.5)  # sharper than the photos: the photos
    assert zero == 0.0 and same is photos
    with pytest.raises(ValueError, match="sharpness must be a positive number"):
        metrics.blur_to_sharpness(photos, float("nan"))
    with pytest.raises(ValueError, match="uint8"):
        metrics.blur_to_sharpness(photos.astype(np.float32), 0.5)


def test_the_matched_grid_ratio_counts_a_grid_and_not_a_blur():
    # The plain ratio's flaw, pinned: a blur alone raises it (a share of the high-frequency energy,
    # which a blur moves onto the lattice's first bins); against photos blurred as much, a blurred
    # photo with no grid scores 1 and the same photo with faint stripes (period 4, 2 grey levels)
    # far above it.
    import cv2

    photos = np.stack([_textured(seed=s) for s in range(16)])
    blurred = np.stack([cv2.GaussianBlur(p, (0, 0), 1.6) for p in photos])
    assert metrics.grid_ratio(blurred, photos, 8) > 1.25
    matched, _ = metrics.blur_to_sharpness(photos, metrics.sharpness_ratio(blurred, photos))
    for period in metrics.GRID_PERIODS:
        assert metrics.grid_ratio(blurred, matched, period) == pytest.approx(1.0, abs=0.08)
    stripes = 2.0 * np.cos(np.pi * np.arange(128) / 2)[None, None, :, None]
    striped = np.clip(blurred + stripes, 0, 255).astype(np.uint8)
    matched, _ = metrics.blur_to_sharpness(photos, metrics.sharpness_ratio(striped, photos))
    assert metrics.grid_ratio(striped, matched, 16) > 2.0
    marks = np.stack([_face_landmarks()] * len(photos))
    row = metrics.picture_measures(striped, marks, photos, marks)
    assert row["grid_ratio_matched_p16"] == pytest.approx(metrics.grid_ratio(striped, matched, 16))
    assert row["grid_ratio_matched_max"] == max(row[f"grid_ratio_matched_p{p}"] for p in metrics.GRID_PERIODS)
    assert row["matched_blur_sigma"] > 1.0


def _banded(seed: int, rows) -> np.ndarray:
    """A smooth photo-like image with faint soft dark horizontal bands (a face's brows, eyes and
    mouth: 10% darker, 1.5 px Gaussian profile) centred on ``rows``."""
    import cv2

    image = cv2.GaussianBlur(_textured(seed=seed), (0, 0), 1.6).astype(np.float32)
    y = np.arange(image.shape[0])[:, None]
    shade = 1.0 - 0.1 * sum(np.exp(-0.5 * ((y - r) / 1.5) ** 2) for r in rows)
    image[:, 24:104] *= shade[:, :, None]
    return np.clip(image, 0, 255).astype(np.uint8)


def test_the_geometry_matched_grid_ratio_takes_the_faces_proportions_out_and_keeps_a_grid():
    # Bands 8 px apart (in phase at the lattice's band-edge bin, 1/8 cycle per pixel) on every
    # output; the photos' bands at varied spacings. The plain ratio reads the spacing as a grid;
    # against the photos' own detail placed at the outputs' spacing it is about 1, and faint
    # period-4 stripes (4 grey levels) still score far above it.
    rng = np.random.default_rng(0)
    geometry = [40, 48, 56, 80]
    outputs = np.stack([_banded(100 + s, geometry) for s in range(24)])
    photos = np.stack([_banded(s, [40, 40 + rng.integers(5, 12), 56 + rng.integers(-3, 4), 80 + rng.integers(-5, 6)])
                       for s in range(24)])
    at_geometry = np.stack([_banded(s, geometry) for s in range(24)])
    marks = np.stack([_face_landmarks()] * len(outputs))
    plain = metrics.picture_measures(outputs, marks, photos, marks)
    row = metrics.picture_measures(outputs, marks, photos, marks, at_geometry)
    assert plain["grid_ratio_p8"] > 2.0 and "grid_ratio_geometry_p8" not in plain
    for period in metrics.GRID_PERIODS:
        assert row[f"grid_ratio_geometry_p{period}"] == pytest.approx(1.0, abs=0.1)
    assert row["grid_ratio_geometry_max"] == max(row[f"grid_ratio_geometry_p{p}"] for p in metrics.GRID_PERIODS)
    stripes = 4.0 * np.cos(np.pi * np.arange(128) / 2)[None, None, :, None]
    striped = np.clip(outputs + stripes, 0, 255).astype(np.uint8)
    assert metrics.picture_measures(striped, marks, photos, marks, at_geometry)["grid_ratio_geometry_p8"] > 1.8
    with pytest.raises(ValueError, match="photos_at_output_geometry"):
        metrics.picture_measures(outputs, marks, photos, marks, at_geometry[:3])
