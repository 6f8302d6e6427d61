"""Invariance pairs (beyond the paper): another photo's features -> the person's neutral face.

The paper trains the decoder only on each face's *own* features and relies on the encoder to map
every photo of a person near that point. dlib's encoder is less invariant than FaceNet, so a
smiling or turned photo lands elsewhere and the decoder has never seen that region. An invariance
pair closes the gap directly: the input is the encoder's features of one photo of a training
person (any pose, expression or light the detector found: stage 1's aligned photo), the target is
that person's averaged neutral face (stage 2, screened), decomposed into landmarks and texture on
the main records' mean landmarks. Each photo also stores its mirrored features, so the mirror
augmentation applies to pairs as well.

Who may pair: only the people of ``screened/invariance.json`` (training people of the labelled
sets with 2+ photos: multi-photo LFW people, London neutral + smiling). :func:`plan_pairs` checks
every pair again: photo and target name the same person, both are in the training split, the
person is a training person of ``splits.json``, and no photo is within the screening's
near-duplicate distance of a validation or test photo (those photos are dropped and counted).

Output: a records folder with a ``train`` split only (same schema, ``meta.json`` with
``"pairs_of"`` naming the main records), read by :func:`normface.data.pipeline.make_dataset`'s
``pairs_dir``. Deterministic for a seed (the shard order is a seeded shuffle); resumable like the
main build (finished shards are skipped, a different plan is refused).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from normface.data import align, decompose, faceset, records, screen, splits
from normface.data.build import EncodeFn, encode_mirrored, write_shard_atomic
from normface.data.schema import SCHEMA, SCHEMA_VERSION, make_example
from normface.utils import io_utils
from normface.utils.pictures import to_uint8

PAIRS_SPLIT = "train"
DEFAULT_SHARD_SIZE = 1000
ENCODE_BATCH = 32


@dataclasses.dataclass(frozen=True)
class Pair:
    """One invariance pair: an aligned photo and its person's averaged neutral face."""

    photo: faceset.FaceEntry    # stage 1 (aligned/), any pose, expression or light
    target: faceset.FaceEntry   # stage 2 after screening (screened/), the neutral average


def _person_splits(faces_root: Path) -> dict[str, str]:
    path = faceset.aligned_dir(faces_root) / align.SPLITS_FILE
    return splits.split_of(splits.read_splits(path))


def check_pair(pair: Pair, person_split: dict[str, str]) -> None:
    """Raises ValueError unless photo and target are the same training person."""
    photo, target = pair.photo, pair.target
    if photo.person != target.person:
        raise ValueError(f"pair {photo.key} -> {target.key}: different people ({photo.person} vs {target.person})")
    if photo.split != "train" or target.split != "train":
        raise ValueError(f"pair {photo.key} -> {target.key}: not both in the training split")
    if person_split.get(photo.person) != "train":
        raise ValueError(f"pair {photo.key}: {photo.person} is a {person_split.get(photo.person, 'unknown')} "
                         "person in splits.json, not a training person")


def plan_pairs(faces_root: str | Path, descriptor_fn: Callable | None = None,
               dup_threshold: float = screen.DUP_THRESHOLD, progress=print) -> tuple[list[Pair], dict]:
    """The pairs of ``<faces_root>/screened/invariance.json``, checked (module docstring).

    ``descriptor_fn`` (``screen.DescriptorFn``): when given, photos within ``dup_threshold`` of a
    validation or test photo are dropped (their descriptors come from the screening cache, so
    only new photos are encoded). Returns ``(pairs, report)``; the report counts people, photos
    and drops.
    """
    faces_root = Path(faces_root)
    aligned_root, screened_root = faceset.aligned_dir(faces_root), screen.screened_dir(faces_root)
    path = screened_root / screen.INVARIANCE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the screening stage (data_prep/screen_faces.py) first")
    people = json.loads(path.read_text())
    person_split = _person_splits(faces_root)
    targets = {e.person: e for e in faceset.iter_faces(screened_root, "train")}
    pairs, missing_target = [], 0
    for source in sorted(people):
        for person, keys in sorted(people[source].items()):
            target = targets.get(person)
            if target is None:  # screened out since invariance.json was written
                missing_target += 1
                continue
            for key in keys:
                pair = Pair(faceset.read_entry(aligned_root, "train", key), target)
                check_pair(pair, person_split)
                pairs.append(pair)
    report = {"people": len({p.target.person for p in pairs}), "photos": len(pairs),
              "people_without_target": missing_target, "near_held_out_dropped": 0}
    if descriptor_fn is not None and pairs:
        cache = faces_root / screen.CACHE_DIR
        held_out = [e for s in ("validation", "test") for e in faceset.iter_faces(aligned_root, s)]
        held = screen.cached_descriptors("heldout", cache, aligned_root, held_out, descriptor_fn, progress)
        mine = screen.cached_descriptors("pairs", cache, aligned_root, [p.photo for p in pairs], descriptor_fn,
                                         progress)
        if len(held):
            _, dist = screen.nearest(mine, held)
            keep = dist > dup_threshold
            report["near_held_out_dropped"] = int(np.sum(~keep))
            pairs = [p for p, k in zip(pairs, keep) if k]
            report["photos"] = len(pairs)
            report["people"] = len({p.target.person for p in pairs})
    return pairs, report


