"""The normface input pipeline: tf.data over the records of :mod:`normface.data.records`.

``make_dataset`` interleaves the shards, parses and decodes each example, optionally flips it
left/right, batches and prefetches, all with AUTOTUNE. Under ``tf.distribute`` pass the
``InputContext`` (``strategy.distribute_datasets_from_function``): each input pipeline reads its
own shards and batches per replica.

Elements are dicts:
  ``image``      float32 ``[S, S, 3]`` in [0, 1]
  ``texture``    float32 ``[S, S, 3]`` in [0, 1], registered to the mean landmarks
  ``landmarks``  float32 ``[68, 2]`` (x, y) pixels
  ``features``   float32 ``[F]`` (F = 0 for records built with ``--encoder=none``)
  ``descriptor`` float32 ``[128]`` (or ``[0]``)
  ``person``     tf.string
(with a leading batch axis after batching). The template and mean landmarks come from
``records.read_meta``.

Flips mirror the image and the texture, set x -> S - 1 - x and permute the 68 landmark indices
(``decompose.MIRROR_PERMUTATION``), so index 36 stays the image-left eye's outer corner. The
texture stays registered because the mean landmarks are left/right symmetric (records built with
``symmetric_mean``, the default; a flip of other records is refused). The stored encoder
features are those of the un-flipped face (a face-recognition embedding is nearly flip-invariant;
flips are off by default).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from normface.data import decompose
from normface.data import records
from normface.data import schema

AUTOTUNE = tf.data.AUTOTUNE
DEFAULT_SHUFFLE_BUFFER = 2048   # examples (~100 MB of decoded 128x128 pairs)
MAX_CYCLE_LENGTH = 16           # shards read concurrently


def _parse_fn(meta: records.RecordsMeta):
    """Returns a function: serialized Example (scalar string) -> the element dict."""
    spec = schema.parse_spec(meta.feature_dim, meta.descriptor_dim)
    size = meta.size

    def decode(png: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_png(png, channels=3)
        image = tf.ensure_shape(image, [size, size, 3])
        return tf.image.convert_image_dtype(image, tf.float32)

    def parse(serialized: tf.Tensor) -> dict:
        with tf.name_scope("parse_example"):
            ex = tf.io.parse_single_example(serialized, spec)
            return {
                schema.IMAGE: decode(ex[schema.IMAGE]),
                schema.TEXTURE: decode(ex[schema.TEXTURE]),
                schema.LANDMARKS: tf.reshape(ex[schema.LANDMARKS], [decompose.NUM_LANDMARKS, 2]),
                schema.FEATURES: ex[schema.FEATURES],
                schema.DESCRIPTOR: ex[schema.DESCRIPTOR],
                schema.PERSON: ex[schema.PERSON],
            }

    return parse


def flip_example(example: dict, size: int) -> dict:
    """Left/right mirror of one (unbatched) element: image, texture and landmarks."""
    with tf.name_scope("flip_example"):
        out = dict(example)
        out[schema.IMAGE] = tf.reverse(example[schema.IMAGE], axis=[1])
        out[schema.TEXTURE] = tf.reverse(example[schema.TEXTURE], axis=[1])
        marks = tf.gather(example[schema.LANDMARKS], decompose.MIRROR_PERMUTATION, axis=0)
        out[schema.LANDMARKS] = tf.stack([(size - 1.0) - marks[:, 0], marks[:, 1]], axis=-1)
        return out


def make_dataset(
    records_dir: str | os.PathLike,
    split: str,
    batch_size: int,
    *,
    shuffle: bool | None = None,
    flip: bool = False,
    repeat: bool = False,
    seed: int | None = None,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    drop_remainder: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    verify: str = "size",
) -> tf.data.Dataset:
    """A batched tf.data.Dataset of ``split``'s records (element dicts: module docstring).

    Args:
      records_dir: folder with meta.json and the shards (local or tf.io.gfile URL).
      split: train | validation | test.
      batch_size: the global batch; with ``input_context`` each replica gets its share.
      shuffle: shuffle shards and examples (default: only for ``train``).
      flip: random left/right flips with probability 1/2 (deterministic for ``seed``).
      repeat: repeat forever (training).
      seed: seed of shuffling and flips; with a seed the order is deterministic.
      input_context: from ``strategy.distribute_datasets_from_function``.
      verify: "size" (default: every shard exists with its recorded size), "full" (also read all
        records once, checking CRCs) or "none". Errors name the bad shard.
    """
    if verify not in ("none", "size", "full"):
        raise ValueError(f"verify must be none, size or full, got {verify!r}")
    meta = records.read_meta(records_dir) if verify == "none" else records.verify_shards(
        records_dir, split, full=verify == "full")
    files = records.shard_files(records_dir, meta, split)
    if not files:
        raise ValueError(f"{records_dir}: no '{split}' shards")
    if flip and not meta.raw.get("config", {}).get("symmetric_mean", False):
        raise ValueError(f"{records_dir}: records were built without symmetric_mean; flips would mis-register textures")
    shuffle = split == "train" if shuffle is None else shuffle
    deterministic = seed is not None or not shuffle

    with tf.name_scope("make_dataset"):
        ds = tf.data.Dataset.from_tensor_slices(files)
        per_replica_batch = batch_size
        shard_records = False
        if input_context is not None:
            per_replica_batch = input_context.get_per_replica_batch_size(batch_size)
            if len(files) >= input_context.num_input_pipelines:
                ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
            else:
                shard_records = True  # fewer shards than pipelines: split records instead
        if shuffle:
            ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        ds = ds.interleave(
            tf.data.TFRecordDataset,
            # Without shuffling, read shards one after another: records come in file order.
            cycle_length=min(len(files), MAX_CYCLE_LENGTH) if shuffle else 1,
            num_parallel_calls=AUTOTUNE,
            deterministic=deterministic,
        )
        if shard_records:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        if shuffle:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        ds = ds.map(_parse_fn(meta), num_parallel_calls=AUTOTUNE, deterministic=deterministic)
        if flip:
            # A seeded random stream zipped alongside: flips are reproducible for a seed.
            coins = tf.data.Dataset.random(seed=seed)
            size = float(meta.size)
            ds = tf.data.Dataset.zip((ds, coins)).map(
                lambda ex, r: tf.cond(r % 2 == 0, lambda: flip_example(ex, size), lambda: ex),
                num_parallel_calls=AUTOTUNE,
                deterministic=deterministic,
            )
        ds = ds.batch(per_replica_batch, drop_remainder=drop_remainder)
        return ds.prefetch(AUTOTUNE)


# Re-exported for callers that only import the pipeline.
read_meta = records.read_meta
MIRROR_PERMUTATION: np.ndarray = decompose.MIRROR_PERMUTATION
