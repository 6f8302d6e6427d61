"""Training records: sharded TFRecords of (augmented) faces plus a JSON sidecar (paper Sec. 5).

Layout of a records folder (local or any tf.io.gfile filesystem, e.g. ``gs://``)::

    meta.json                        schema, counts, shards, template, mean landmarks, flags
    build.json                       the generating flags of a build in progress (resume check)
    <split>-00000-of-00012.tfrecord  one tf.train.Example per face, SCHEMA below

Train records hold every training face once plus its random morphs (:mod:`normface.data.morph`);
validation and test records hold their faces un-augmented. Textures of every split are registered
to the *training* mean landmarks.

Writing is deterministic and resumable: the whole plan (which seed, neighbour and weights go in
which shard) is drawn up front from ``--seed``, each shard is written to a temporary name and
renamed into place, and a re-run with the same flags skips the shards that exist. A re-run with
other flags or another face set is refused (``build.json``). One writer per folder.

Reading checks shards against ``meta.json``: a missing shard, or one whose byte size differs
(truncated or appended to), is an error naming the file; ``verify_shards(..., full=True)`` also
reads every record, so TensorFlow's per-record CRCs catch flipped bits, again naming the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from typing import Callable, Iterable

import cv2
import numpy as np
import tensorflow as tf

from normface.faces.alignment import NUM_LANDMARKS, AlignmentTemplate
from normface.data import composite, decompose, faceset, morph

META_FILE = "meta.json"
BUILD_FILE = "build.json"
SHARD_SUFFIX = ".tfrecord"
SCHEMA_VERSION = 1
DESCRIPTOR_DIM = 128
DEFAULT_SHARD_SIZE = 1000   # ~60 MB per shard at 128x128 (two PNGs of ~30 KB per example)
RENDER_BATCH = 32           # examples rendered (and warped, encoded) per step
SPLITS = ("train", "validation", "test")

# The tf.train.Example schema, agreed with the training code (issue 6): name -> (kind, length).
# Lengths: None = variable (``features`` is F, 0 with --encoder=none; ``descriptor`` is 128 or 0).
SCHEMA = {
    "image": ("bytes", 1),        # PNG, S x S x 3 uint8
    "texture": ("bytes", 1),      # PNG, S x S x 3 uint8, registered to the mean landmarks
    "landmarks": ("float", 2 * NUM_LANDMARKS),  # (x, y) pixels, point-major
    "features": ("float", None),  # frozen encoder features of the image's face chip
    "descriptor": ("float", None),  # encoder's 128-D identity descriptor
    "person": ("bytes", 1),       # person id of the seed face
    "sources": ("bytes", 1),      # "seed" or "seed,neighbour" person ids
    "weights": ("float", 2),      # (landmark weight, texture weight); [0, 0] if not morphed
    "size": ("int64", 1),
}

# encode_fn(images uint8 [b, S, S, 3], landmarks float32 [b, 68, 2]) -> (features [b, F],
# descriptors [b, 128]) as float32; F and 128 may be 0 (no encoder).
EncodeFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def no_encoder(images: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An EncodeFn writing zero-length features and descriptors (augmentation ablation, debugging)."""
    n = len(images)
    return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.float32)


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """The generating flags of a records build (all stored in meta.json)."""

    morphs_per_face: int = 0      # random morphs per training face; 0 = un-augmented
    num_examples: int = 0         # if > 0: exact number of training examples (overrides the above)
    shard_size: int = DEFAULT_SHARD_SIZE
    seed: int = 0
    theta: float | None = None    # None: morph.balanced_theta on the training faces
    k: int = morph.DEFAULT_K
    encoder: str = "none"
    symmetric_mean: bool = True
    composite: composite.CompositeConfig = composite.CompositeConfig()

    def __post_init__(self):
        if self.morphs_per_face < 0 or self.num_examples < 0:
            raise ValueError("morphs_per_face and num_examples must be >= 0")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.theta is not None and self.theta < 0:
            raise ValueError(f"theta must be >= 0, got {self.theta}")

    def num_morphs(self, num_faces: int) -> int:
        """Morphs to add to the ``num_faces`` originals of the training split."""
        if self.num_examples <= 0:
            return self.morphs_per_face * num_faces
        if self.num_examples < num_faces:
            raise ValueError(
                f"num_examples={self.num_examples} is less than the {num_faces} training faces"
            )
        if self.num_examples > num_faces and self.morphs_per_face == 0:
            raise ValueError(
                f"num_examples={self.num_examples} > {num_faces} faces needs morphs: "
                "set morphs_per_face > 0 (0 means un-augmented)"
            )
        return self.num_examples - num_faces

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------
# Examples.
# ----------------------------------------------------------------------------------------------
def encode_png(image: np.ndarray) -> bytes:
    """``[S, S, 3]`` uint8 RGB -> PNG bytes (lossless)."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ValueError(f"PNG encoding failed for an image of shape {image.shape}")
    return data.tobytes()


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _floats(values) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values, np.float32).ravel()))


def make_example(image, texture, landmarks, features, descriptor, person: str, sources: Iterable[str],
                 weights) -> tf.train.Example:
    """One record: uint8 ``image``/``texture`` ``[S, S, 3]``, ``landmarks`` ``[68, 2]``,
    ``features`` ``[F]``, ``descriptor`` ``[128 | 0]``, ids and ``weights`` ``[2]``."""
    feature = {
        "image": _bytes(encode_png(image)),
        "texture": _bytes(encode_png(texture)),
        "landmarks": _floats(landmarks),
        "features": _floats(features),
        "descriptor": _floats(descriptor),
        "person": _bytes(person.encode()),
        "sources": _bytes(",".join(sources).encode()),
        "weights": _floats(weights),
        "size": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(image.shape[0])])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def parse_spec(feature_dim: int, descriptor_dim: int) -> dict:
    """The tf.io.parse_example spec of SCHEMA for the given variable lengths."""
    lengths = {"features": feature_dim, "descriptor": descriptor_dim}
    dtypes = {"bytes": tf.string, "float": tf.float32, "int64": tf.int64}
    spec = {}
    for name, (kind, length) in SCHEMA.items():
        length = lengths.get(name, length)
        spec[name] = tf.io.FixedLenFeature([] if kind != "float" else [length], dtypes[kind])
    return spec


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


def _join(root: str, name: str) -> str:
    return os.path.join(str(root), name)


def read_meta(records_dir: str | os.PathLike) -> RecordsMeta:
    """Reads ``meta.json`` of a complete records folder (FileNotFoundError/ValueError naming it)."""
    path = _join(records_dir, META_FILE)
    if not tf.io.gfile.exists(path):
        hint = " (a build is in progress or was interrupted: re-run it)" if tf.io.gfile.exists(
            _join(records_dir, BUILD_FILE)) else ""
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
    return [_join(records_dir, s["file"]) for s in meta.splits[split]["shards"]]


def verify_shards(records_dir: str | os.PathLike, split: str, full: bool = False) -> RecordsMeta:
    """Checks ``split``'s shards against meta.json; raises ValueError naming the bad file.

    Always: every shard exists with the recorded byte size (catches truncation). ``full``: also
    reads every record (TFRecord CRCs catch corruption) and checks the record count.
    """
    meta = read_meta(records_dir)
    for shard in meta.splits.get(split, {}).get("shards", []):
        path = _join(records_dir, shard["file"])
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


def _write_bytes_atomic(path: str, data: bytes) -> None:
    """io_utils.write_bytes_atomic for any tf.io.gfile path."""
    folder, name = os.path.split(str(path))
    if folder:
        tf.io.gfile.makedirs(folder)
    tmp = _join(folder, f".{name}.tmp-{os.getpid()}")
    with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(data)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def _write_text_atomic(path: str, text: str) -> None:
    _write_bytes_atomic(path, text.encode())


def _write_shard_atomic(path: str, examples: Iterable[tf.train.Example]) -> None:
    """Writes a shard under a temporary name, then renames it into place."""
    folder, name = os.path.split(path)
    tmp = _join(folder, f".{name}.tmp-{os.getpid()}")
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for example in examples:
                writer.write(example.SerializeToString())
        tf.io.gfile.rename(tmp, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)


def _remove_stale_temporaries(folder: str) -> None:
    """Deletes temporary shards a killed run left behind (one writer per folder)."""
    for name in tf.io.gfile.listdir(folder):
        if name.startswith(".") and ".tmp-" in name:
            tf.io.gfile.remove(_join(folder, name))


@dataclasses.dataclass
class SplitFaces:
    """One split's decomposed faces."""

    entries: list                 # [n] faceset.FaceEntry
    images: np.ndarray            # [n, S, S, 3] uint8
    landmarks: np.ndarray         # [n, 68, 2] float32
    textures: np.ndarray | None = None  # [n, S, S, 3] float32 in [0, 1]


