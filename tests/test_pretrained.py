"""The shipped model on people it never saw (issue 7's acceptance test).

20 seeded LFW View 1 *test* people with 2+ photos: normalize photo A of each; the output must be
within dlib's same-person distance 0.6 of photo A for >= 15 of them and of the person's other
photo B for >= 8 (the harder, cross-photo check). Outputs must be deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest

from normface import io_utils, splits
from normface.inference import PRETRAINED_DIR, DEFAULT_MODEL, FaceNormalizer

pytestmark = pytest.mark.skipif(not (PRETRAINED_DIR / DEFAULT_MODEL).is_dir(),
                                reason="no shipped model in normface/pretrained")


@pytest.fixture(scope="module")
def pairs(data_root):
    people = splits.read_lfw_people(data_root / "lfw_peopleDevTest.txt")
    rng = np.random.default_rng(7)
    chosen = []
    for name in rng.permutation(sorted(people)):
        photos = sorted((data_root / "lfw" / name).glob("*.jpg"))
        if len(photos) >= 2:
            chosen.append((photos[0], photos[1]))
        if len(chosen) == 20:
            break
    return chosen


def test_identity_on_held_out_people(pairs):
    normalizer = FaceNormalizer.from_pretrained()
    within_a = within_b = 0
    for path_a, path_b in pairs:
        (aligned_a, lm_a, _), = normalizer.align(io_utils.read_rgb(path_a))
        (aligned_b, lm_b, _), = normalizer.align(io_utils.read_rgb(path_b))
        batch = (np.stack([aligned_a, aligned_b]), np.stack([lm_a, lm_b]))
        out = normalizer.normalize_aligned(*batch)
        again = normalizer.normalize_aligned(*batch)
        assert np.array_equal(out["image"], again["image"])  # deterministic run to run
        within_a += out["confidence"][0] < 0.6
        within_b += np.linalg.norm(out["output_descriptor"][0] - out["input_descriptor"][1]) < 0.6
    print(f"within 0.6 of photo A: {within_a}/20, of photo B: {within_b}/20")
    assert within_a >= 15 and within_b >= 8, (within_a, within_b)
