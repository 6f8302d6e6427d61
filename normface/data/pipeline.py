"""The normface input pipeline: tf.data over the records of :mod:`normface.data.records`.

``make_dataset`` interleaves the shards, parses and decodes each example, optionally resizes it
and flips it left/right, mixes in invariance pairs, batches and prefetches, all with AUTOTUNE
(``map(AUTOTUNE) -> batch -> prefetch``). Under ``tf.distribute`` pass the ``InputContext``
(``strategy.distribute_datasets_from_function``): each input pipeline reads its own shards and
batches per replica.

Elements are dicts:
  ``image``      float32 ``[S, S, 3]`` in [0, 1]
  ``texture``    float32 ``[S, S, 3]`` in [0, 1], registered to the mean landmarks
  ``landmarks``  float32 ``[68, 2]`` (x, y) pixels
  ``features``   float32 ``[F]`` (F = 0 for records built with ``--encoder=none``)
  ``descriptor`` float32 ``[128]`` (or ``[0]``)
  ``person``     tf.string
(with a leading batch axis after batching). The template and mean landmarks come from
``records.read_meta`` (scaled with :func:`scale_landmarks` when ``output_size`` differs).

``output_size``: read records of size S at a smaller size s (area resampling, landmarks scaled so
pixel centres stay at integers). The 64x64 ablation reads the 128x128 records this way; the stored
features stay those of the full-size face (what the encoder sees of a photo at inference).

Flips mirror the image and the texture, set x -> S - 1 - x and permute the 68 landmark indices
(``decompose.MIRROR_PERMUTATION``), so index 36 stays the image-left eye's outer corner. The
texture stays registered because the mean landmarks are left/right symmetric (records built with
``symmetric_mean``, the default; a flip of other records is refused). Records with mirrored
features (``meta.json`` "mirrored") pair a flipped example with the encoder's features of the
flipped image (the mirror augmentation, ``mirror=True`` requires them); older records keep the
un-flipped features (a face-recognition embedding is nearly flip-invariant).

Invariance pairs (``pairs_dir``, :mod:`normface.data.pairs`): records whose features come from
*another* photo of the person (any pose, expression, light) and whose target is the person's
averaged neutral face. They are mixed into the training stream with probability ``pairs_ratio``.
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


def scale_landmarks(landmarks, from_size: int, to_size: int):
    """(x, y) pixel landmarks of a ``from_size`` image in a ``to_size`` resampling of it (NumPy
    arrays or tensors): ``(x + 0.5) * to / from - 0.5``, pixel centres at integers on both grids."""
    if from_size == to_size:
        return landmarks
    return (landmarks + 0.5) * (float(to_size) / float(from_size)) - 0.5


def check_output_size(records_dir, meta: records.RecordsMeta, output_size: int | None) -> int:
    """The size elements come out at: ``output_size`` (at most the records' size), else theirs."""
    if output_size is None or output_size == meta.size:
        return meta.size
    if not 0 < output_size < meta.size:
        raise ValueError(f"output_size={output_size}: {records_dir} holds {meta.size}x{meta.size} records; "
                         "they can be read at that size or smaller, not larger")
    return int(output_size)


def mean_landmarks(records_dir: str | os.PathLike, output_size: int | None = None) -> np.ndarray:
    """``[68, 2]`` mean landmarks of the records, at ``output_size`` when given."""
    meta = records.read_meta(records_dir)
    return scale_landmarks(meta.mean_landmarks, meta.size, check_output_size(records_dir, meta, output_size))


def _parse_fn(meta: records.RecordsMeta, output_size: int):
    """Returns a function: serialized Example (scalar string) -> the element dict (mirrored
    features included when the records hold them)."""
    spec = schema.parse_spec(meta.feature_dim, meta.descriptor_dim, mirrored=meta.mirrored)
    size = meta.size

    def decode(png: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_png(png, channels=3)
        image = tf.ensure_shape(image, [size, size, 3])
        image = tf.image.convert_image_dtype(image, tf.float32)
        if output_size != size:
            # Area resampling: each output pixel averages the input pixels it covers (no aliasing).
            image = tf.image.resize(image, [output_size, output_size], method="area")
        return image

    def parse(serialized: tf.Tensor) -> dict:
        with tf.name_scope("parse_example"):
            ex = tf.io.parse_single_example(serialized, spec)
            marks = tf.reshape(ex[schema.LANDMARKS], [decompose.NUM_LANDMARKS, 2])
            out = {
                schema.IMAGE: decode(ex[schema.IMAGE]),
                schema.TEXTURE: decode(ex[schema.TEXTURE]),
                schema.LANDMARKS: scale_landmarks(marks, size, output_size),
                schema.FEATURES: ex[schema.FEATURES],
                schema.DESCRIPTOR: ex[schema.DESCRIPTOR],
                schema.PERSON: ex[schema.PERSON],
            }
            for key in schema.OPTIONAL:
                if key in ex:
                    out[key] = ex[key]
            return out

    return parse


def flip_example(example: dict, size: int) -> dict:
    """Left/right mirror of one (unbatched) element: image, texture and landmarks."""
    with tf.name_scope("flip_example"):
        out = dict(example)
        out[schema.IMAGE] = tf.reverse(example[schema.IMAGE], axis=[1])
        out[schema.TEXTURE] = tf.reverse(example[schema.TEXTURE], axis=[1])
        marks = tf.gather(example[schema.LANDMARKS], decompose.MIRROR_PERMUTATION, axis=0)
        out[schema.LANDMARKS] = tf.stack([(size - 1.0) - marks[:, 0], marks[:, 1]], axis=-1)
        if schema.FEATURES_MIRRORED in example:
            # What the encoder says of the flipped photo (and the flip of the flip is the original).
            out[schema.FEATURES], out[schema.FEATURES_MIRRORED] = (example[schema.FEATURES_MIRRORED],
                                                                   example[schema.FEATURES])
            out[schema.DESCRIPTOR], out[schema.DESCRIPTOR_MIRRORED] = (example[schema.DESCRIPTOR_MIRRORED],
                                                                       example[schema.DESCRIPTOR])
        return out


def _drop_optional(example: dict) -> dict:
    # Every stream leaves with the same keys (mixing needs one structure; the trainer needs none).
    return {k: v for k, v in example.items() if k not in schema.OPTIONAL}


def _thin_morphs(ds: tf.data.Dataset, keep: float, seed: int | None, deterministic: bool) -> tf.data.Dataset:
    """Keeps every original face of serialized ``ds`` and each morph with probability ``keep``
    (reproducible for a seed). Morphs blend two people's textures, and the blend is blurred: in the
    128 records their face box holds about 40% of the originals' Laplacian variance (issue 28), and a
    decoder trained on them learns the blur. Decided before decoding: a dropped morph costs no PNG."""
    spec = {schema.SOURCES: tf.io.FixedLenFeature([], tf.string)}
    scale = 1 << 30
    coins = tf.data.Dataset.random(seed=seed).map(lambda r: tf.cast(r % scale, tf.float64) / scale)

    def wanted(serialized: tf.Tensor, coin: tf.Tensor) -> tf.Tensor:
        sources = tf.io.parse_single_example(serialized, spec)[schema.SOURCES]
        morphed = tf.strings.regex_full_match(sources, ".*,.*")  # "seed,neighbour": a morph
        return tf.logical_or(tf.logical_not(morphed), coin < keep)

    with tf.name_scope("thin_morphs"):
        ds = tf.data.Dataset.zip((ds, coins)).filter(wanted)
        return ds.map(lambda serialized, _: serialized, num_parallel_calls=AUTOTUNE, deterministic=deterministic)


def examples(
    records_dir: str | os.PathLike,
    split: str,
    *,
    shuffle: bool | None = None,
    flip: bool = False,
    mirror: bool = False,
    repeat: bool = False,
    seed: int | None = None,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    input_context: tf.distribute.InputContext | None = None,
    verify: str = "size",
    output_size: int | None = None,
    morph_keep: float = 1.0,
) -> tf.data.Dataset:
    """Unbatched element dicts of ``split`` (arguments as :func:`make_dataset`)."""
    if verify not in ("none", "size", "full"):
        raise ValueError(f"verify must be none, size or full, got {verify!r}")
    if not 0.0 <= morph_keep <= 1.0:
        raise ValueError(f"morph_keep must be in [0, 1], got {morph_keep}")
    meta = records.read_meta(records_dir) if verify == "none" else records.verify_shards(
        records_dir, split, full=verify == "full")
    size = check_output_size(records_dir, meta, output_size)
    files = records.shard_files(records_dir, meta, split)
    if not files:
        raise ValueError(f"{records_dir}: no '{split}' shards")
    if mirror and not meta.mirrored:
        raise ValueError(f"{records_dir}: mirror=True needs records with mirrored features (build them with "
                         "--mirrored); flip=True flips with the un-flipped features")
    flip = flip or mirror
    if flip and not meta.raw.get("config", {}).get("symmetric_mean", False):
        raise ValueError(f"{records_dir}: records were built without symmetric_mean; flips would mis-register textures")
    shuffle = split == "train" if shuffle is None else shuffle
    deterministic = seed is not None or not shuffle

    with tf.name_scope("examples"):
        ds = tf.data.Dataset.from_tensor_slices(files)
        shard_records = False
        if input_context is not None:
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
        if morph_keep < 1.0:
            ds = _thin_morphs(ds, morph_keep, seed, deterministic)
        ds = ds.map(_parse_fn(meta, size), num_parallel_calls=AUTOTUNE, deterministic=deterministic)
        if flip:
            # A seeded random stream zipped alongside: flips are reproducible for a seed.
            coins = tf.data.Dataset.random(seed=seed)
            ds = tf.data.Dataset.zip((ds, coins)).map(
                lambda ex, r: tf.cond(r % 2 == 0, lambda: flip_example(ex, float(size)), lambda: ex),
                num_parallel_calls=AUTOTUNE,
                deterministic=deterministic,
            )
        return ds.map(_drop_optional, num_parallel_calls=AUTOTUNE, deterministic=deterministic)


def check_pairs(records_dir, pairs_dir) -> None:
    """Invariance-pair records must match the main records: same encoder sizes, same template and
    the same mean landmarks (their textures are registered to them). ValueError naming both."""
    main, pairs = records.read_meta(records_dir), records.read_meta(pairs_dir)
    problems = []
    if (main.feature_dim, main.descriptor_dim) != (pairs.feature_dim, pairs.descriptor_dim):
        problems.append(f"features {pairs.feature_dim}/{pairs.descriptor_dim}-D, not {main.feature_dim}/{main.descriptor_dim}")
    if main.size != pairs.size:
        problems.append(f"size {pairs.size}, not {main.size}")
    elif not np.allclose(main.mean_landmarks, pairs.mean_landmarks, atol=1e-4):
        problems.append("other mean landmarks (build them with --records pointing at these records)")
    if problems:
        raise ValueError(f"pairs {pairs_dir} do not match records {records_dir}: {'; '.join(problems)}")


def make_dataset(
    records_dir: str | os.PathLike,
    split: str,
    batch_size: int,
    *,
    shuffle: bool | None = None,
    flip: bool = False,
    mirror: bool = False,
    repeat: bool = False,
    seed: int | None = None,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    drop_remainder: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    verify: str = "size",
    output_size: int | None = None,
    pairs_dir: str | os.PathLike | None = None,
    pairs_ratio: float = 0.0,
    morph_keep: float = 1.0,
) -> tf.data.Dataset:
    """A batched tf.data.Dataset of ``split``'s records (element dicts: module docstring).

    Args:
      records_dir: folder with meta.json and the shards (local or tf.io.gfile URL).
      split: train | validation | test.
      batch_size: the global batch; with ``input_context`` each replica gets its share.
      shuffle: shuffle shards and examples (default: only for ``train``).
      flip: random left/right flips with probability 1/2 (deterministic for ``seed``).
      mirror: flips paired with the features of the flipped image (records built with mirrored
        features; ValueError naming the folder otherwise). Implies ``flip``.
      repeat: repeat forever (training).
      seed: seed of shuffling, flips and pair mixing; with a seed the order is deterministic.
      input_context: from ``strategy.distribute_datasets_from_function``.
      verify: "size" (default: every shard exists with its recorded size), "full" (also read all
        records once, checking CRCs) or "none". Errors name the bad shard.
      output_size: read the records at this smaller size (module docstring).
      pairs_dir: invariance-pair records (their ``train`` split) to mix in; needs ``repeat``.
      pairs_ratio: share of elements drawn from ``pairs_dir``, in [0, 1).
      morph_keep: share of the main records' morphed examples kept, in [0, 1] (1: all; 0: the
        original faces only); the pairs are not morphs and are all kept.
    """
    if not 0.0 <= pairs_ratio < 1.0:
        raise ValueError(f"pairs_ratio must be in [0, 1), got {pairs_ratio}")
    if pairs_ratio > 0 and not pairs_dir:
        raise ValueError(f"pairs_ratio={pairs_ratio} needs pairs_dir")
    if pairs_dir and pairs_ratio > 0 and not repeat:
        raise ValueError("mixing invariance pairs needs repeat=True (each stream must not run dry)")
    per_replica_batch = batch_size
    if input_context is not None:
        per_replica_batch = input_context.get_per_replica_batch_size(batch_size)
    options = dict(shuffle=shuffle, flip=flip, mirror=mirror, repeat=repeat, seed=seed, shuffle_buffer=shuffle_buffer,
                   input_context=input_context, verify=verify, output_size=output_size)
    with tf.name_scope("make_dataset"):
        ds = examples(records_dir, split, morph_keep=morph_keep, **options)
        if pairs_dir and pairs_ratio > 0:
            check_pairs(records_dir, pairs_dir)
            pairs = examples(pairs_dir, "train", **{**options, "shuffle": True})
            ds = tf.data.Dataset.sample_from_datasets([ds, pairs], weights=[1.0 - pairs_ratio, pairs_ratio],
                                                      seed=seed)
        ds = ds.batch(per_replica_batch, drop_remainder=drop_remainder)
        return ds.prefetch(AUTOTUNE)


# Re-exported for callers that only import the pipeline.
read_meta = records.read_meta
MIRROR_PERMUTATION: np.ndarray = decompose.MIRROR_PERMUTATION
