"""Tests of the photo-adjustment evaluation (normface.apps): colour spaces, degradations,
baselines and the Delta E report with injected correctors (the shipped model's own corrector
is tested in tests/serving/test_pretrained.py)."""

from __future__ import annotations

import numpy as np
import pytest

from normface.apps import adjust
from normface.evaluation import adjustment
from normface.faces.detection import find_faces68
from normface.utils import io_utils


def test_lab_and_delta_e_reference_values():
    np.testing.assert_allclose(adjustment.srgb_to_lab(np.array([255.0, 255.0, 255.0])), [100, 0, 0], atol=1e-3)
    np.testing.assert_allclose(adjustment.srgb_to_lab(np.array([0.0, 0.0, 0.0])), [0, 0, 0], atol=1e-9)
    # sRGB red is L*a*b* (53.24, 80.09, 67.20) (D65).
    np.testing.assert_allclose(adjustment.srgb_to_lab(np.array([255.0, 0.0, 0.0])), [53.24, 80.09, 67.20], atol=0.05)
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert adjustment.mean_delta_e(image, image) == 0.0


def test_degrade_with_unit_gains_is_identity_and_round_trips():
    image = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert np.abs(adjustment.degrade(image, [1, 1, 1]).astype(int) - image).max() <= 1
    darker = adjustment.degrade(image, [0.5, 0.5, 0.5])
    assert darker.mean() < image.mean()
    rng = np.random.default_rng(2)
    gains = np.array([adjustment.random_gains(rng, adjustment.DegradeConfig()) for _ in range(200)])
    exposure = gains[:, 1]
    assert exposure.min() >= 0.5 and exposure.max() <= 2.0
    assert np.all((gains[:, [0, 2]] / gains[:, 1:2] >= 0.7) & (gains[:, [0, 2]] / gains[:, 1:2] <= 1.4))


def test_baselines_undo_a_global_cast():
    rng = np.random.default_rng(3)
    grey = rng.integers(40, 200, (20, 20, 1)).repeat(3, -1).astype(np.uint8)  # a grey world
    cast = adjustment.degrade(grey, [1.3, 1.0, 0.75])
    assert adjustment.mean_delta_e(adjustment.grey_world(cast), grey) < 0.3 * adjustment.mean_delta_e(cast, grey)
    balanced = adjustment.srgb_to_linear(adjustment.white_patch(cast)).reshape(-1, 3)
    top = np.percentile(balanced, adjustment.WHITE_PATCH_PERCENTILE, axis=0)
    np.testing.assert_allclose(top, 1.0, atol=0.02)


@pytest.fixture(scope="module")
def lfw_faces(data_root):
    photos, landmarks = [], []
    for name in ("Aaron_Eckhart", "Abdullah_Gul", "Ai_Sugiyama", "Alan_Ball"):
        path = data_root / "lfw" / name / f"{name}_0001.jpg"
        if not path.is_file():
            continue
        photo = io_utils.read_rgb(path)
        found = find_faces68(photo)
        if found:
            photos.append(photo)
            landmarks.append(found[0].landmarks)
    if len(photos) < 2:
        pytest.skip("fewer than 2 LFW photos with a face found")
    return photos, landmarks


def test_oracle_reference_reduces_delta_e(lfw_faces):
    photos, landmarks = lfw_faces
    report = adjustment.evaluate_adjustment(photos, landmarks, {"oracle": adjustment.oracle_corrector(photos, landmarks)},
                                      adjustment.DegradeConfig(seed=0), num_examples=2)
    summary = report.summary()
    assert list(summary) == ["degraded", "oracle", *adjustment.BASELINES]
    assert all(np.isfinite(v).all() and (v >= 0).all() for v in report.delta_e.values())
    assert summary["oracle"] < 0.6 * summary["degraded"], summary
    assert report.failures == {"oracle": 0}
    assert report.gains.shape == (len(photos), 3)
    grid = report.grid(tile=32)
    assert grid.ndim == 3 and grid.shape[1] > 2 * 32
    assert "| degraded |" in report.table()
    # An extra row (e.g. the reference faces) adds one row of tiles.
    taller = report.grid(tile=32, extra_rows={"faces": [p[:40, :40] for p in photos[:2]]})
    assert taller.shape[0] > grid.shape[0] and taller.shape[1] == grid.shape[1]
    with pytest.raises(ValueError, match="extra row"):
        report.grid(tile=32, extra_rows={"faces": [photos[0]]})


def test_a_wrong_reference_does_not_help(lfw_faces):
    """The score follows the reference: a face colour far from the truth makes things worse."""
    photos, landmarks = lfw_faces
    wrong = adjustment.target_corrector(np.array([60.0, 160.0, 100.0]), landmarks)  # dark and very red
    report = adjustment.evaluate_adjustment(photos, landmarks, {"wrong": wrong}, adjustment.DegradeConfig(seed=0))
    assert report.summary()["wrong"] > report.summary()["degraded"]


def test_a_corrector_that_gives_up_is_scored_as_the_degraded_photo(lfw_faces):
    photos, landmarks = lfw_faces
    report = adjustment.evaluate_adjustment(photos, landmarks, {"none": lambda _i, _d: None}, adjustment.DegradeConfig(seed=1))
    assert report.failures == {"none": len(photos)}
    np.testing.assert_array_equal(report.delta_e["none"], report.delta_e["degraded"])
    assert report.rows()["none"]["failures"] == len(photos)


def test_evaluate_adjustment_checks_its_arguments():
    with pytest.raises(ValueError, match="as many landmarks"):
        adjustment.evaluate_adjustment([np.zeros((8, 8, 3), np.uint8)], [], {})
    with pytest.raises(ValueError, match="reserved"):
        adjustment.evaluate_adjustment([np.zeros((8, 8, 3), np.uint8)], [np.zeros((68, 2))],
                                 {"grey world": lambda _i, d: d})


def test_target_corrector_checks_its_targets(lfw_faces):
    photos, landmarks = lfw_faces
    with pytest.raises(ValueError, match="targets must be"):
        adjustment.target_corrector(np.zeros((len(landmarks) + 1, 3)), landmarks)
    # One target per photo: each face moves toward its own target (the piecewise-linear curve
    # maps the face *mean* only approximately, as pixels spread around it).
    targets = np.array([[170.0, 150.0, 115.0], [70.0, 140.0, 120.0]] + [[100.0, 145.0, 118.0]] * (len(photos) - 2))
    correct = adjustment.target_corrector(targets, landmarks)
    for i in range(2):
        fixed = correct(i, photos[i])
        np.testing.assert_array_equal(fixed, adjust.correct_to_reference(photos[i], landmarks[i], targets[i]))
        before = np.abs(adjust.face_color(photos[i], landmarks[i]) - targets[i])
        after = np.abs(adjust.face_color(fixed, landmarks[i]) - targets[i])
        assert after[0] < 0.5 * before[0], (before, after)


def test_color_delta_e():
    skin = np.array([150.0, 150.0, 110.0])
    assert adjustment.color_delta_e(skin, skin) == 0.0
    darker = skin - [30.0, 0.0, 0.0]
    # A luma step of 30/255 is a large lightness step: more than 10 L* units.
    assert adjustment.color_delta_e(skin, darker) > 10.0
    assert adjustment.color_delta_e(skin, darker) == pytest.approx(adjustment.color_delta_e(darker, skin))