def load_split(root, split: str) -> SplitFaces:
    entries = list(faceset.iter_faces(root, split))
    template = faceset.read_template(root)
    s = template.size
    images = np.empty((len(entries), s, s, 3), np.uint8)
    for i, entry in enumerate(entries):
        image = faceset.load_face_image(root, entry)
        if image.shape != (s, s, 3):
            raise ValueError(f"{faceset.face_paths(root, entry)[0]}: shape {image.shape}, template says {s}x{s}")
        images[i] = image
    landmarks = np.stack([e.landmarks_array for e in entries]) if entries else np.zeros((0, NUM_LANDMARKS, 2), np.float32)
    return SplitFaces(entries, images, landmarks)


def _fingerprint(faces: dict[str, SplitFaces]) -> str:
    """Hash of the input face set (ids, keys, landmarks): a resume must see the same faces."""
    digest = hashlib.sha256()
    for split in sorted(faces):
        for entry, marks in zip(faces[split].entries, faces[split].landmarks):
            digest.update(f"{split}|{entry.person}|{entry.key}|".encode())
            digest.update(np.asarray(marks, np.float32).tobytes())
    return digest.hexdigest()


def _check_resume(output_dir: str, build: dict) -> None:
    """Refuses to resume a build made with other flags or another face set."""
    path = _join(output_dir, BUILD_FILE)
    if not tf.io.gfile.exists(path):
        if any(n.endswith(SHARD_SUFFIX) for n in tf.io.gfile.listdir(output_dir)):
            raise ValueError(f"{output_dir} holds shards but no {BUILD_FILE}: use an empty output folder")
        _write_text_atomic(path, json.dumps(build, indent=1, sort_keys=True))
        return
    with tf.io.gfile.GFile(path, "r") as f:
        previous = json.load(f)
    changed = sorted(k for k in set(build) | set(previous) if build.get(k) != previous.get(k))
    if changed:
        raise ValueError(
            f"{path}: {output_dir} was built with different {', '.join(changed)}; "
            "resume with the same flags and faces, or use another output folder"
        )


