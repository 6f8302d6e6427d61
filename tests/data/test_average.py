"""Tests of per-person morph averaging (normface.data.average.average_faces)."""

from __future__ import annotations

import numpy as np
import pytest

from normface import warp
from normface.data import average as averaging


def _smooth_face(size=48):
    yy, xx = np.mgrid[0:size, 0:size] / size
    return np.stack([120 + 80 * np.sin(5 * xx) * np.cos(3 * yy), 100 + 60 * yy, 90 + 70 * xx * yy], -1)


def test_average_of_known_warps_recovers_the_face():
    """Warp one face by k random smooth warps (landmarks moved along), average: the original comes
    back inside the face (mean abs error < 2 of 255) and the mean landmarks are the inputs' mean."""
    size, k = 48, 6
    rng = np.random.default_rng(0)
    image = _smooth_face(size).astype(np.float32)
    base = rng.uniform(14, 34, (68, 2))
    warped, lms = [], []
    for _ in range(k):
        moved = base + rng.normal(0, 1.0, base.shape)
        out, _ = warp.warp_to_landmarks(image[None], base[None].astype(np.float32), moved[None].astype(np.float32))
        warped.append(out.numpy()[0])
        lms.append(moved)
    lms = np.array(lms)
    avg, mean_lm = averaging.average_faces(np.array(warped), lms)
    np.testing.assert_allclose(mean_lm, lms.mean(0), atol=1e-9)
    # Compare in the frame of the mean landmarks: warp the original there too.
    want, _ = warp.warp_to_landmarks(image[None], base[None].astype(np.float32), mean_lm[None].astype(np.float32))
    inside = (slice(16, 32), slice(16, 32))
    err = np.abs(avg[inside] - want.numpy()[0][inside]).mean()
    assert err < 2.0, err


def test_average_validates_shapes():
    with pytest.raises(ValueError, match="same k"):
        averaging.average_faces(np.zeros((2, 8, 8, 3)), np.zeros((3, 68, 2)))
    with pytest.raises(ValueError, match="at least one"):
        averaging.average_faces(np.zeros((0, 8, 8, 3)), np.zeros((0, 68, 2)))
