"""The distinctiveness anatomy's image operations (experiments/distinct_anatomy.py)."""

from __future__ import annotations

import importlib.util

import numpy as np

from normface.utils import paths

spec = importlib.util.spec_from_file_location("distinct_anatomy",
                                              paths.REPO_ROOT / "experiments" / "distinct_anatomy.py")
anatomy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(anatomy)


def test_scale_deviation_scales_each_image_about_the_mean_image():
    rng = np.random.default_rng(0)
    images = rng.integers(80, 176, size=(6, 8, 8, 3)).astype(np.uint8)
    assert np.array_equal(anatomy.scale_deviation(images, 1.0), images)
    mean = images.astype(np.float64).mean(axis=0)
    out = anatomy.scale_deviation(images, 1.5)
    assert out.dtype == np.uint8
    scaled = out.astype(np.float64)
    assert np.abs(scaled - (mean + 1.5 * (images - mean))).max() <= 0.5 + 1e-9
    assert np.abs(scaled.mean(axis=0) - mean).max() <= 0.5 + 1e-9  # the mean image stays
    flat = anatomy.scale_deviation(images, 0.0).astype(np.float64)
    assert np.abs(flat - mean).max() <= 0.5 + 1e-9  # every image becomes the mean
    wild = anatomy.scale_deviation(images, 10.0)
    assert wild.dtype == np.uint8 and wild.min() == 0 and wild.max() == 255  # clipped, not wrapped


def test_face_regions_put_the_inner_face_in_the_outer_surroundings():
    size = 32
    square = np.array([[10, 10], [22, 10], [22, 22], [10, 22]], np.float64)[None]
    masks = anatomy.face_regions(square, size, 1.0)
    assert masks.shape == (1, size, size, 1)
    assert masks[0, 16, 16, 0] > 0.99 and masks[0, 2, 2, 0] < 0.01
    grown = anatomy.face_regions(square, size, 1.5)
    assert grown.sum() > 1.5 * masks.sum()  # grown about the centre: area x 2.25
    inner = np.full((1, size, size, 3), 200, np.uint8)
    outer = np.full((1, size, size, 3), 40, np.uint8)
    both = anatomy.inside_of(inner, outer, masks)
    assert both[0, 16, 16, 0] == 200 and both[0, 2, 2, 0] == 40
