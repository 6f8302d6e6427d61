"""A records folder on disk: sharded TFRecords plus a JSON sidecar, and the checks on reading.

Layout (local or any tf.io.gfile filesystem, e.g. ``gs://``)::

    meta.json                        schema, counts, shards, template, mean landmarks, flags
    build.json                       the generating flags of a build in progress (resume check)
    <split>-00000-of-00012.tfrecord  one tf.train.Example per face (:mod:`normface.data.schema`)

Train records hold every training face once plus its random morphs; validation and test records
hold their faces un-augmented (:mod:`normface.data.build` writes them). Reading checks shards
against ``meta.json``: a missing shard, or one whose byte size differs (truncated or appended
to), is an error naming the file; ``verify_shards(..., full=True)`` also reads every record, so
TensorFlow's per-record CRCs catch flipped bits, again naming the file.
"""


from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from normface.faces.alignment import NUM_LANDMARKS, AlignmentTemplate

META_FILE = "meta.json"

BUILD_FILE = "build.json"

SHARD_SUFFIX = ".tfrecord"

SPLITS = ("train", "validation", "test")


# ----------------------------------------------------------------------------------------------
# Metadata and shard checks.
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RecordsMeta:
    """Parsed ``meta.json``: what the training code needs to read the records."""

    template: AlignmentTemplate
    mean_landmarks: np.ndarray   # [68, 2] float64
    feature_dim: int
    descriptor_dim: int
    splits: dict                 # split -> {"count": int, "shards": [{"file", "count", "bytes"}]}
    raw: dict                    # the whole JSON

    @property
    def size(self) -> int:
        return self.template.size

    @property
    def mirrored(self) -> bool:
        """Whether every example also holds the features of its flipped image."""
        return bool(self.raw.get("mirrored", False))


def join_path(root: str, name: str) -> str:
    """``root/name`` for local folders and tf.io.gfile URLs alike."""
    return os.path.join(str(root), name)


def read_meta(records_dir: str | os.PathLike) -> RecordsMeta:
    """Reads ``meta.json`` of a complete records folder (FileNotFoundError/ValueError naming it)."""
    path = join_path(records_dir, META_FILE)
    if not tf.io.gfile.exists(path):
        hint = " (a build is in progress or was interrupted: re-run it)" if tf.io.gfile.exists(
            join_path(records_dir, BUILD_FILE)) else ""
        raise FileNotFoundError(f"{path} not found: not a finished records folder{hint}")
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            raw = json.load(f)
        return RecordsMeta(
            template=AlignmentTemplate.from_dict(raw["template"]),
            mean_landmarks=np.asarray(raw["mean_landmarks"], np.float64).reshape(NUM_LANDMARKS, 2),
            feature_dim=int(raw["feature_dim"]),
            descriptor_dim=int(raw["descriptor_dim"]),
            splits=raw["splits"],
            raw=raw,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a valid records meta file ({err})") from err


def shard_files(records_dir: str | os.PathLike, meta: RecordsMeta, split: str) -> list[str]:
    """Full paths of ``split``'s shards, in order."""
    if split not in meta.splits:
        raise ValueError(f"{records_dir} has no '{split}' records (has {sorted(meta.splits)})")
    return [join_path(records_dir, s["file"]) for s in meta.splits[split]["shards"]]


def verify_shards(records_dir: str | os.PathLike, split: str, full: bool = False) -> RecordsMeta:
    """Checks ``split``'s shards against meta.json; raises ValueError naming the bad file.

    Always: every shard exists with the recorded byte size (catches truncation). ``full``: also
    reads every record (TFRecord CRCs catch corruption) and checks the record count.
    """
    meta = read_meta(records_dir)
    for shard in meta.splits.get(split, {}).get("shards", []):
        path = join_path(records_dir, shard["file"])
        if not tf.io.gfile.exists(path):
            raise ValueError(f"{path}: shard listed in {META_FILE} is missing")
        size = tf.io.gfile.stat(path).length
        if size != shard["bytes"]:
            raise ValueError(
                f"{path}: {size} bytes but {META_FILE} records {shard['bytes']}: truncated or corrupt shard"
            )
        if full:
            count = _count_records(path)
            if count != shard["count"]:
                raise ValueError(f"{path}: {count} records but {META_FILE} records {shard['count']}")
    return meta


def _count_records(path: str) -> int:
    """Reads every record of a shard (CRC-checked); ValueError naming the file on data loss."""
    try:
        with tf.name_scope("count_records"):
            count = tf.data.TFRecordDataset(path).reduce(np.int64(0), lambda n, _: n + 1)
        return int(count)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as err:
        raise ValueError(f"{path}: corrupt or truncated shard ({err.message.strip()})") from err


# ----------------------------------------------------------------------------------------------
# Writing.
# ----------------------------------------------------------------------------------------------
def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}{SHARD_SUFFIX}"


