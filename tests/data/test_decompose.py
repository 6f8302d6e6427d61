"""Tests of the texture/landmark decomposition and the 68-point mirror permutation."""

from __future__ import annotations

import numpy as np
import pytest

from normface.faces.alignment import AlignmentTemplate, eye_centers
from normface.data import decompose
from normface.testing import synthetic

SIZE = 64
# Texture -> image round trip: two bilinear resamplings of sharp synthetic edges, and the inverse
# spline is only approximately the inverse warp. Mean L1 per channel value in [0, 1].
ROUND_TRIP_MAX_L1 = 0.02


@pytest.fixture(scope="module")
def faces():
    template = AlignmentTemplate.for_size(SIZE)
    images, marks = synthetic.synthetic_faces(6, template, seed=3)
    return template, images, marks


def test_round_trip_reproduces_the_aligned_face(faces):
    _, images, marks = faces
    mean = decompose.mean_landmarks(marks, SIZE)
    textures = decompose.to_texture(images / 255.0, marks, mean)
    back = decompose.to_image(textures, mean, marks)
    l1 = np.abs(back - images / 255.0).mean()
    assert l1 < ROUND_TRIP_MAX_L1, l1
    # The texture really moved: without the warp back it is far from the face.
    assert np.abs(textures - images / 255.0).mean() > 2 * l1
    # Back through the bicubic warp (as a --warp_resampling=bicubic model places its texture):
    # as close, and sampled otherwise.
    bicubic = decompose.to_image(textures, mean, marks, resampling="bicubic")
    assert np.abs(bicubic - images / 255.0).mean() < ROUND_TRIP_MAX_L1
    assert np.abs(bicubic - back).max() > 1e-3


def test_texture_is_registered_to_the_mean(faces):
    template, images, marks = faces
    mean = decompose.mean_landmarks(marks, SIZE)
    textures = decompose.to_texture(images / 255.0, marks, mean)
    # Synthetic eyes are dark: in every texture the mean landmarks' eye centres are dark pixels.
    for (x, y) in np.round(eye_centers(mean)).astype(int):
        assert np.all(textures[:, y, x].mean(-1) < images.mean() / 255.0)
    # A face already at the mean landmarks is left alone.
    same = decompose.to_texture(images[:1] / 255.0, mean[None], mean)
    np.testing.assert_allclose(same, images[:1] / 255.0, atol=1e-4)


def test_mean_landmarks_are_the_symmetrized_training_mean(faces):
    _, _, marks = faces
    plain = decompose.mean_landmarks(marks, SIZE, symmetric=False)
    np.testing.assert_allclose(plain, marks.astype(np.float64).mean(0))
    sym = decompose.mean_landmarks(marks, SIZE)
    np.testing.assert_allclose(decompose.mirror_landmarks(sym, SIZE), sym, atol=1e-12)
    np.testing.assert_allclose(sym, 0.5 * (plain + decompose.mirror_landmarks(plain, SIZE)))
    with pytest.raises(ValueError, match="68, 2"):
        decompose.mean_landmarks(np.zeros((3, 5, 2)), SIZE)


def test_mirror_permutation_keeps_left_right_semantics():
    perm = decompose.MIRROR_PERMUTATION
    assert sorted(perm) == list(range(68))
    np.testing.assert_array_equal(perm[perm], np.arange(68))  # an involution
    canon = synthetic.canonical_landmarks(AlignmentTemplate.for_size(SIZE))
    np.testing.assert_allclose(decompose.mirror_landmarks(canon, SIZE), canon, atol=1e-9)
    # A face turned slightly: after the mirror, index 36 is still the image-left eye's outer corner,
    # 0 still the image-left end of the jaw, 48 the image-left mouth corner.
    face = canon + np.array([3.0, 0.0]) * (canon[:, :1] / SIZE)
    flipped = decompose.mirror_landmarks(face, SIZE)
    for left, right in ((36, 45), (0, 16), (48, 54), (39, 42), (17, 26)):
        assert flipped[left, 0] < flipped[right, 0]
    # ... and sits where the mirrored image has that feature: the subject's other eye corner.
    np.testing.assert_allclose(flipped[36], [SIZE - 1 - face[45, 0], face[45, 1]])
