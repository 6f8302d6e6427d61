"""Data preparation III: decomposed faces -> morphs, composites, encoder features -> TFRecords.

Train records hold every training face once plus its random morphs (:mod:`normface.data.morph`);
validation and test records hold their faces un-augmented. Textures of every split are
registered to the *training* mean landmarks.

Writing is deterministic and resumable: the whole plan (which seed, neighbour and weights go in
which shard) is drawn up front from ``--seed``, each shard is written to a temporary name and
renamed into place, and a re-run with the same flags skips the shards that exist. A re-run with
other flags or another face set is refused (``build.json``). One writer per folder.
"""


from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from typing import Callable, Iterable

import numpy as np
import tensorflow as tf

from normface.faces.alignment import NUM_LANDMARKS
from normface.data import composite, faceset, morph
from normface.data import decompose
from normface.data.records import (
    BUILD_FILE,
    META_FILE,
    SHARD_SUFFIX,
    SPLITS,
    RecordsMeta,
    join_path,
    read_meta,
    shard_name,
)
from normface.data.schema import DESCRIPTOR_DIM, SCHEMA, SCHEMA_VERSION, encode_png, make_example
from normface.utils import io_utils
DEFAULT_SHARD_SIZE = 1000   # ~60 MB per shard at 128x128 (two PNGs of ~30 KB per example)

RENDER_BATCH = 32           # examples rendered (and warped, encoded) per step


