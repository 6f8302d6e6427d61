"""Tests of the quality measures: head pose, expression filter, blur, monochrome."""

from __future__ import annotations

import numpy as np
import pytest

from normface.data import splits
from normface.faces import face3d
from normface.faces import quality
from normface.data import studio


def test_head_pose_recovers_known_angles(data_root):
    """Landmarks projected from the Surrey model at known yaw/pitch/roll come back within 3 deg."""
    indices, points = face3d.landmark_model(data_root)
    camera = face3d.camera_matrix(250, 250)
    rng = np.random.default_rng(0)
    for _ in range(20):
        truth = np.array([rng.uniform(-35, 35), rng.uniform(-25, 25), rng.uniform(-25, 25)])
        uv = face3d.project(points, face3d.rotation(*truth), np.array([3.0, -5.0, 650.0]), camera)
        landmarks = np.full((68, 2), 125.0)
        landmarks[indices] = uv + rng.normal(0, 0.3, uv.shape)  # detector-like jitter
        est = np.array(face3d.head_pose(landmarks, 250, 250, data_root))
        assert np.abs(est - truth).max() <= 3.0, (truth, est)


def test_rotation_angles_round_trip():
    for angles in [(10, -5, 3), (-30, 20, -15), (0, 0, 0)]:
        np.testing.assert_allclose(face3d.angles(face3d.rotation(*angles)), angles, atol=1e-9)


def test_expression_filter_on_held_out_london_people(data_root):
    """Held-out London people (never used to fit the filter): keeps >= 90% of neutral photos and
    rejects >= 90% of smiling ones."""
    people = splits.make_splits(data_root)
    held_out = {p for p in people["test"] if p.startswith("london/")}
    assert len(held_out) == 30
    feats, smiling, _ = studio.expression_examples(data_root, held_out)
    model = quality.ExpressionModel.load()
    t = quality.QualityThresholds()  # the default operating point
    smile = np.array([model.smile_probability(f) for f in feats])
    smiling = np.array(smiling)
    kept_neutral = np.mean(smile[~smiling] <= t.max_smile)
    rejected_smiling = np.mean(smile[smiling] > t.max_smile)
    assert kept_neutral >= 0.9 and rejected_smiling >= 0.9, (kept_neutral, rejected_smiling)
    # The people the filter was fitted on, as recorded in its asset, are training people only.
    fitted = set(model.fitted_people)
    assert fitted and not fitted & held_out
    assert fitted <= set(people["train"]), sorted(fitted - set(people["train"]))


def test_expression_filter_asset_records_its_training_people(data_root):
    """expression_filter.json lists the ids of the people it was fitted on: exactly the training
    people with studio photos (72 London + 40 Canada, as its description counts), none of them
    in validation or test."""
    people = splits.make_splits(data_root)
    model = quality.ExpressionModel.load()
    fitted = set(model.fitted_people)
    assert list(model.fitted_people) == sorted(fitted)  # no duplicates
    studio_train = {person for person, _, _ in studio.studio_photos(data_root) if person in set(people["train"])}
    assert fitted == studio_train
    assert not fitted & (set(people["validation"]) | set(people["test"]))
    assert sum(p.startswith("london/") for p in fitted) == 72 and sum(p.startswith("canada/") for p in fitted) == 40
    assert model.fitted_on.startswith(f"{len(fitted)} neutral + 72 smiling")


def test_sharpness_and_saturation():
    import cv2

    rng = np.random.default_rng(1)
    grey = rng.uniform(0, 255, (64, 64))
    assert quality.sharpness(cv2.GaussianBlur(grey, (0, 0), 3)) < 0.05 * quality.sharpness(grey)
    colour = rng.uniform(0, 255, (16, 16, 3))
    mono = np.repeat(colour[..., :1], 3, axis=-1)
    assert quality.saturation(mono) == 0.0 and quality.saturation(colour) > 0.3


def test_rejections_name_the_failing_filters():
    t = quality.QualityThresholds()
    good = dict(yaw=0.0, pitch=quality.FRONTAL_PITCH, roll=0.0, smile=0.1, sharpness=100.0, saturation=0.3,
                eye_distance=40.0)
    assert quality.rejections(good, t) == []
    bad = dict(good, yaw=40.0, smile=0.9, saturation=0.0)
    assert quality.rejections(bad, t) == ["pose", "expression", "monochrome"]


def test_fit_needs_both_classes():
    with pytest.raises(ValueError, match="both"):
        quality.fit_expression_model([{"a": 1.0}, {"a": 2.0}], [False, False])