def iter_pair_examples(faces_root: Path, pairs: list[Pair], mean: np.ndarray, encode_fn: EncodeFn):
    """Yields the tf.train.Examples of ``pairs``: features (and mirrored features) of the photo,
    image/texture/landmarks of the target, ``person`` the person and ``sources`` the photo key."""
    aligned_root, screened_root = faceset.aligned_dir(faces_root), screen.screened_dir(faces_root)
    for start in range(0, len(pairs), ENCODE_BATCH):
        part = pairs[start:start + ENCODE_BATCH]
        photos = np.stack([faceset.load_face_image(aligned_root, p.photo) for p in part])
        photo_marks = np.stack([p.photo.landmarks_array for p in part])
        features, descriptors = encode_fn(photos, photo_marks)
        flipped = encode_mirrored(encode_fn, photos, photo_marks)
        targets = np.stack([faceset.load_face_image(screened_root, p.target) for p in part])
        target_marks = np.stack([p.target.landmarks_array for p in part])
        textures = decompose.to_texture(targets / 255.0, target_marks, mean)
        textures = to_uint8(textures)
        for i, pair in enumerate(part):
            yield make_example(targets[i], textures[i], target_marks[i], features[i], descriptors[i],
                               pair.photo.person, [pair.photo.key], [0.0, 0.0],
                               mirrored=(flipped[0][i], flipped[1][i]))


def build_pair_records(faces_root: str | Path, records_dir: str, output_dir: str, encode_fn: EncodeFn,
                       encoder: str, seed: int = 0, shard_size: int = DEFAULT_SHARD_SIZE,
                       descriptor_fn: Callable | None = None, log: Callable[[str], None] = print) -> records.RecordsMeta:
    """Writes the invariance-pair records of ``faces_root`` for the main records ``records_dir``
    (their mean landmarks and template) to ``output_dir``; resumable. Returns the written meta."""
    faces_root = Path(faces_root)
    main = records.read_meta(records_dir)
    template = faceset.read_template(faceset.aligned_dir(faces_root))
    if template.size != main.size:
        raise ValueError(f"{faces_root} holds {template.size}x{template.size} faces, {records_dir} "
                         f"{main.size}x{main.size} records: use the face set the records were built from")
    pairs, report = plan_pairs(faces_root, descriptor_fn, progress=log)
    if not pairs:
        raise ValueError(f"{faces_root}: no invariance pairs (no training person with 2+ photos)")
    order = np.random.default_rng(seed).permutation(len(pairs))
    pairs = [pairs[i] for i in order]
    tf.io.gfile.makedirs(output_dir)
    plan = {"pairs": [[p.photo.key, p.target.key] for p in pairs], "seed": seed, "shard_size": shard_size,
            "encoder": encoder, "pairs_of": str(records_dir), "schema_version": SCHEMA_VERSION}
    build_path = records.join_path(output_dir, records.BUILD_FILE)
    if tf.io.gfile.exists(build_path):
        with tf.io.gfile.GFile(build_path, "r") as f:
            if json.load(f) != plan:
                raise ValueError(f"{build_path}: {output_dir} was built from other pairs or flags; "
                                 "use another output folder")
    else:
        io_utils.write_bytes_atomic(build_path, json.dumps(plan).encode())
    count = max(1, math.ceil(len(pairs) / shard_size))
    shards = []
    for index in range(count):
        part = pairs[index * shard_size:(index + 1) * shard_size]
        path = records.join_path(output_dir, records.shard_name(PAIRS_SPLIT, index, count))
        if not tf.io.gfile.exists(path):
            write_shard_atomic(path, iter_pair_examples(faces_root, part, main.mean_landmarks, encode_fn))
            log(f"pairs: wrote {path} ({len(part)} examples)")
        shards.append({"file": os.path.basename(path), "count": len(part), "bytes": tf.io.gfile.stat(path).length})
    meta = {
        "schema_version": SCHEMA_VERSION,
        "schema": {name: {"kind": kind, "length": length} for name, (kind, length) in SCHEMA.items()},
        "template": main.template.to_dict(),
        "mean_landmarks": np.asarray(main.mean_landmarks).tolist(),
        "feature_dim": main.feature_dim,
        "descriptor_dim": main.descriptor_dim,
        "encoder": encoder,
        "mirrored": True,
        "config": {"symmetric_mean": main.raw.get("config", {}).get("symmetric_mean", False), "seed": seed,
                   "shard_size": shard_size},
        "pairs_of": str(records_dir),
        "pairs": report,
        "splits": {PAIRS_SPLIT: {"count": len(pairs), "morphed": 0, "originals": len(pairs), "shards": shards}},
    }
    io_utils.write_bytes_atomic(records.join_path(output_dir, records.META_FILE), json.dumps(meta, indent=1).encode())
    return records.read_meta(output_dir)
