"""Tests of the invariance pairs (normface.data.pairs) and their mixing into the input pipeline.

A tiny faces folder: training people with several photos (LFW-like and a London neutral/smiling
pair), a validation and a test person, screened neutral averages and invariance.json, and one
training photo planted as a copy of a test photo (it must be dropped)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from normface.data import align, build, faceset, pairs, pipeline, records, screen, splits
from normface.faces.alignment import AlignmentTemplate
from normface.testing.synthetic import fake_record_encoder, synthetic_faces

SIZE = 32
PHOTOS = {  # person -> (split, photo count)
    "lfw/Ann": ("train", 3), "lfw/Bob": ("train", 2), "london/001": ("train", 2), "lfw/Cal": ("train", 1),
    "lfw/Val": ("validation", 2), "lfw/Tess": ("test", 2),
}


def descriptors(images, landmarks):
    return fake_record_encoder(images, landmarks)[1]


@pytest.fixture(scope="module")
def faces_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    template = AlignmentTemplate.for_size(SIZE)
    aligned, screened = faceset.aligned_dir(root), screen.screened_dir(root)
    faceset.write_template(aligned, template)
    faceset.write_template(screened, template)
    images, marks = synthetic_faces(sum(n for _, n in PHOTOS.values()) + 4, template, seed=2)
    i, keys = 0, {}
    for person, (split, n) in PHOTOS.items():
        for j in range(n):
            key = f"{person}/{j}"
            faceset.write_face(aligned, faceset.FaceEntry(person, split, marks[i].tolist(), [f"{key}.jpg"], key=key),
                               images[i])
            keys.setdefault(person, []).append((key, i))
            i += 1
        if split == "train":  # the neutral average (another synthetic face)
            faceset.write_face(screened, faceset.FaceEntry(person, split, marks[i].tolist(), [f"{person}.jpg"]), images[i])
            i += 1
    # Plant: Bob's second photo is a copy of Tess's first (a test photo).
    tess_key, tess_i = keys["lfw/Tess"][0]
    bob_entry = faceset.read_entry(aligned, "train", "lfw/Bob/1")
    bob_entry.landmarks = marks[tess_i].tolist()
    faceset.write_face(aligned, bob_entry, images[tess_i])
    people = {s: [p for p, (sp, _) in PHOTOS.items() if sp == s] for s in splits.SPLITS}
    splits.write_splits(aligned / align.SPLITS_FILE, people, seed=0)
    invariance = {"lfw": {p: [k for k, _ in keys[p]] for p in ("lfw/Ann", "lfw/Bob")},
                  "london": {"london/001": [k for k, _ in keys["london/001"]]}}
    (screened / screen.INVARIANCE_FILE).write_text(json.dumps(invariance))
    main = tmp_path_factory.mktemp("records")
    build.build_records(screened, str(main), build.BuildConfig(morphs_per_face=1, shard_size=4, encoder="fake"),
                        fake_record_encoder, splits=["train"], log=lambda _: None)
    return root, main


def test_pairs_never_pair_two_people_nor_use_held_out_people(faces_root):
    root, _ = faces_root
    found, report = pairs.plan_pairs(root, progress=lambda _: None)
    assert report["photos"] == 7 and report["people"] == 3
    for pair in found:
        assert pair.photo.person == pair.target.person
        assert pair.photo.split == pair.target.split == "train"
        assert pair.photo.person not in ("lfw/Val", "lfw/Tess")
    # With descriptors, the planted copy of a test photo is dropped.
    kept, report = pairs.plan_pairs(root, descriptors, progress=lambda _: None)
    assert report["near_held_out_dropped"] == 1 and "lfw/Bob/1" not in {p.photo.key for p in kept}


def test_check_pair_refuses_other_people_and_held_out_people(faces_root):
    root, _ = faces_root
    aligned, screened = faceset.aligned_dir(root), screen.screened_dir(root)
    person_split = splits.split_of(splits.read_splits(aligned / align.SPLITS_FILE))
    ann = faceset.read_entry(aligned, "train", "lfw/Ann/0")
    bob_target = faceset.read_entry(screened, "train", "lfw/Bob")
    with pytest.raises(ValueError, match="different people"):
        pairs.check_pair(pairs.Pair(ann, bob_target), person_split)
    val = faceset.read_entry(aligned, "validation", "lfw/Val/0")
    val_target = faceset.FaceEntry("lfw/Val", "train", val.landmarks, [], key="lfw/Val")
    with pytest.raises(ValueError, match="training split"):
        pairs.check_pair(pairs.Pair(val, val_target), person_split)
    moved = faceset.FaceEntry("lfw/Val", "train", val.landmarks, [], key="lfw/Val/0")
    with pytest.raises(ValueError, match="validation person"):
        pairs.check_pair(pairs.Pair(moved, val_target), person_split)


def test_pair_records_hold_the_photos_features_and_the_neutral_target(faces_root, tmp_path):
    root, main = faces_root
    out = tmp_path / "pairs"
    meta = pairs.build_pair_records(root, str(main), str(out), fake_record_encoder, "fake",
                                    descriptor_fn=descriptors, shard_size=4, log=lambda _: None)
    assert meta.mirrored and meta.splits["train"]["count"] == 6
    np.testing.assert_allclose(meta.mean_landmarks, records.read_meta(main).mean_landmarks)
    aligned, screened = faceset.aligned_dir(root), screen.screened_dir(root)
    for raw in tf.data.TFRecordDataset(records.shard_files(out, meta, "train")):
        ex = tf.train.Example.FromString(raw.numpy()).features.feature
        person = ex["person"].bytes_list.value[0].decode()
        photo_key = ex["sources"].bytes_list.value[0].decode()
        photo = faceset.read_entry(aligned, "train", photo_key)
        assert photo.person == person
        image = faceset.load_face_image(aligned, photo)
        feats, desc = fake_record_encoder(image[None], photo.landmarks_array[None])
        np.testing.assert_allclose(ex["features"].float_list.value, feats[0], rtol=1e-6)
        target = faceset.read_entry(screened, "train", person)
        np.testing.assert_allclose(np.reshape(ex["landmarks"].float_list.value, (68, 2)), target.landmarks_array)
        decoded = tf.io.decode_png(ex["image"].bytes_list.value[0]).numpy()
        np.testing.assert_array_equal(decoded, faceset.load_face_image(screened, target))
    # Resumable: a rerun writes nothing new and gives the same meta.
    again = pairs.build_pair_records(root, str(main), str(out), fake_record_encoder, "fake",
                                     descriptor_fn=descriptors, shard_size=4, log=lambda _: None)
    assert again.splits == meta.splits


def test_pipeline_mixes_pairs_at_the_ratio_and_checks_they_match(faces_root, tmp_path):
    root, main = faces_root
    out = tmp_path / "pairs"
    pairs.build_pair_records(root, str(main), str(out), fake_record_encoder, "fake", log=lambda _: None)
    def feature_rows(ds):
        return {tuple(np.round(f, 5)) for b in ds for f in b["features"].numpy()}

    pair_features = feature_rows(pipeline.make_dataset(out, "train", 64, shuffle=False))
    main_features = feature_rows(pipeline.make_dataset(main, "train", 64, shuffle=False))
    assert not pair_features & main_features
    batch = next(iter(pipeline.make_dataset(main, "train", 200, repeat=True, seed=1, pairs_dir=out, pairs_ratio=0.3)))
    drawn = [tuple(np.round(f, 5)) in pair_features for f in batch["features"].numpy()]
    assert 0.2 < np.mean(drawn) < 0.4  # binomial(200, 0.3): 3 sigma is 0.1
    assert all(d or tuple(np.round(f, 5)) in main_features for d, f in zip(drawn, batch["features"].numpy()))
    with pytest.raises(ValueError, match="repeat"):
        pipeline.make_dataset(main, "train", 4, pairs_dir=out, pairs_ratio=0.3)
    with pytest.raises(ValueError, match="pairs_dir"):
        pipeline.make_dataset(main, "train", 4, repeat=True, pairs_ratio=0.3)
