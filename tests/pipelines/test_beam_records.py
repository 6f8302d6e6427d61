"""Stage 3 on the Beam DirectRunner against the local build (normface.data.build.build_records):
for the same seed, the same TFRecord examples shard by shard and the same meta.json, with 1 and 2
workers (real dlib encoder features, loaded once per worker); a rerun skips finished shards."""

from __future__ import annotations

import json

import pytest
import tensorflow as tf

from normface.data import build, records
from normface.testing import synthetic

CONFIG = build.BuildConfig(morphs_per_face=2, shard_size=4, seed=7, k=2, encoder="dlib")
COUNTS = {"train": 6, "validation": 2, "test": 2}


def shard_records(out) -> dict[str, list[bytes]]:
    return {p.name: [r.numpy() for r in tf.data.TFRecordDataset(str(p))] for p in sorted(out.glob("*.tfrecord"))}


@pytest.fixture(scope="module")
def faces_and_local(tmp_path_factory):
    faces = tmp_path_factory.mktemp("faces")
    synthetic.write_synthetic_faceset(faces, 64, COUNTS, seed=2)
    out = tmp_path_factory.mktemp("records_local")
    build.build_records(faces, str(out), CONFIG, build.encode_fn_for(CONFIG.encoder), log=lambda msg: None)
    return faces, out


@pytest.mark.parametrize("workers", [1, 2])
def test_beam_records_equal_the_local_build(faces_and_local, tmp_path, workers, direct_options):
    from normface.pipelines import records as beam_records

    faces, local = faces_and_local
    out = tmp_path / "records"
    beam_records.build_records(faces, str(out), CONFIG, direct_options(workers), log=lambda msg: None)
    ours, theirs = shard_records(out), shard_records(local)
    assert list(ours) == list(theirs) and len(ours) == 7  # train: 18 examples in 5 shards; validation, test: 1 each
    assert ours == theirs
    meta, local_meta = json.loads((out / records.META_FILE).read_text()), json.loads((local / records.META_FILE).read_text())
    assert meta["faceset"].pop("root") == local_meta["faceset"].pop("root")
    assert meta == local_meta and meta["feature_dim"] > 0 and meta["descriptor_dim"] == 128
    assert (out / records.BUILD_FILE).read_bytes() == (local / records.BUILD_FILE).read_bytes()


def test_beam_records_rerun_skips_finished_shards(faces_and_local, tmp_path, direct_options):
    from normface.pipelines import records as beam_records

    faces, local = faces_and_local
    out = tmp_path / "records"
    beam_records.build_records(faces, str(out), CONFIG, direct_options(1), log=lambda msg: None)
    first = sorted(out.glob("*.tfrecord"))
    stamps = {p: p.stat().st_mtime_ns for p in first}
    first[0].unlink()
    messages = []
    beam_records.build_records(faces, str(out), CONFIG, direct_options(1), log=messages.append)
    assert f"{len(first)} shards, {len(first) - 1} already written" in messages
    assert all(p.stat().st_mtime_ns == stamps[p] for p in first[1:])
    assert shard_records(out) == shard_records(local)
