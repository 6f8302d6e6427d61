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
