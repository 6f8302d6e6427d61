"""The protocol's tables (normface.evaluation.protocol) on constructed descriptors and images with
known answers."""

from __future__ import annotations

import numpy as np
import pytest

from normface.evaluation import metrics, protocol

# Two people, two photos each, 2-D "descriptors": the people 5 apart, each output a known distance
# from its own photo.
PEOPLE = np.array(["a", "a", "b", "b"])
REAL = np.array([[0.0, 0.0], [0.2, 0.0], [5.0, 0.0], [5.2, 0.0]])
OWN = np.array([0.1, 0.7, 0.3, 0.5])


def test_identity_table_known_answers():
    out = REAL.copy()
    out[:, 1] += OWN  # each output straight "above" its own photo
    row = protocol.identity_table(REAL, out, PEOPLE, far_threshold=0.35)
    assert row["own_within_0.6"] == pytest.approx(0.75)  # 0.1, 0.3, 0.5 < 0.6 <= 0.7
    assert row["own_within_far0.1%(0.350)"] == pytest.approx(0.5)  # 0.1, 0.3
    assert row["own_median"] == pytest.approx(0.4)
    # Cross-photo (output of A vs the person's other photo B): sqrt(0.2^2 + own^2) = 0.224,
    # 0.728, 0.361, 0.539 -> 3 of 4 within 0.6; every impostor distance is above 4.8, so every
    # genuine pair is accepted at any FAR.
    assert row["cross_within_0.6"] == pytest.approx(0.75)
    assert row["cross_TAR@FAR0.1%"] == 1.0 and row["cross_TAR@FAR1.0%"] == 1.0
    assert row["rank1"] == 1.0
    # The outputs of the second photos swapped between the people: each probe is nearest the
    # other person's gallery photo.
    swapped = out[[0, 3, 2, 1]]
    assert protocol.rank1(swapped, REAL, PEOPLE) == 0.0
    assert protocol.identity_table(REAL, swapped, PEOPLE, 0.35)["own_within_0.6"] == pytest.approx(0.5)


def test_identity_table_without_cross_pairs():
    row = protocol.identity_table(REAL[[0, 2]], REAL[[0, 2]], PEOPLE[[0, 2]], far_threshold=0.5)
    assert row == {"own_within_0.6": 1.0, "own_within_far0.1%(0.500)": 1.0, "own_median": 0.0}


def test_invariance_table_known_answers():
    people = np.array(["a", "a", "a", "b", "b"])  # b has fewer than 3 photos: left out
    images = np.stack([np.full((4, 4, 3), v) for v in (0.0, 30.0, 60.0, 0.0, 255.0)])
    landmarks = np.stack([np.zeros((68, 2)) + d for d in ([3.0, 4.0], [0.0, 0.0], [-3.0, -4.0], [0, 0], [9, 9])])
    table = protocol.invariance_table(images, landmarks, people)
    assert table == pytest.approx({"pixel_l1": 20.0, "landmark_px": 10.0 / 3.0, "people": 1})
    both = protocol.invariance_table(images, None, people, min_photos=2)
    assert both == pytest.approx({"pixel_l1": (20.0 + 127.5) / 2, "people": 2})
    assert protocol.invariance_table(images, None, people, min_photos=4) == {}


def test_group_table_known_answers():
    labels = [{"race": "A", "gender": "male"}, {"race": "A", "gender": "female"},
              {"race": "B", "gender": "male"}, {"race": "B"}, {"race": "C"}]
    own = {"new": np.array([0.1, 0.7, 0.3, 0.5, 0.2]), "old": np.array([0.9, 0.9, 0.1, 0.1, 0.9])}
    rows = protocol.group_table(own, labels, keys=("race", "gender"), min_photos=2)
    # race C (1 photo) and gender female (1) are below min_photos; missing labels are skipped.
    assert set(rows) == {"race: A", "race: B", "gender: male"}
    assert rows["race: A"]["photos"] == 2 and rows["race: A"]["new within 0.6"] == pytest.approx(0.5)
    assert rows["race: A"]["new median"] == pytest.approx(0.4)
    assert rows["race: B"]["old within 0.6"] == 1.0 and rows["race: B"]["new within 0.6"] == 1.0
    assert rows["gender: male"]["old within 0.6"] == pytest.approx(0.5)
    assert "new judge cosine" not in rows["race: A"]
    judged = {"new": np.array([0.9, 0.5, 0.2, 0.4, 0.0])}
    rows = protocol.group_table(own, labels, keys=("race", "gender"), min_photos=2, judged=judged)
    assert rows["race: A"]["new judge cosine"] == pytest.approx(0.7)
    assert rows["gender: male"]["new judge cosine"] == pytest.approx(0.55) and "old judge cosine" not in rows["race: B"]


def test_judge_identity_table_known_answers():
    """Three people on orthogonal axes. Outputs of persons a and b land on their own axis (every
    genuine pair accepted), person c's outputs on a fourth axis, like nobody (none accepted)."""
    axes = np.eye(4)
    people = np.array(["a", "a", "a", "a", "b", "b", "c", "c"])
    real = axes[[0, 0, 0, 0, 1, 1, 2, 2]]
    out = axes[[0, 0, 0, 0, 1, 1, 3, 3]]
    row = protocol.judge_identity_table(real, out, people)
    # Genuine ordered pairs: a 4*3 = 12, b 2, c 2 (all 16); accepted: a's and b's 14.
    assert row["genuine_pairs"] == 16
    assert row["cross_TAR@FAR1.0%"] == pytest.approx(14 / 16)
    # Person-balanced: a 1, b 1, c 0 -> 2/3, whatever a's many pairs.
    assert row["cross_TAR@FAR1.0%_balanced"] == pytest.approx(2 / 3)
    # Rank-1 gallery = first photos (0, 4, 6); probes 1-3 (a), 5 (b), 7 (c: equally far from all, not c).
    assert row["rank1"] == pytest.approx(4 / 5)
    assert row["own_mean_cosine"] == pytest.approx(np.mean(np.diag(metrics.cosine_matrix(out, real))))
    assert row["distinctiveness"] == pytest.approx(metrics.distinctiveness(out, people))
    ceiling = protocol.judge_identity_table(real, None, people)
    assert ceiling["own_mean_cosine"] is None and ceiling["cross_TAR@FAR0.1%_balanced"] == 1.0
    rows = {"ceiling": ceiling, "model": row}
    protocol.ceiling_shares(rows, "ceiling")
    assert rows["model"]["rank1_of_ceiling"] == pytest.approx(row["rank1"] / ceiling["rank1"])
    assert "rank1_of_ceiling" not in rows["ceiling"]
