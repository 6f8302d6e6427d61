"""Tests of the leakage screening and deduplication stage (normface.data.screen).

A tiny faces folder of synthetic faces with a stand-in descriptor (the scaled pixels: identical
images are 0 apart, a lightly noised copy ~0.1, different faces > 1; normface.testing.screening,
shared with the Beam pipeline's test), so each rule is exercised without the real encoder: a
planted copy of a test photo, a planted near-duplicate, a child."""

from __future__ import annotations

import json

import numpy as np
import pytest

from normface.data import faceset, screen
from normface.testing.screening import pixel_descriptor, write_screening_faces


@pytest.fixture()
def faces_root(tmp_path):
    """aligned/ (test + validation photos and the pool's photos, with a manifest) and averaged/."""
    return write_screening_faces(tmp_path / "faces")


def test_screening_removes_planted_copy_near_duplicate_and_child(faces_root):
    report = screen.screen_faces(faces_root, pixel_descriptor, progress=lambda _: None)
    out = screen.screened_dir(faces_root)
    kept = {e.person for e in faceset.iter_faces(out, "train")}
    removed = {json.loads(ln)["key"]: json.loads(ln) for ln in (out / screen.REMOVED_FILE).read_text().splitlines()}
    assert removed["utkface/planted_copy"]["reason"] == "near a held-out person"
    assert removed["utkface/planted_copy"]["distance"] < 1e-3
    # The near-duplicate pair collapses to one face, and the one kept is the first by key.
    assert removed["scut/planted_near_dup"]["reason"] == "near-duplicate"
    assert removed["scut/planted_near_dup"]["nearest"] == "fairface/train_1"
    assert removed["utkface/child"]["reason"] == "child"
    assert removed["utkface/ff_copy"]["reason"] == "near-duplicate of a held-out photo"
    assert kept == {"fairface/train_1", "fairface/train_2", "lfw/Train_Person", "utkface/adult", "utkface/ff_near"}
    assert report["training_faces_kept"] == 5 and report["pool_faces"] == 9
    assert report["removed"] == {"near a held-out person": 1, "near-duplicate of a held-out photo": 1, "child": 1,
                                 "near-duplicate": 1}
    # The held-out faces are in the screened set, and none of them is a training face.
    assert {e.person for e in faceset.iter_faces(out, "test")} == {"lfw/Test_Person", "fairface/val_9"}
    assert not kept & {e.person for s in ("validation", "test") for e in faceset.iter_faces(out, s)}
    # Two photos of the one held-out LFW person with 2+ photos: one pair, farther than 0.45 here.
    assert report["estimated_miss_rate"]["same_person_pairs"] == 1
    assert report["estimated_miss_rate"]["value"] == 1.0


def test_invariance_people_are_training_people_with_several_photos():
    records = [{"status": "aligned", "person": p, "split": s, "key": k} for p, s, k in [
        ("lfw/A", "train", "lfw/A/1"), ("lfw/A", "train", "lfw/A/2"), ("lfw/B", "train", "lfw/B/1"),
        ("lfw/C", "test", "lfw/C/1"), ("lfw/C", "test", "lfw/C/2"), ("london/001", "train", "london/001_03"),
        ("london/001", "train", "london/001_08"), ("lfw/D", "train", "lfw/D/1"), ("lfw/D", "train", "lfw/D/2")]]
    out = screen.invariance_people(records, {"lfw/A", "lfw/B", "london/001"})
    # lfw/B has one photo, lfw/C is a test person, lfw/D was removed from training.
    assert out == {"lfw": {"lfw/A": ["lfw/A/1", "lfw/A/2"]}, "london": {"london/001": ["london/001_03", "london/001_08"]}}


def test_labelled_sources_are_not_screened_by_face_and_children_can_stay(faces_root):
    report = screen.screen_faces(faces_root, pixel_descriptor, screen.ScreenConfig(min_age=0),
                                 progress=lambda _: None)
    assert report["removed"]["child"] == 0
    assert report["per_source"]["lfw"] == {"in": 1, "near a held-out person": 0,
                                           "near-duplicate of a held-out photo": 0, "child": 0, "near-duplicate": 0,
                                           "kept": 1}


def test_rerun_with_other_thresholds_is_refused_and_same_rerun_reuses_the_cache(faces_root):
    calls = []

    def counting(images, landmarks):
        calls.append(len(images))
        return pixel_descriptor(images, landmarks)

    first = screen.screen_faces(faces_root, counting, progress=lambda _: None)
    encoded = sum(calls)
    again = screen.screen_faces(faces_root, counting, progress=lambda _: None)
    assert again == first and sum(calls) == encoded  # nothing encoded twice
    with pytest.raises(ValueError, match="other settings"):
        screen.screen_faces(faces_root, counting, screen.ScreenConfig(leak_threshold=0.5), progress=lambda _: None)


def test_helpers():
    assert screen.min_age_of({"age_group": "3-9"}) == 3 and screen.min_age_of({"age_group": "70+"}) == 70
    assert screen.min_age_of({"age": 7, "age_group": "3-9"}) == 7 and screen.min_age_of({}) is None
    desc = np.array([[0, 0], [0.1, 0], [5, 5], [5.2, 5], [9, 0]], np.float32)
    groups = screen.duplicate_groups(desc, 0.3)
    assert groups[0] == groups[1] and groups[2] == groups[3] and len(set(groups)) == 3
    idx, dist = screen.nearest(desc, desc, exclude_self=True)
    assert list(idx[:4]) == [1, 0, 3, 2] and dist[0] == pytest.approx(0.1, abs=1e-6)
    with pytest.raises(ValueError, match="dup_threshold"):
        screen.ScreenConfig(leak_threshold=0.2, dup_threshold=0.3)
