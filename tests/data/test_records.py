"""Tests of the TFRecord writer, the tf.data pipeline and the build binary (issue 5)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from normface.faces.alignment import eye_centers
from normface.data import faceset, pipeline
from normface.data import decompose
from normface.data import build
from normface.data import records
from normface.data import schema
from normface.testing import synthetic

SIZE = 32
COUNTS = {"train": 6, "validation": 2, "test": 2}
FEATURE_DIM = 8


fake_encoder = synthetic.fake_record_encoder


CONFIG = build.BuildConfig(morphs_per_face=2, shard_size=5, seed=3, k=2, encoder="fake")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    synthetic.write_synthetic_faceset(root, SIZE, COUNTS, seed=1)
    out = tmp_path_factory.mktemp("records")
    meta = build.build_records(root, str(out), CONFIG, fake_encoder, log=lambda _: None,
                                 contact_sheet=str(out / "sheet.png"), contact_seeds=2)
    return root, out, meta


def _raw_examples(out: Path, split: str) -> list[tf.train.Example]:
    meta = records.read_meta(out)
    return [tf.train.Example.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(records.shard_files(out, meta, split))]


def _field(example: tf.train.Example, name: str):
    f = example.features.feature[name]
    return {"bytes": f.bytes_list.value, "float": f.float_list.value, "int64": f.int64_list.value}[schema.SCHEMA[name][0]]


def test_meta_and_counts(built):
    root, out, meta = built
    assert meta.template == faceset.read_template(root)
    assert meta.feature_dim == FEATURE_DIM and meta.descriptor_dim == 128
    assert meta.splits["train"]["count"] == 6 * 3 and meta.splits["train"]["morphed"] == 12
    assert [s["count"] for s in meta.splits["train"]["shards"]] == [5, 5, 5, 3]
    assert meta.splits["validation"]["count"] == 2 and meta.splits["test"]["morphed"] == 0
    train_marks = np.stack([e.landmarks_array for e in faceset.iter_faces(root, "train")])
    np.testing.assert_allclose(meta.mean_landmarks, decompose.mean_landmarks(train_marks, SIZE))
    raw = json.loads((out / records.META_FILE).read_text())
    assert raw["config"]["morphs_per_face"] == 2 and raw["theta"] > 0 and raw["composite"]["lambda"] > 0
    assert set(raw["schema"]) == set(schema.SCHEMA)
    assert (out / "sheet.png").is_file()


def test_records_hold_the_schema_and_morph_provenance(built):
    root, out, _ = built
    people = {s: {e.person for e in faceset.iter_faces(root, s)} for s in COUNTS}
    train = _raw_examples(out, "train")
    for ex in train:
        assert set(ex.features.feature) == set(schema.SCHEMA) - set(schema.OPTIONAL)
        assert len(_field(ex, "landmarks")) == 136 and list(_field(ex, "size")) == [SIZE]
        person = _field(ex, "person")[0].decode()
        sources = _field(ex, "sources")[0].decode().split(",")
        weights = list(_field(ex, "weights"))
        assert person in people["train"] and sources[0] == person
        if len(sources) == 1:
            assert weights == [0.0, 0.0]
        else:
            assert sources[1] in people["train"] and sources[1] != person and 0 <= min(weights)
    for split in ("validation", "test"):
        exs = _raw_examples(out, split)
        assert {_field(e, "person")[0].decode() for e in exs} == people[split]
        assert all(list(_field(e, "weights")) == [0.0, 0.0] for e in exs)


def test_pipeline_round_trip_is_bit_exact(built):
    root, out, _ = built
    raw = _raw_examples(out, "train")
    faces = {e.person: e for e in faceset.iter_faces(root, "train")}
    ds = pipeline.make_dataset(out, "train", batch_size=4, shuffle=False)
    batches = list(ds)
    got = {k: np.concatenate([b[k].numpy() for b in batches]) for k in batches[0]}
    assert got["image"].shape == (18, SIZE, SIZE, 3) and got["image"].dtype == np.float32
    assert got["features"].shape == (18, FEATURE_DIM) and got["descriptor"].shape == (18, 128)
    for i, ex in enumerate(raw):
        np.testing.assert_array_equal(got["landmarks"][i].ravel(), np.float32(_field(ex, "landmarks")))
        np.testing.assert_array_equal(got["features"][i], np.float32(_field(ex, "features")))
        np.testing.assert_array_equal(got["descriptor"][i], np.float32(_field(ex, "descriptor")))
        assert got["person"][i] == _field(ex, "person")[0]
        png = tf.io.decode_png(_field(ex, "image")[0]).numpy()
        np.testing.assert_array_equal(np.rint(got["image"][i] * 255).astype(np.uint8), png)
        if len(_field(ex, "sources")[0].split(b",")) == 1:  # originals: exactly the face set's face
            entry = faces[got["person"][i].decode()]
            np.testing.assert_array_equal(png, faceset.load_face_image(root, entry))
            np.testing.assert_array_equal(got["landmarks"][i], entry.landmarks_array)
            feats, _ = fake_encoder(png[None], entry.landmarks_array[None])
            np.testing.assert_array_equal(got["features"][i], feats[0])


def test_flips_mirror_images_and_landmarks_with_left_right_semantics(built):
    _, out, meta = built
    plain = next(iter(pipeline.make_dataset(out, "train", 18, shuffle=False)))
    flipped = next(iter(pipeline.make_dataset(out, "train", 18, shuffle=False, flip=True, seed=0)))
    again = next(iter(pipeline.make_dataset(out, "train", 18, shuffle=False, flip=True, seed=0)))
    np.testing.assert_array_equal(flipped["landmarks"], again["landmarks"])  # reproducible
    was_flipped = ~np.all(plain["image"].numpy() == flipped["image"].numpy(), axis=(1, 2, 3))
    assert 0 < was_flipped.sum() < 18
    for i in np.flatnonzero(was_flipped):
        np.testing.assert_array_equal(flipped["image"][i], plain["image"][i][:, ::-1])
        np.testing.assert_array_equal(flipped["texture"][i], plain["texture"][i][:, ::-1])
        np.testing.assert_allclose(flipped["landmarks"][i],
                                   decompose.mirror_landmarks(plain["landmarks"][i].numpy(), SIZE), atol=1e-5)
    for marks in flipped["landmarks"].numpy():
        left, right = eye_centers(marks)
        assert left[0] < right[0] and marks[36, 0] < marks[39, 0] < marks[42, 0] < marks[45, 0]
        assert marks[0, 0] < marks[16, 0] and marks[48, 0] < marks[54, 0]
    # The texture stays registered: flipping the (symmetric) mean landmarks changes nothing.
    np.testing.assert_allclose(decompose.mirror_landmarks(meta.mean_landmarks, SIZE), meta.mean_landmarks, atol=1e-9)


def test_per_replica_batches_and_disjoint_input_pipelines(built):
    _, out, _ = built
    seen = []
    for pid in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pid, num_replicas_in_sync=2)
        ds = pipeline.make_dataset(out, "train", batch_size=4, shuffle=False, input_context=ctx)
        batches = list(ds)
        assert max(len(b["person"]) for b in batches) == 2  # global 4 over 2 replicas
        seen.append([tuple(m.ravel()) for b in batches for m in b["landmarks"].numpy()])
    assert not set(seen[0]) & set(seen[1]) and len(seen[0]) + len(seen[1]) == 18


def _copy_records(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_corrupt_and_truncated_shards_are_named(built, tmp_path):
    _, out, _ = built
    bad = _copy_records(out, tmp_path / "bad")
    shard = bad / "train-00001-of-00004.tfrecord"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, flipped bits: caught by the record CRCs
    shard.write_bytes(bytes(data))
    pipeline.make_dataset(bad, "train", 4)  # the cheap size check passes ...
    with pytest.raises(ValueError, match=f"{shard}: corrupt or truncated"):
        pipeline.make_dataset(bad, "train", 4, verify="full")
    with pytest.raises(tf.errors.DataLossError):  # ... and reading never skips it silently
        list(pipeline.make_dataset(bad, "train", 4, verify="none"))
    shard.write_bytes(bytes(data[:-7]))
    with pytest.raises(ValueError, match=f"{shard}: .*truncated"):
        pipeline.make_dataset(bad, "train", 4)
    shard.unlink()
    with pytest.raises(ValueError, match=f"{shard}: shard listed"):
        pipeline.make_dataset(bad, "train", 4)
    (bad / records.META_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="meta.json"):
        pipeline.make_dataset(bad, "train", 4)


class _Crash(RuntimeError):
    pass


def test_interrupted_build_resumes_without_duplicates_or_loss(built, tmp_path):
    root, out, _ = built
    calls = {"n": 0}

    def crashing_encoder(images, landmarks):
        calls["n"] += 1
        if calls["n"] == 3:  # probe, shard 0, then die inside shard 1
            raise _Crash("killed")
        return fake_encoder(images, landmarks)

    resumed = tmp_path / "resumed"
    with pytest.raises(_Crash):
        build.build_records(root, str(resumed), CONFIG, crashing_encoder, log=lambda _: None)
    assert sorted(p.name for p in resumed.glob("*.tfrecord")) == ["train-00000-of-00004.tfrecord"]
    assert not (resumed / records.META_FILE).exists() and not list(resumed.glob(".*"))
    with pytest.raises(FileNotFoundError, match="interrupted"):
        records.read_meta(resumed)
    logs = []
    build.build_records(root, str(resumed), CONFIG, fake_encoder, log=logs.append)
    # One shard of 5 examples was finished before the crash.
    assert any(re.search(r"\(5 already written", m) for m in logs)
    # Same bytes as the uninterrupted build: nothing duplicated, nothing lost, same order.
    for shard in out.glob("*.tfrecord"):
        assert (resumed / shard.name).read_bytes() == shard.read_bytes(), shard.name
    assert sorted(p.name for p in resumed.glob("*.tfrecord")) == sorted(p.name for p in out.glob("*.tfrecord"))
    # Other flags in the same folder are refused, naming what changed.
    with pytest.raises(ValueError, match="different morphs_per_face"):
        build.build_records(root, str(resumed), dataclasses.replace(CONFIG, morphs_per_face=3),
                              fake_encoder, log=lambda _: None)


def test_build_config_and_binary_encoder_errors():
    with pytest.raises(ValueError, match="needs morphs"):
        build.BuildConfig(num_examples=100).num_morphs(10)
    assert build.BuildConfig(morphs_per_face=1, num_examples=100).num_morphs(10) == 90
    assert build.encode_fn_for("none") is build.no_encoder
    with pytest.raises(ValueError, match="unknown encoder 'x'"):
        build.encode_fn_for("x")


@pytest.fixture(scope="module")
def mirrored(built, tmp_path_factory):
    _, out, _ = built
    dst = tmp_path_factory.mktemp("mirrored")
    meta = build.add_mirrored_features(str(out), str(dst), fake_encoder, log=lambda _: None)
    return dst, meta


def test_mirror_pairs_a_flipped_example_with_the_flipped_photos_features(built, mirrored):
    _, out, _ = built
    dst, meta = mirrored
    assert meta.mirrored and not records.read_meta(out).mirrored
    with pytest.raises(ValueError, match="mirrored features"):
        pipeline.make_dataset(out, "train", 4, mirror=True)
    plain = next(iter(pipeline.make_dataset(dst, "train", 18, shuffle=False)))
    mirrored_batch = next(iter(pipeline.make_dataset(dst, "train", 18, shuffle=False, mirror=True, seed=0)))
    assert set(mirrored_batch) == set(plain)  # the optional keys never leave the pipeline
    was_flipped = ~np.all(plain["image"].numpy() == mirrored_batch["image"].numpy(), axis=(1, 2, 3))
    assert 0 < was_flipped.sum() < 18
    for i in range(18):
        image = (mirrored_batch["image"][i].numpy() * 255).round().astype(np.uint8)
        marks = mirrored_batch["landmarks"][i].numpy()
        feats, desc = fake_encoder(image[None], marks[None])
        # The features are what the encoder says of the image the example now shows.
        np.testing.assert_allclose(mirrored_batch["features"][i], feats[0], atol=1e-4)
        np.testing.assert_allclose(mirrored_batch["descriptor"][i], desc[0], atol=1e-4)
        if was_flipped[i]:
            original = plain["landmarks"][i].numpy()
            # iBUG order kept: the new 36 (image-left eye, outer corner) is the mirror of the old 45.
            np.testing.assert_allclose(marks[36], [SIZE - 1 - original[45, 0], original[45, 1]], atol=1e-5)
            np.testing.assert_allclose(marks[45], [SIZE - 1 - original[36, 0], original[36, 1]], atol=1e-5)
            assert not np.allclose(mirrored_batch["features"][i], plain["features"][i])
    with pytest.raises(ValueError, match="already holds"):
        build.add_mirrored_features(str(dst), str(dst) + "_again", fake_encoder)


def test_records_read_at_a_smaller_size(built):
    _, out, meta = built
    full = next(iter(pipeline.make_dataset(out, "validation", 2, shuffle=False)))
    half = next(iter(pipeline.make_dataset(out, "validation", 2, shuffle=False, output_size=SIZE // 2)))
    assert tuple(half["image"].shape) == (2, SIZE // 2, SIZE // 2, 3)
    np.testing.assert_allclose(half["image"][0, 0, 0], full["image"][0, :2, :2].numpy().mean((0, 1)), atol=1e-5)
    np.testing.assert_allclose(half["landmarks"], (full["landmarks"] + 0.5) / 2 - 0.5, atol=1e-5)
    np.testing.assert_allclose(pipeline.mean_landmarks(out, SIZE // 2), (meta.mean_landmarks + 0.5) / 2 - 0.5)
    with pytest.raises(ValueError, match="not larger"):
        pipeline.make_dataset(out, "validation", 2, output_size=2 * SIZE)


def test_morph_keep_thins_morphs_and_keeps_every_original(built):
    _, out, _ = built
    morphed = np.array([b"," in _field(ex, "sources")[0] for ex in _raw_examples(out, "train")])
    assert morphed.sum() == 12

    def images(**kwargs) -> np.ndarray:
        return np.concatenate([b["image"].numpy() for b in pipeline.make_dataset(out, "train", 4, shuffle=False, **kwargs)])

    every = images()
    np.testing.assert_array_equal(images(morph_keep=0.0), every[~morphed])  # the originals, in order
    np.testing.assert_array_equal(images(morph_keep=1.0), every)
    half = images(morph_keep=0.5, seed=4)
    np.testing.assert_array_equal(half, images(morph_keep=0.5, seed=4))  # reproducible for a seed
    kept = [i for i in range(len(every)) if any(np.array_equal(every[i], h) for h in half)]
    assert set(np.flatnonzero(~morphed)) <= set(kept) and 6 < len(kept) < 18
    with pytest.raises(ValueError, match="morph_keep"):
        pipeline.make_dataset(out, "train", 4, morph_keep=1.5)
