"""The recipe scorer's cross-photo pairs (normface.evaluation.recipe) on constructed photos."""

from __future__ import annotations

import numpy as np
import pytest

from normface.data import schema
from normface.evaluation import protocol, recipe


def _held_out(people: list[str], size: int = 8) -> recipe.HeldOut:
    n = len(people)
    images = np.stack([np.full((size, size, 3), 10 * i, np.uint8) for i in range(n)])
    marks = np.tile(np.linspace(1, size - 2, 136).reshape(1, 68, 2), (n, 1, 1))
    photos = protocol.TestPhotos([f"k{i}" for i in range(n)], np.array(people), images, marks)
    # Row i of features and descriptors is i everywhere, so each pair's photos can be read back.
    feats = np.repeat(np.arange(n, dtype=np.float32)[:, None], 4, 1)
    return recipe.HeldOut(photos, feats, np.repeat(feats[:, :1], 3, 1) + 100)


def test_cross_photo_examples_pair_two_photos_of_one_person():
    held = _held_out(["a", "a", "a", "b", "c", "c"])  # b has one photo: no pair
    pairs = recipe.cross_photo_examples(held, size=4)
    a = pairs[schema.FEATURES][:, 0].astype(int)
    b = pairs[schema.DESCRIPTOR][:, 0].astype(int) - 100
    assert sorted(a.tolist()) == [0, 1, 2, 4, 5]
    assert all(i != j and held.photos.people[i] == held.photos.people[j] for i, j in zip(a, b))
    assert pairs[schema.IMAGE].shape == (5, 4, 4, 3) and pairs[schema.IMAGE].dtype == np.float32
    # Photo B's image (constant 10 * index), resampled to 4 px and scaled to [0, 1].
    np.testing.assert_allclose(pairs[schema.IMAGE][:, 0, 0, 0], 10 * b / 255.0, atol=1e-6)
    assert pairs[schema.LANDMARKS].max() < 4  # landmarks follow the resampling
    assert len(recipe.cross_photo_examples(held, size=4, max_pairs=2)[schema.FEATURES]) == 2
    with pytest.raises(ValueError, match="at least two photos"):
        recipe.cross_photo_examples(_held_out(["a", "b"]), size=4)
