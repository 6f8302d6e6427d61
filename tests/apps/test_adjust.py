"""Tests of the automatic photo adjustment (normface.apps.adjust)."""

from __future__ import annotations

import numpy as np
import pytest

from normface.apps import adjust
from normface.faces.alignment import AlignmentTemplate


def test_ycrcb_round_trip():
    rgb = np.random.default_rng(0).uniform(0, 255, (50, 3))
    np.testing.assert_allclose(adjust.to_rgb(adjust.to_ycrcb(rgb)), rgb, atol=1e-6)


def test_shift_is_identity_when_colours_match():
    photo = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    mean = np.array([120.0, 140.0, 110.0])
    out = adjust.adjust_photo(photo, mean, mean)
    assert np.abs(out.astype(int) - photo.astype(int)).max() <= 1  # YCrCb rounding only


@pytest.mark.parametrize("source, target", [(60.0, 150.0), (200.0, 90.0), (128.0, 128.0)])
def test_shift_curve_is_monotonic_and_hits_its_knots(source, target):
    x = np.linspace(0, 255, 1000)
    y = adjust.shift_curve(x, source, target)
    assert np.all(np.diff(y) >= 0)
    np.testing.assert_allclose(adjust.shift_curve(np.array([0.0, source, 255.0]), source, target),
                               [0.0, target, 255.0])


def test_face_mean_moves_to_target():
    t = AlignmentTemplate.for_size(64)
    face = np.full((64, 64, 3), [180, 120, 90], np.uint8)  # a warm, bright cast
    target = adjust.to_ycrcb(np.array([150.0, 125.0, 115.0]))
    src = adjust.mean_face_color(face, t)
    fixed = adjust.adjust_photo(face, src, target)
    np.testing.assert_allclose(adjust.mean_face_color(fixed, t), target, atol=1.5)


def test_wrong_size_is_rejected():
    with pytest.raises(ValueError, match="64x64"):
        adjust.mean_face_color(np.zeros((32, 32, 3)), AlignmentTemplate.for_size(64))


def test_exposure_only_keeps_a_greyscale_photo_grey():
    rng = np.random.default_rng(2)
    grey = rng.integers(30, 220, (20, 20, 1)).repeat(3, -1).astype(np.uint8)
    assert adjust.is_greyscale(grey) and adjust.is_greyscale(grey[..., 0])
    source = adjust.to_ycrcb(grey.reshape(-1, 3).astype(float)).mean(0)
    skin = np.array([150.0, 150.0, 110.0])  # a warm target
    tinted = adjust.adjust_photo(grey, source, skin)
    assert not adjust.is_greyscale(tinted)  # the full shift would tint it
    brighter = adjust.adjust_photo(grey, source, adjust.exposure_only(source, skin))
    assert adjust.is_greyscale(brighter) and brighter.mean() > grey.mean()
    colour = grey.copy()
    colour[..., 0] = np.clip(colour[..., 0].astype(int) + 10, 0, 255)
    assert not adjust.is_greyscale(colour)
    stamped = grey.copy()
    stamped[0, 0] = [255, 0, 0]  # one coloured pixel (a date stamp) in 400
    assert adjust.is_greyscale(stamped)
    with pytest.raises(ValueError, match="empty"):
        adjust.is_greyscale(np.zeros((0, 0, 3)))
    with pytest.raises(ValueError, match=r"\[h, w, 3\]"):
        adjust.adjust_photo(grey[..., 0], source, skin)