def build_records(
    faceset_root, output_dir: str, config: BuildConfig, encode_fn: EncodeFn = no_encoder,
    splits: Iterable[str] = SPLITS, log: Callable[[str], None] = print,
    contact_sheet: str | None = None, contact_seeds: int = 8,
) -> RecordsMeta:
    """Face set in -> records out: train (augmented), validation and test (un-augmented).

    ``contact_sheet``: also write a PNG like the paper's Fig. 6 (``contact_seeds`` training faces,
    their chosen neighbours and 6 morphs each) to this path. Returns the written meta.
    Re-running resumes (skips finished shards); see the module docstring.
    """
    splits = list(splits)
    template = faceset.read_template(faceset_root)
    faces = {split: load_split(faceset_root, split) for split in sorted(set(splits) | {"train"})}
    train = faces["train"]
    if len(train.entries) < 2:
        raise ValueError(f"{faceset_root}: need at least 2 training faces, found {len(train.entries)}")
    mean = decompose.mean_landmarks(train.landmarks, template.size, config.symmetric_mean)
    for split in splits:
        faces[split].textures = decompose.to_texture(faces[split].images / 255.0, faces[split].landmarks, mean)

    rng = np.random.default_rng(config.seed)
    num_morphs = config.num_morphs(len(train.entries))
    theta, neighbours = None, None
    if "train" in splits and num_morphs > 0:
        dist_l, dist_t = morph.distance_terms(train.landmarks, train.textures)
        theta = config.theta if config.theta is not None else morph.balanced_theta(dist_l, dist_t)
        neighbours = morph.nearest_neighbours(theta * dist_l + dist_t, min(config.k, len(train.entries) - 1))
        log(f"neighbours: theta={theta:.4g} ({'flag' if config.theta is not None else 'balanced'}), k={neighbours.shape[1]}")
    compositor = composite.Compositor.for_landmarks(mean, template.size, config.composite)

    # Probe the encoder once for its output sizes (stored in meta.json even when all shards exist).
    probe_f, probe_d = encode_fn(train.images[:1], train.landmarks[:1])
    feature_dim, descriptor_dim = int(np.shape(probe_f)[1]), int(np.shape(probe_d)[1])
    if descriptor_dim not in (0, DESCRIPTOR_DIM):
        raise ValueError(f"encoder '{config.encoder}' gives {descriptor_dim}-D descriptors, expected 128 or 0")

    tf.io.gfile.makedirs(output_dir)
    _remove_stale_temporaries(output_dir)
    fingerprint = _fingerprint(faces)
    _check_resume(output_dir, {**config.to_dict(), "faceset": fingerprint, "splits": splits,
                               "schema_version": SCHEMA_VERSION})

    split_meta = {}
    for split in splits:
        sf = faces[split]
        if split == "train":
            plan = morph.plan_examples(len(sf.entries), neighbours, num_morphs, rng)
        else:
            plan = morph.plan_examples(len(sf.entries), None, 0, rng, shuffle=False)
        morpher = morph.Morpher(sf.images, sf.landmarks, sf.textures, mean, compositor)
        split_meta[split] = _write_split(output_dir, split, sf, plan, morpher, encode_fn, config, log)

    meta = {
        "schema_version": SCHEMA_VERSION,
        "schema": {name: {"kind": kind, "length": length} for name, (kind, length) in SCHEMA.items()},
        "template": template.to_dict(),
        "mean_landmarks": mean.tolist(),
        "feature_dim": feature_dim,
        "descriptor_dim": descriptor_dim,
        "encoder": config.encoder,
        "config": config.to_dict(),
        "theta": theta,
        "neighbours_k": None if neighbours is None else int(neighbours.shape[1]),
        "composite": {"lambda": compositor.lam, "blur_sigma_px": config.composite.blur_sigma_fraction * template.size,
                      "mask": "convex hull of the mean landmarks, Gaussian-blurred", "solver": "scipy.sparse.linalg.splu"},
        "faceset": {"root": str(faceset_root), "fingerprint": fingerprint,
                    "faces": {s: len(faces[s].entries) for s in splits}},
        "splits": split_meta,
    }
    _write_text_atomic(_join(output_dir, META_FILE), json.dumps(meta, indent=1))
    if contact_sheet and neighbours is not None:
        sheet_rng = np.random.default_rng([config.seed, 1])
        seeds = sheet_rng.choice(len(train.entries), min(contact_seeds, len(train.entries)), replace=False)
        morpher = morph.Morpher(train.images, train.landmarks, train.textures, mean, compositor)
        sheet = morph.contact_sheet(morpher, neighbours, seeds, sheet_rng)
        _write_bytes_atomic(contact_sheet, encode_png(sheet))
        log(f"contact sheet: {contact_sheet}")
    return read_meta(output_dir)


