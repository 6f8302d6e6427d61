"""Tests of the gradient-domain compositing (paper Sec. 5.2)."""

from __future__ import annotations

import numpy as np
import pytest

from normface.faces.masks import hull_mask
from normface.faces.alignment import AlignmentTemplate
from normface.data import composite
from normface.testing import synthetic

SIZE = 48


def _textures(seed=0):
    """(foreground, background) ``[SIZE, SIZE, 3]``: the same smooth colours (as two registered
    faces have), different fine detail."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    smooth = 0.5 + 0.3 * np.stack([np.sin(3 * xx + c) * np.cos(2 * yy - c) for c in range(3)], -1)
    fg = smooth + 0.1 * rng.uniform(-1, 1, (SIZE, SIZE, 3))
    bg = smooth + 0.1 * rng.uniform(-1, 1, (SIZE, SIZE, 3)) + 0.05
    return fg, bg


@pytest.fixture(scope="module")
def compositor():
    mean = synthetic.canonical_landmarks(AlignmentTemplate.for_size(SIZE))
    return composite.Compositor.for_landmarks(mean, SIZE)


def test_all_ones_mask_gives_foreground_all_zeros_background():
    fg, bg = _textures()
    lam = composite.CompositeConfig().lam(SIZE)
    ones = composite.Compositor(np.ones((SIZE, SIZE)), lam)
    zeros = composite.Compositor(np.zeros((SIZE, SIZE)), lam)
    np.testing.assert_allclose(ones(fg, bg), fg, atol=1e-9)
    np.testing.assert_allclose(zeros(fg, bg), bg, atol=1e-9)


def _inner_differences(mask_core: np.ndarray, image: np.ndarray, axis: int) -> np.ndarray:
    """Forward differences along ``axis`` on edges whose both pixels lie in ``mask_core``."""
    inside = np.logical_and(np.delete(mask_core, 0, axis), np.delete(mask_core, -1, axis))
    return np.diff(image, axis=axis)[inside]


def test_gradient_inside_the_mask_matches_the_foreground(compositor):
    fg, bg = _textures(1)
    out = compositor(fg, bg)
    core = compositor.mask > 0.999
    for axis in (0, 1):
        g_out, g_fg, g_bg = (_inner_differences(core, x, axis) for x in (out, fg, bg))
        err = np.abs(g_out - g_fg).mean()
        # Only the smooth colour correction that hides the seam is added: < 2% of how much the
        # background's gradients differ (measured ~0.5%).
        assert err < 0.02 * np.abs(g_bg - g_fg).mean(), err
    # Far outside the mask the composite is the background.
    assert np.abs(out - bg)[compositor.mask < 1e-4].mean() < 0.01


def test_laplacian_inside_the_mask_matches_even_with_a_colour_offset(compositor):
    """With very different colours the correction is a smooth membrane (Poisson editing): the
    gradients then differ by ~offset / face width, but the Laplacian still matches F's."""
    fg, _ = _textures(2)
    bg = np.random.default_rng(3).uniform(0, 1, fg.shape)
    out = compositor(fg, bg)
    core = compositor.mask > 0.999
    inner = core[1:-1, 1:-1] & core[:-2, 1:-1] & core[2:, 1:-1] & core[1:-1, :-2] & core[1:-1, 2:]

    def laplacian(x):
        return (x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:] - 4 * x[1:-1, 1:-1])[inner]

    err = np.abs(laplacian(out) - laplacian(fg)).mean()
    assert err < 0.02 * np.abs(laplacian(bg) - laplacian(fg)).mean(), err


def test_hull_mask_and_config():
    mean = synthetic.canonical_landmarks(AlignmentTemplate.for_size(SIZE))
    mask = hull_mask(mean, SIZE, blur_sigma=2.0)
    assert mask.shape == (SIZE, SIZE) and mask.min() >= 0 and mask.max() <= 1
    cx, cy = np.round(mean.mean(0)).astype(int)
    assert mask[cy, cx] == pytest.approx(1.0) and mask[0, 0] == 0.0
    hard = hull_mask(mean, SIZE, blur_sigma=0.0)
    assert (hard == 1.0).sum() < (mask > 0.5).sum() + SIZE  # the blur softens, it does not grow
    assert composite.CompositeConfig().lam(128) == pytest.approx(1 / 64.0**2)


def test_bad_input_is_refused(compositor):
    with pytest.raises(ValueError, match="lambda"):
        composite.Compositor(np.ones((4, 4)), 0.0)
    with pytest.raises(ValueError, match="mask"):
        composite.Compositor(np.full((4, 4), 2.0), 1.0)
    with pytest.raises(ValueError, match="foreground"):
        compositor(np.zeros((SIZE, SIZE, 3)), np.zeros((SIZE + 1, SIZE, 3)))
    with pytest.raises(ValueError, match="attachment"):
        composite.CompositeConfig(attachment_fraction=0)
