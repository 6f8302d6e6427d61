"""Tests of neighbour search, morph planning and morph rendering (paper Sec. 5.1)."""

from __future__ import annotations

import numpy as np
import pytest

from normface.faces.alignment import AlignmentTemplate
from normface.data import composite, morph
from normface.data import decompose
from normface.testing import synthetic

SIZE = 32


@pytest.fixture(scope="module")
def faces():
    template = AlignmentTemplate.for_size(SIZE)
    images, marks = synthetic.synthetic_faces(5, template, seed=7)
    mean = decompose.mean_landmarks(marks, SIZE)
    textures = decompose.to_texture(images / 255.0, marks, mean)
    return images, marks, textures, mean


def test_interpolation_weight_zero_and_one_are_exact(faces):
    _, marks, textures, _ = faces
    for a, b in ((marks[0], marks[1]), (textures[0], textures[1])):
        np.testing.assert_array_equal(morph.interpolate(a, b, 0.0), a.astype(np.float64))
        np.testing.assert_array_equal(morph.interpolate(a, b, 1.0), b.astype(np.float64))
        np.testing.assert_allclose(morph.interpolate(a, b, 0.25), 0.75 * a + 0.25 * b, rtol=1e-6)


def test_morph_with_weight_zero_is_the_seed_and_one_the_neighbour(faces):
    images, marks, textures, mean = faces
    lam = composite.CompositeConfig().lam(SIZE)
    # All-ones mask: the composite is the morphed texture itself, so (1, 1) is the neighbour.
    ones = morph.Morpher(images, marks, textures, mean, composite.Compositor(np.ones((SIZE, SIZE)), lam))
    hull = morph.Morpher(images, marks, textures, mean, composite.Compositor.for_landmarks(mean, SIZE))
    for morpher in (ones, hull):
        seed_marks, seed_tex = morpher.morph(0, 1, 0.0, 0.0)
        np.testing.assert_array_equal(seed_marks, marks[0])
        np.testing.assert_allclose(seed_tex, textures[0], atol=1e-6)
    nbr_marks, nbr_tex = ones.morph(0, 1, 1.0, 1.0)
    np.testing.assert_array_equal(nbr_marks, marks[1])
    np.testing.assert_allclose(nbr_tex, textures[1], atol=1e-6)
    # Rendered (warped back to the morphed landmarks): the neighbour's face, up to resampling.
    plan = morph.MorphPlan(np.array([0, 0]), np.array([1, -1]), np.array([[1, 1], [0, 0]], np.float32))
    rendered, tex, out_marks = ones.render(plan)
    assert np.abs(rendered[0] / 255.0 - images[1] / 255.0).mean() < 0.03
    np.testing.assert_array_equal(rendered[1], images[0])  # an original is passed through exactly
    np.testing.assert_array_equal(out_marks, marks[[1, 0]])


def test_balanced_theta_makes_both_terms_matter(faces):
    _, marks, textures, _ = faces
    dist_l, dist_t = morph.distance_terms(marks, textures)
    theta = morph.balanced_theta(dist_l, dist_t)
    upper = np.triu_indices(len(marks), 1)
    assert np.median(theta * dist_l[upper]) == pytest.approx(np.median(dist_t[upper]))
    np.testing.assert_allclose(dist_l[0, 1], np.linalg.norm(marks[0] - marks[1]), rtol=1e-6)
    np.testing.assert_allclose(dist_t[2, 3], np.linalg.norm(textures[2] - textures[3]), rtol=1e-5)


def test_nearest_neighbours_exclude_self_and_sort_by_distance():
    d = np.array([[0, 3, 1, 2], [3, 0, 5, 4], [1, 5, 0, 9], [2, 4, 9, 0]], float)
    np.testing.assert_array_equal(morph.nearest_neighbours(d, 2), [[2, 3], [0, 3], [0, 1], [0, 1]])
    with pytest.raises(ValueError, match="k must be"):
        morph.nearest_neighbours(d, 4)


def test_plan_is_balanced_independent_and_deterministic():
    neighbours = np.array([[1, 2], [0, 2], [0, 1]])
    plan = morph.plan_examples(3, neighbours, 3000, np.random.default_rng(0))
    assert len(plan) == 3003
    originals = plan.neighbour < 0
    assert originals.sum() == 3 and sorted(plan.seed[originals]) == [0, 1, 2]
    np.testing.assert_array_equal(plan.weights[originals], 0)
    morphs = ~originals
    assert np.all(np.bincount(plan.seed[morphs]) == 1000)
    for seed in range(3):  # partners only among the seed's k nearest
        assert set(plan.neighbour[morphs & (plan.seed == seed)]) == set(neighbours[seed])
    w = plan.weights[morphs]
    assert w.min() >= 0 and w.max() <= 1 and abs(w.mean() - 0.5) < 0.02
    assert abs(np.corrcoef(w[:, 0], w[:, 1])[0, 1]) < 0.05  # two independent weights
    again = morph.plan_examples(3, neighbours, 3000, np.random.default_rng(0))
    np.testing.assert_array_equal(again.weights, plan.weights)
    other = morph.plan_examples(3, neighbours, 3000, np.random.default_rng(1))
    assert not np.array_equal(other.weights, plan.weights)


def test_contact_sheet_layout(faces):
    images, marks, textures, mean = faces
    morpher = morph.Morpher(images, marks, textures, mean, composite.Compositor.for_landmarks(mean, SIZE))
    neighbours = morph.nearest_neighbours(sum(morph.distance_terms(marks, textures)), 2)
    sheet = morph.contact_sheet(morpher, neighbours, [0, 3], np.random.default_rng(0))
    assert sheet.shape == (4 * SIZE, 7 * SIZE, 3) and sheet.dtype == np.uint8
    np.testing.assert_array_equal(sheet[:SIZE, :SIZE], images[0])