def _write_split(output_dir, split, faces: SplitFaces, plan: morph.MorphPlan, morpher: morph.Morpher,
                 encode_fn: EncodeFn, config: BuildConfig, log) -> dict:
    """Writes (or skips, when present) every shard of one split; returns its meta entry."""
    count = max(1, math.ceil(len(plan) / config.shard_size))
    shards, written, start_time = [], 0, time.time()
    for index in range(count):
        part = plan.slice(slice(index * config.shard_size, (index + 1) * config.shard_size))
        path = _join(output_dir, shard_name(split, index, count))
        if not tf.io.gfile.exists(path):
            _write_shard_atomic(path, iter_examples(faces, part, morpher, encode_fn))
            written += len(part)
            rate = written / max(time.time() - start_time, 1e-9)
            log(f"{split}: wrote {path} ({len(part)} examples, {rate:.1f}/s)")
        shards.append({"file": os.path.basename(path), "count": len(part),
                       "bytes": tf.io.gfile.stat(path).length})
    skipped = len(plan) - written
    log(f"{split}: {len(plan)} examples in {count} shards ({skipped} already written, skipped)")
    morphed = int(np.sum(plan.neighbour >= 0))
    return {"count": len(plan), "morphed": morphed, "originals": len(plan) - morphed, "shards": shards}


def iter_examples(faces: SplitFaces, plan: morph.MorphPlan, morpher: morph.Morpher, encode_fn: EncodeFn):
    """Yields the tf.train.Examples of ``plan``, rendered and encoded RENDER_BATCH at a time."""
    for start in range(0, len(plan), RENDER_BATCH):
        batch = plan.slice(slice(start, start + RENDER_BATCH))
        images, textures, marks = morpher.render(batch)
        features, descriptors = encode_fn(images, marks)
        for i in range(len(batch)):
            seed, nbr = batch.seed[i], batch.neighbour[i]
            person = faces.entries[seed].person
            sources = [person] if nbr < 0 else [person, faces.entries[nbr].person]
            yield make_example(images[i], textures[i], marks[i], features[i], descriptors[i],
                               person, sources, batch.weights[i])


# ----------------------------------------------------------------------------------------------
# Synthetic input for tests and benchmarks.
# ----------------------------------------------------------------------------------------------
def write_synthetic_faceset(root, size: int, counts: dict[str, int], seed: int = 0) -> AlignmentTemplate:
    """Writes a face set of :func:`decompose.synthetic_faces` (``counts``: split -> faces) under
    ``root`` in the format of :mod:`normface.data.faceset`; returns its template."""
    template = AlignmentTemplate.for_size(size)
    faceset.write_template(root, template)
    images, marks = decompose.synthetic_faces(sum(counts.values()), template, seed)
    i = 0
    for split, n in counts.items():
        for j in range(n):
            entry = faceset.FaceEntry(person=f"synthetic/{split}_{j:04d}", split=split,
                                      landmarks=marks[i].tolist(), photos=[])
            faceset.write_face(root, entry, images[i])
            i += 1
    return template
