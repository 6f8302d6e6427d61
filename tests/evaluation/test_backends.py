"""Tests of normface.evaluation.backends: the LiteRT-against-TensorFlow measures and the photo
draw of experiments/backend_equality.py (issue 31)."""

from __future__ import annotations

import numpy as np
import pytest

from normface.data import splits
from normface.evaluation import backends
from normface.serving.normalizer import Result


def result(image, landmarks, confidence=0.3) -> Result:
    image = np.asarray(image, np.uint8)
    return Result(image=image, landmarks=np.asarray(landmarks, np.float32), texture=image, face_box=(0, 0, 4, 4),
                  features=np.zeros(4), confidence=confidence, aligned_input=image, num_faces=1)


def test_compare_measures_grey_levels_and_landmarks():
    base = np.full((10, 10, 3), 100, np.uint8)
    lms = np.zeros((68, 2))
    near = base.copy()
    near[0, :3] += 1  # 9 values of 300 (3%) one grey level apart: the 99th percentile is 1
    far = base.copy()
    far[0, 0, 0] = 103  # one value (0.33%) three apart: below the 99th percentile
    ours = [result(base, lms), result(base, lms)]
    out = backends.compare(ours, [result(near, lms + 0.01), result(far, lms, 0.31)])
    assert out["image"]["p99"] == 1.0 and out["image"]["max"] == 3 and out["image"]["worst_face_p99"] == 1.0
    assert out["image"]["share_equal"] == pytest.approx(1 - 10 / 600, abs=1e-4)
    assert out["landmarks_px"]["max"] == pytest.approx(0.01, abs=1e-6)
    assert out["confidence_max_diff"] == pytest.approx(0.01) and out["pass"]
    two = base.copy()
    two[:2] += 2  # 20% of the values two apart
    assert not backends.compare(ours[:1], [result(two, lms)])["pass"]
    assert not backends.compare(ours[:1], [result(base, lms + 0.06)])["pass"]  # a landmark 0.06 px off
    with pytest.raises(ValueError, match="same faces"):
        backends.compare(ours, ours[:1])
    assert "<= 1" in backends.markdown(out) and "<= 0.05" in backends.markdown(out)


def test_the_photos_are_test_people_s_one_each_and_seeded(data_root):
    photos = backends.lfw_test_photos(data_root, 50, seed=0)
    people = [p.parent.name for p in photos]
    assert len(photos) == 50 and len(set(people)) == 50 and all(p.is_file() for p in photos)
    assert set(people) <= set(splits.read_lfw_people(data_root / "lfw_peopleDevTest.txt"))
    assert photos == backends.lfw_test_photos(data_root, 50, seed=0) != backends.lfw_test_photos(data_root, 50, seed=1)