# encode_fn(images uint8 [b, S, S, 3], landmarks float32 [b, 68, 2]) -> (features [b, F],
# descriptors [b, 128]) as float32; F and 128 may be 0 (no encoder).
EncodeFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def no_encoder(images: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An EncodeFn writing zero-length features and descriptors (augmentation ablation, debugging)."""
    n = len(images)
    return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.float32)


NO_ENCODER = "none"


def encode_fn_for(name: str) -> EncodeFn:
    """The EncodeFn of the encoder registered as ``name`` (:func:`normface.encoders.resolve`), or
    :func:`no_encoder` for ``"none"``: zero-length features and descriptors, only for the
    augmentation ablation and debugging (training without the identity loss needs stored features).
    ValueError naming an unknown encoder."""
    if name == NO_ENCODER:
        return no_encoder
    from normface import encoders

    encoders.check_name(name, extra=(NO_ENCODER,))
    return encoders.resolve(name).record_encoder()


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
    mirrored: bool = False        # also store the encoder's features of each flipped image
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


def write_shard_atomic(path: str, examples: Iterable[tf.train.Example]) -> None:
    """Writes a shard under a temporary name, then renames it into place."""
    folder, name = os.path.split(path)
    tmp = join_path(folder, f".{name}.tmp-{os.getpid()}")
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for example in examples:
                # Deterministic: the feature map in key order, so a shard's bytes do not depend on
                # the process that writes it (protobuf orders maps by a per-process hash otherwise).
                writer.write(example.SerializeToString(deterministic=True))
        tf.io.gfile.rename(tmp, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)


def _remove_stale_temporaries(folder: str) -> None:
    """Deletes temporary shards a killed run left behind (one writer per folder)."""
    for name in tf.io.gfile.listdir(folder):
        if name.startswith(".") and ".tmp-" in name:
            tf.io.gfile.remove(join_path(folder, name))


@dataclasses.dataclass
class SplitFaces:
    """One split's decomposed faces."""

    entries: list                 # [n] faceset.FaceEntry
    images: np.ndarray            # [n, S, S, 3] uint8
    landmarks: np.ndarray         # [n, 68, 2] float32
    textures: np.ndarray | None = None  # [n, S, S, 3] float32 in [0, 1]


def faces_per_source(entries) -> dict[str, int]:
    """Faces per source (the ``<source>/`` prefix of each person id), for ``meta.json``."""
    counts: dict[str, int] = {}
    for entry in entries:
        source = entry.person.split("/", 1)[0]
        counts[source] = counts.get(source, 0) + 1
    return dict(sorted(counts.items()))


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
    path = join_path(output_dir, BUILD_FILE)
    if not tf.io.gfile.exists(path):
        if any(n.endswith(SHARD_SUFFIX) for n in tf.io.gfile.listdir(output_dir)):
            raise ValueError(f"{output_dir} holds shards but no {BUILD_FILE}: use an empty output folder")
        io_utils.write_bytes_atomic(path, json.dumps(build, indent=1, sort_keys=True).encode())
        return
    with tf.io.gfile.GFile(path, "r") as f:
        previous = json.load(f)
    changed = sorted(k for k in set(build) | set(previous) if build.get(k) != previous.get(k))
    if changed:
        raise ValueError(
            f"{path}: {output_dir} was built with different {', '.join(changed)}; "
            "resume with the same flags and faces, or use another output folder"
        )


@dataclasses.dataclass
class BuildPlan:
    """Everything a records build writes, drawn up from the face set and the config alone (no
    output touched): the decomposed faces of each split, the training mean landmarks, the
    neighbour table and, per split, which seed, neighbour and weights go in which shard. The
    same inputs and seed give the same plan on any machine, so a Beam worker that draws it up
    again (``normface.pipelines.records``) writes the same shards as the local path."""

    faceset_root: str
    config: BuildConfig
    splits: list[str]
    template: object
    faces: dict[str, SplitFaces]
    mean: np.ndarray
    theta: float | None
    neighbours: np.ndarray | None
    compositor: composite.Compositor
    plans: dict[str, morph.MorphPlan]
    fingerprint: str

    def shard_count(self, split: str) -> int:
        return max(1, math.ceil(len(self.plans[split]) / self.config.shard_size))

    def shard_path(self, output_dir: str, split: str, index: int) -> str:
        return join_path(output_dir, shard_name(split, index, self.shard_count(split)))

    def shard_part(self, split: str, index: int) -> morph.MorphPlan:
        size = self.config.shard_size
        return self.plans[split].slice(slice(index * size, (index + 1) * size))

    def morpher(self, split: str) -> morph.Morpher:
        sf = self.faces[split]
        return morph.Morpher(sf.images, sf.landmarks, sf.textures, self.mean, self.compositor)

    def build_record(self) -> dict:
        """What ``build.json`` holds: a resume must see the same flags and faces."""
        return {**self.config.to_dict(), "faceset": self.fingerprint, "splits": self.splits,
                "schema_version": SCHEMA_VERSION}


def plan_build(faceset_root, config: BuildConfig, splits: Iterable[str] = SPLITS,
               log: Callable[[str], None] = print) -> BuildPlan:
    """Loads and decomposes the face set and draws up the whole plan from ``config.seed``."""
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
    plans = {}
    for split in splits:
        if split == "train":
            plans[split] = morph.plan_examples(len(faces[split].entries), neighbours, num_morphs, rng)
        else:
            plans[split] = morph.plan_examples(len(faces[split].entries), None, 0, rng, shuffle=False)
    return BuildPlan(str(faceset_root), config, splits, template, faces, mean, theta, neighbours, compositor, plans,
                     _fingerprint(faces))


def probe_encoder(plan: BuildPlan, encode_fn: EncodeFn) -> tuple[int, int]:
    """The encoder's (feature, descriptor) sizes, from one training face; ValueError for a
    descriptor size other than 128 or 0."""
    train = plan.faces["train"]
    probe_f, probe_d = encode_fn(train.images[:1], train.landmarks[:1])
    feature_dim, descriptor_dim = int(np.shape(probe_f)[1]), int(np.shape(probe_d)[1])
    if descriptor_dim not in (0, DESCRIPTOR_DIM):
        raise ValueError(f"encoder '{plan.config.encoder}' gives {descriptor_dim}-D descriptors, expected 128 or 0")
    return feature_dim, descriptor_dim


def prepare_output(output_dir: str, plan: BuildPlan) -> None:
    """Creates the output folder, removes a killed run's temporary shards and records (or checks)
    ``build.json``. One writer per folder: the local loop or one Beam pipeline."""
    tf.io.gfile.makedirs(output_dir)
    _remove_stale_temporaries(output_dir)
    _check_resume(output_dir, plan.build_record())


def write_shard(output_dir: str, plan: BuildPlan, split: str, index: int, morpher: morph.Morpher,
                encode_fn: EncodeFn) -> int:
    """Writes shard ``index`` of ``split`` unless it exists; returns the examples written (0
    when skipped). The one home of a shard's work: the local loop and the Beam pipeline call it."""
    path = plan.shard_path(output_dir, split, index)
    if tf.io.gfile.exists(path):
        return 0
    part = plan.shard_part(split, index)
    write_shard_atomic(path, iter_examples(plan.faces[split], part, morpher, encode_fn, plan.config.mirrored))
    return len(part)


def split_meta(output_dir: str, plan: BuildPlan, split: str) -> dict:
    """``meta.json``'s entry of a split whose shards are all written."""
    shards = [{"file": os.path.basename(plan.shard_path(output_dir, split, i)), "count": len(plan.shard_part(split, i)),
               "bytes": tf.io.gfile.stat(plan.shard_path(output_dir, split, i)).length}
              for i in range(plan.shard_count(split))]
    morphed = int(np.sum(plan.plans[split].neighbour >= 0))
    return {"count": len(plan.plans[split]), "morphed": morphed, "originals": len(plan.plans[split]) - morphed,
            "shards": shards}


def finish_build(output_dir: str, plan: BuildPlan, dims: tuple[int, int], contact_sheet: str | None = None,
                 contact_seeds: int = 8, log: Callable[[str], None] = print) -> RecordsMeta:
    """Writes ``meta.json`` (and the contact sheet) once every shard exists; returns the meta."""
    config, template, faces = plan.config, plan.template, plan.faces
    meta = {
        "schema_version": SCHEMA_VERSION,
        "schema": {name: {"kind": kind, "length": length} for name, (kind, length) in SCHEMA.items()},
        "template": template.to_dict(),
        "mean_landmarks": plan.mean.tolist(),
        "feature_dim": dims[0],
        "descriptor_dim": dims[1],
        "encoder": config.encoder,
        "mirrored": config.mirrored,
        "config": config.to_dict(),
        "theta": plan.theta,
        "neighbours_k": None if plan.neighbours is None else int(plan.neighbours.shape[1]),
        "composite": {"lambda": plan.compositor.lam,
                      "blur_sigma_px": config.composite.blur_sigma_fraction * template.size,
                      "mask": "convex hull of the mean landmarks, Gaussian-blurred", "solver": "scipy.sparse.linalg.splu"},
        "faceset": {"root": str(plan.faceset_root), "fingerprint": plan.fingerprint,
                    "faces": {s: len(faces[s].entries) for s in plan.splits},
                    "faces_per_source": {s: faces_per_source(faces[s].entries) for s in plan.splits}},
        "splits": {split: split_meta(output_dir, plan, split) for split in plan.splits},
    }
    io_utils.write_bytes_atomic(join_path(output_dir, META_FILE), json.dumps(meta, indent=1).encode())
    if contact_sheet and plan.neighbours is not None:
        train = faces["train"]
        sheet_rng = np.random.default_rng([config.seed, 1])
        seeds = sheet_rng.choice(len(train.entries), min(contact_seeds, len(train.entries)), replace=False)
        sheet = morph.contact_sheet(plan.morpher("train"), plan.neighbours, seeds, sheet_rng)
        io_utils.write_bytes_atomic(contact_sheet, encode_png(sheet))
        log(f"contact sheet: {contact_sheet}")
    return read_meta(output_dir)


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
    plan = plan_build(faceset_root, config, splits, log)
    # Probe the encoder once for its output sizes (stored in meta.json even when all shards exist).
    dims = probe_encoder(plan, encode_fn)
    prepare_output(output_dir, plan)
    for split in plan.splits:
        _write_split(output_dir, plan, split, encode_fn, log)
    return finish_build(output_dir, plan, dims, contact_sheet, contact_seeds, log)


def _write_split(output_dir, plan: BuildPlan, split: str, encode_fn: EncodeFn, log) -> None:
    """Writes (or skips, when present) every shard of one split."""
    morpher = plan.morpher(split)
    count, written, start_time = plan.shard_count(split), 0, time.time()
    for index in range(count):
        done = write_shard(output_dir, plan, split, index, morpher, encode_fn)
        if done:
            written += done
            rate = written / max(time.time() - start_time, 1e-9)
            log(f"{split}: wrote {plan.shard_path(output_dir, split, index)} ({done} examples, {rate:.1f}/s)")
    skipped = len(plan.plans[split]) - written
    log(f"{split}: {len(plan.plans[split])} examples in {count} shards ({skipped} already written, skipped)")


def encode_mirrored(encode_fn: EncodeFn, images: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``encode_fn`` of the left/right-flipped ``[b, S, S, 3]`` images (landmarks flipped with
    them, iBUG order kept): the mirrored features of :mod:`normface.data.schema`."""
    flipped = np.ascontiguousarray(images[:, :, ::-1])
    return encode_fn(flipped, decompose.mirror_landmarks(landmarks, images.shape[2]).astype(np.float32))


def iter_examples(faces: SplitFaces, plan: morph.MorphPlan, morpher: morph.Morpher, encode_fn: EncodeFn,
                  mirrored: bool = False):
    """Yields the tf.train.Examples of ``plan``, rendered and encoded RENDER_BATCH at a time
    (``mirrored``: also the features of each flipped image)."""
    for start in range(0, len(plan), RENDER_BATCH):
        batch = plan.slice(slice(start, start + RENDER_BATCH))
        images, textures, marks = morpher.render(batch)
        features, descriptors = encode_fn(images, marks)
        flipped = encode_mirrored(encode_fn, images, marks) if mirrored else None
        for i in range(len(batch)):
            seed, nbr = batch.seed[i], batch.neighbour[i]
            person = faces.entries[seed].person
            sources = [person] if nbr < 0 else [person, faces.entries[nbr].person]
            yield make_example(images[i], textures[i], marks[i], features[i], descriptors[i],
                               person, sources, batch.weights[i],
                               mirrored=None if flipped is None else (flipped[0][i], flipped[1][i]))


def add_mirrored_features(records_dir: str, output_dir: str, encode_fn: EncodeFn,
                          log: Callable[[str], None] = print) -> RecordsMeta:
    """Copies a records folder adding the mirrored features (the encoder on each flipped image) to
    every example, so records built without ``--mirrored`` serve the mirror augmentation without a
    rebuild. Shard by shard, each written atomically; a rerun skips finished shards."""
    meta = read_meta(records_dir)
    if meta.mirrored:
        raise ValueError(f"{records_dir} already holds mirrored features")
    if not meta.raw.get("config", {}).get("symmetric_mean", False):
        raise ValueError(f"{records_dir}: built without symmetric_mean; flipped textures would not register")
    if os.path.abspath(str(output_dir)) == os.path.abspath(str(records_dir)):
        raise ValueError("output_dir must differ from records_dir (nothing is overwritten)")
    tf.io.gfile.makedirs(output_dir)
    _remove_stale_temporaries(output_dir)
    raw = json.loads(json.dumps(meta.raw))
    for split, info in raw["splits"].items():
        for shard in info["shards"]:
            src, dst = join_path(records_dir, shard["file"]), join_path(output_dir, shard["file"])
            if not tf.io.gfile.exists(dst):
                write_shard_atomic(dst, _with_mirrored(src, meta.size, encode_fn))
                log(f"{split}: wrote {dst}")
            shard["bytes"] = tf.io.gfile.stat(dst).length
    raw["mirrored"] = True
    raw["config"]["mirrored"] = True
    raw["mirrored_from"] = str(records_dir)
    io_utils.write_bytes_atomic(join_path(output_dir, META_FILE), json.dumps(raw, indent=1).encode())
    return read_meta(output_dir)


def _with_mirrored(shard: str, size: int, encode_fn: EncodeFn):
    """The examples of ``shard`` with FEATURES_MIRRORED / DESCRIPTOR_MIRRORED added."""
    from normface.data import schema

    def flush(batch):
        images = np.stack([tf.io.decode_png(ex.features.feature[schema.IMAGE].bytes_list.value[0], 3).numpy()
                           for ex in batch])
        marks = np.stack([np.asarray(ex.features.feature[schema.LANDMARKS].float_list.value, np.float32)
                          .reshape(NUM_LANDMARKS, 2) for ex in batch])
        features, descriptors = encode_mirrored(encode_fn, images, marks)
        for ex, f, d in zip(batch, features, descriptors):
            ex.features.feature[schema.FEATURES_MIRRORED].float_list.value[:] = np.asarray(f, np.float32)
            ex.features.feature[schema.DESCRIPTOR_MIRRORED].float_list.value[:] = np.asarray(d, np.float32)
            yield ex

    batch = []
    for record in tf.data.TFRecordDataset(shard).as_numpy_iterator():
        batch.append(tf.train.Example.FromString(record))
        if len(batch) == RENDER_BATCH:
            yield from flush(batch)
            batch = []
    if batch:
        yield from flush(batch)

