"""Data preparation II: leakage screening and deduplication of the training pool, with its report.

Between stage 2 (averaged faces, ``<faces>/averaged``) and the records (stage 3). The public face
sets (FairFace, SCUT-FBP5500, UTKFace) carry no identities, so nothing but their faces can keep
a test person out of training:

1. **Descriptors** of every training face (the pool) and of every *aligned* validation and test
   photo (LFW View 1 test people, held-out London people, validation people, held-out FairFace
   photos: every pose, not just the filtered ones), from the frozen encoder, cached in
   ``<faces>/screening/descriptors-*.npz`` (compact, resumable: a rerun encodes nothing twice).
2. **Leakage**: a public-set face whose descriptor lies within ``leak_threshold`` (one against
   many; default 0.45, stricter than the 0.6 same-person threshold, because at 0.6 nearly every
   pool photo has some test photo near it) of any photo of a test or validation *person* (LFW,
   London) is removed; within ``dup_threshold`` of a held-out public-set photo (FairFace's val
   photos: anonymous, one per person, where only the same photo can leak), likewise. The labelled sets
   (LFW, London, Canada) are split by name and not screened by face. The report estimates the
   miss rate: the share of same-person pairs of held-out LFW people farther apart than the
   threshold (a pool photo of a test person is missed about that often).
3. **Near-duplicates** in the pool: faces within ``dup_threshold`` (0.3) of each other form
   groups (connected components); one face per group stays, labelled sources first, then the
   face averaged from more photos, then the first key. So every "person" of an unlabelled set
   means "a photo left after deduplication".
4. **Age**: public-set faces whose labelled age is below ``min_age`` are removed (0 keeps all).

Output ``<faces>/screened``: the averaged face set less the removed training faces (hard links,
so no pixels are copied), ``screening.json`` (the report), ``removed.jsonl`` (one line per
removed face: key, reason, the nearest face and its distance) and ``invariance.json`` (the
training people with several photos, for invariance pairing). Later stages read it as any face
set.

The steps are functions both the local path (:func:`screen_faces`) and the Beam pipeline
(:mod:`normface.pipelines.screen`) call: :func:`plan_screening`, the descriptor chunks
(:func:`missing_chunks`, :func:`encode_chunk`, :func:`write_chunk`) and :func:`finish_screening`
(the comparisons and every output).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from normface.data import align, faceset, public_sets, splits
from normface.utils import io_utils

SCREENED = "screened"
CACHE_DIR = "screening"
REPORT_FILE = "screening.json"
REMOVED_FILE = "removed.jsonl"
INVARIANCE_FILE = "invariance.json"
CHUNK = 1024               # faces per cached descriptor chunk (the unit of resumption)
LEAK_THRESHOLD = 0.45
DUP_THRESHOLD = 0.3
MIN_AGE = 10               # children (FairFace/UTKFace 0-2, 3-9) out by default: see WORKSPACE.md
LABELLED_SOURCES = ("lfw", "london", "canada")
REASONS = ("near a held-out person", "near-duplicate of a held-out photo", "child", "near-duplicate")

# descriptor_fn(images uint8 [b, S, S, 3], landmarks float32 [b, 68, 2]) -> descriptors [b, D].
DescriptorFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class ScreenConfig:
    """Thresholds of the screening stage (all flags of ``data_prep/screen_faces.py``)."""

    leak_threshold: float = LEAK_THRESHOLD
    dup_threshold: float = DUP_THRESHOLD
    min_age: int = MIN_AGE

    def __post_init__(self):
        if not 0 < self.dup_threshold <= self.leak_threshold:
            raise ValueError(f"need 0 < dup_threshold <= leak_threshold, got {self.dup_threshold}, "
                             f"{self.leak_threshold}")
        if self.min_age < 0:
            raise ValueError(f"min_age must be >= 0, got {self.min_age}")


def source_of(person: str) -> str:
    return person.split("/", 1)[0]


def min_age_of(labels: dict | None) -> int | None:
    """The lowest age a public-set photo's labels allow (``age``, else the ``age_group``'s lower
    bound, e.g. ``"3-9"`` -> 3, ``"70+"`` -> 70); None when unlabelled."""
    if not labels:
        return None
    if isinstance(labels.get("age"), int):
        return labels["age"]
    group = str(labels.get("age_group") or "")
    head = group.split("-")[0].rstrip("+")
    return int(head) if head.isdigit() else None


def cache_key(entry: faceset.FaceEntry) -> str:
    """A face's descriptor-cache key: its key and the photos it was made from (an average made
    from other photos under other thresholds is another face)."""
    import hashlib

    digest = hashlib.sha1("\n".join(entry.photos).encode()).hexdigest()[:12]
    return f"{entry.split}/{entry.key}@{digest}"


def chunk_path(cache: Path, name: str, index: int) -> Path:
    """``cache/descriptors-<name>-NNNNN.npz``: one chunk of cached descriptors."""
    return cache / f"descriptors-{name}-{index:05d}.npz"


def read_cache(cache: Path, name: str) -> tuple[dict[str, np.ndarray], int]:
    """Every descriptor cached under ``name`` (:func:`cache_key` -> descriptor) and the index the
    next chunk gets (one past the highest there)."""
    known: dict[str, np.ndarray] = {}
    next_index = 0
    for path in sorted(cache.glob(f"descriptors-{name}-*.npz")):
        stored = np.load(path)
        known.update(zip(stored["keys"].tolist(), stored["descriptors"]))
        index = path.stem.rsplit("-", 1)[1]
        next_index = max(next_index, int(index) + 1 if index.isdigit() else 0)
    return known, next_index


@dataclasses.dataclass(frozen=True)
class DescriptorChunk:
    """Up to ``CHUNK`` faces still without a cached descriptor: one batch through the encoder,
    one cache file (:func:`chunk_path`), the unit of resumption and of the Beam pipeline's work."""

    name: str                       # pool | heldout | pairs
    index: int
    faces_root: Path
    entries: list[faceset.FaceEntry]


def missing_chunks(name: str, faces_root: Path, entries: list[faceset.FaceEntry], known: dict, next_index: int
                   ) -> list[DescriptorChunk]:
    """The faces of ``entries`` missing from ``known`` (in order), as chunks numbered from ``next_index``."""
    missing = [e for e in entries if cache_key(e) not in known]
    return [DescriptorChunk(name, next_index + n, Path(faces_root), missing[start:start + CHUNK])
            for n, start in enumerate(range(0, len(missing), CHUNK))]


def encode_chunk(chunk: DescriptorChunk, descriptor_fn: DescriptorFn, unreadable=None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The chunk's faces through ``descriptor_fn`` in one batch: (cache keys, descriptors
    ``[n, D]`` float32). ``unreadable(entry, error)``: called for a face whose image cannot be read,
    which is left out (None: the error propagates)."""
    faces, images = [], []
    for entry in chunk.entries:
        try:
            images.append(faceset.load_face_image(chunk.faces_root, entry))
        except Exception as err:  # reported to the caller, which asked to go on
            if unreadable is None:
                raise
            unreadable(entry, err)
            continue
        faces.append(entry)
    keys = np.array([cache_key(e) for e in faces])
    if not faces:
        return keys, np.zeros((0, 128), np.float32)
    marks = np.stack([e.landmarks_array for e in faces])
    return keys, np.asarray(descriptor_fn(np.stack(images), marks), np.float32)


def write_chunk(cache: Path, chunk: DescriptorChunk, keys: np.ndarray, descriptors: np.ndarray) -> None:
    """Writes a chunk's descriptors to the cache, atomically."""
    with io_utils.atomic_path(chunk_path(cache, chunk.name, chunk.index)) as tmp:
        np.savez(tmp, keys=keys, descriptors=descriptors)


def stack_descriptors(known: dict[str, np.ndarray], entries: list[faceset.FaceEntry]) -> np.ndarray:
    """The descriptors ``[n, D]`` of ``entries`` (in order) from ``known``."""
    if not entries:
        return np.zeros((0, 128), np.float32)
    return np.stack([known[cache_key(e)] for e in entries]).astype(np.float32)


def cached_descriptors(name: str, cache: Path, faces_root: Path, entries: list[faceset.FaceEntry],
                       descriptor_fn: DescriptorFn, progress) -> np.ndarray:
    """Descriptors ``[n, D]`` of ``entries`` (in order). Every descriptor ever computed for a face
    (:func:`cache_key`) is kept in ``cache/descriptors-<name>-NNNNN.npz`` chunks; only faces missing there are
    encoded (``CHUNK`` at a time, each chunk written atomically), so a rerun with other thresholds
    (another pool) encodes only the new faces."""
    known, next_index = read_cache(cache, name)
    chunks = missing_chunks(name, faces_root, entries, known, next_index)
    total, done = sum(len(c.entries) for c in chunks), 0
    for chunk in chunks:
        keys, desc = encode_chunk(chunk, descriptor_fn)
        write_chunk(cache, chunk, keys, desc)
        known.update(zip(keys.tolist(), desc))
        done += len(chunk.entries)
        progress(f"{name}: encoded {done}/{total} new faces")
    return stack_descriptors(known, entries)


def distance_blocks(a: np.ndarray, b: np.ndarray, block: int = 2048):
    """Yields ``(start, distances)``: the Euclidean distances ``[<= block, len(b)]`` from rows
    ``start:start + block`` of ``a`` to every row of ``b`` (memory ~block x len(b))."""
    from scipy.spatial.distance import cdist

    b = np.asarray(b, np.float64)
    for start in range(0, len(a), block):
        yield start, cdist(np.asarray(a[start:start + block], np.float64), b)


def nearest(queries: np.ndarray, pool: np.ndarray, exclude_self: bool = False,
            block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the index of its nearest ``pool`` row and the Euclidean distance
    (``exclude_self``: queries are the pool, skip the diagonal)."""
    idx = np.zeros(len(queries), np.int64)
    dist = np.full(len(queries), np.inf)
    if not len(pool):
        return idx, dist
    for start, d in distance_blocks(queries, pool, block):
        rows = np.arange(len(d))
        if exclude_self:
            d[rows, start + rows] = np.inf
        j = np.argmin(d, 1)
        idx[start:start + len(d)] = j
        dist[start:start + len(d)] = d[rows, j]
    return idx, dist


def duplicate_groups(desc: np.ndarray, threshold: float, block: int = 2048) -> np.ndarray:
    """Group id per row: rows within ``threshold`` of each other (transitively) share one (the
    connected components of the "within threshold" graph)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows, cols = [], []
    for start, d in distance_blocks(desc, desc, block):
        r, c = np.nonzero(d <= threshold)
        rows.append(r + start)
        cols.append(c)
    n = len(desc)
    rows_all, cols_all = (np.concatenate(x) if x else np.zeros(0, np.int64) for x in (rows, cols))
    graph = coo_matrix((np.ones(len(rows_all)), (rows_all, cols_all)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def same_person_miss_rate(desc: np.ndarray, people: list[str], threshold: float) -> tuple[float, int]:
    """Share of same-person pairs (LFW people with 2+ photos) farther apart than ``threshold``,
    and the number of pairs."""
    by_person: dict[str, list[int]] = {}
    for i, p in enumerate(people):
        if p.startswith("lfw/"):
            by_person.setdefault(p, []).append(i)
    far = total = 0
    for rows in by_person.values():
        if len(rows) < 2:
            continue
        _, dist = next(distance_blocks(desc[rows], desc[rows], block=len(rows)))
        upper = dist[np.triu_indices(len(rows), 1)]
        far += int(np.sum(upper > threshold))
        total += len(upper)
    return (far / total if total else float("nan")), total


def _link_face(src_root: Path, dst_root: Path, entry: faceset.FaceEntry) -> None:
    for src, dst in zip(faceset.face_paths(src_root, entry), faceset.face_paths(dst_root, entry)):
        if dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
        try:
            os.link(src, tmp)
        except OSError:   # another filesystem: copy instead
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def _unlink_face(root: Path, entry: faceset.FaceEntry) -> None:
    for path in reversed(faceset.face_paths(root, entry)):
        path.unlink(missing_ok=True)


def _labels_by_photo(records: list[dict]) -> dict[str, dict]:
    return {r["photo"]: r.get("labels") or {} for r in records if r.get("status") == "aligned"}


def invariance_people(records: list[dict], training_people: set[str]) -> dict[str, dict[str, list[str]]]:
    """The people who serve invariance pairing (features of one photo, the person's averaged
    neutral face as the target): training people of the labelled sets with 2+ aligned photos of
    any pose, expression or light (multi-photo LFW people; London people, neutral + smiling).
    Canada has one photo per person. Returns source -> person -> aligned photo keys."""
    photos: dict[str, list[str]] = {}
    for r in records:
        if r.get("status") == "aligned" and r["person"] in training_people and r["split"] == "train":
            photos.setdefault(r["person"], []).append(r["key"])
    out: dict[str, dict[str, list[str]]] = {"lfw": {}, "london": {}}
    for person, keys in sorted(photos.items()):
        source = source_of(person)
        if source in out and len(keys) >= 2:
            out[source][person] = sorted(keys)
    return out


@dataclasses.dataclass(frozen=True)
class ScreenPlan:
    """What a screening run compares: the training pool (averaged faces) and the held-out photos
    (every aligned validation and test photo), with its folders and thresholds."""

    faces_root: Path
    config: ScreenConfig
    pool: list[faceset.FaceEntry]
    held_out: list[faceset.FaceEntry]

    @property
    def aligned_root(self) -> Path:
        return faceset.aligned_dir(self.faces_root)

    @property
    def averaged_root(self) -> Path:
        return faceset.averaged_dir(self.faces_root)

    @property
    def out_root(self) -> Path:
        return self.faces_root / SCREENED

    @property
    def cache(self) -> Path:
        return self.faces_root / CACHE_DIR

    def described(self) -> tuple[tuple[str, Path, list[faceset.FaceEntry]], ...]:
        """(cache name, faces folder, faces) of the two sets that need descriptors."""
        return ("pool", self.averaged_root, self.pool), ("heldout", self.aligned_root, self.held_out)


def plan_screening(faces_root: str | Path, config: ScreenConfig = ScreenConfig()) -> ScreenPlan:
    """Prepares ``<faces_root>/screened`` (template; refuses a folder screened with other
    thresholds) and the cache folder, and lists the faces to screen."""
    faces_root = Path(faces_root)
    aligned_root, averaged_root = faceset.aligned_dir(faces_root), faceset.averaged_dir(faces_root)
    out_root, cache = faces_root / SCREENED, faces_root / CACHE_DIR
    template = faceset.read_template(averaged_root)
    faceset.write_template(out_root, template)
    align.check_run_config(out_root, {"config": dataclasses.asdict(config)})
    cache.mkdir(parents=True, exist_ok=True)

    pool = list(faceset.iter_faces(averaged_root, "train"))
    held_out = [e for s in ("validation", "test") for e in faceset.iter_faces(aligned_root, s)]
    if not pool:
        raise ValueError(f"{averaged_root}: no training faces to screen")
    return ScreenPlan(faces_root, config, pool, held_out)


def screen_faces(faces_root: str | Path, descriptor_fn: DescriptorFn, config: ScreenConfig = ScreenConfig(),
                 progress=print) -> dict:
    """Runs the screening stage on ``<faces_root>/{aligned,averaged}``; returns the report
    (also written to ``<faces_root>/screened/screening.json``)."""
    plan = plan_screening(faces_root, config)
    pool_desc = cached_descriptors("pool", plan.cache, plan.averaged_root, plan.pool, descriptor_fn, progress)
    held_desc = cached_descriptors("heldout", plan.cache, plan.aligned_root, plan.held_out, descriptor_fn, progress)
    return finish_screening(plan, plan.pool, pool_desc, plan.held_out, held_desc)


def finish_screening(plan: ScreenPlan, pool: list[faceset.FaceEntry], pool_desc: np.ndarray,
                     held_out: list[faceset.FaceEntry], held_desc: np.ndarray,
                     not_described: list[faceset.FaceEntry] = ()) -> dict:
    """The comparisons (every pool face against the held-out photos and the other pool faces) and
    the outputs (the screened face set, ``removed.jsonl``, ``invariance.json``, ``screening.json``)
    of the described ``pool`` and ``held_out`` faces (``plan``'s, or those of them that have a
    descriptor); returns the report. ``not_described``: pool faces left out (their images could
    not be read): not in the screened set."""
    config, averaged_root, out_root = plan.config, plan.averaged_root, plan.out_root
    if not pool:
        raise ValueError(f"{averaged_root}: no training face could be described")
    records = align.read_manifest(plan.aligned_root)
    labels = _labels_by_photo(records)

    removed: dict[int, dict] = {}
    # 1. leakage: unlabelled sources only. Test people (LFW, London) and validation people are
    # screened one against many; the held-out public-set photos (anonymous, one photo per person)
    # only for near-duplicates: at 0.45 nearly every pool face has one of them nearby.
    public = np.array([source_of(e.person) in public_sets.PUBLIC_SETS for e in pool])
    photo_only = np.array([e.person.startswith(splits.HELD_OUT_PREFIXES) for e in held_out], bool)
    for subset, threshold, reason in ((~photo_only, config.leak_threshold, "near a held-out person"),
                                      (photo_only, config.dup_threshold, "near-duplicate of a held-out photo")):
        if not subset.any():
            continue
        rows = np.nonzero(subset)[0]
        near_idx, near_dist = nearest(pool_desc, held_desc[rows])
        for i in np.nonzero(public & (near_dist <= threshold if reason.startswith("near-dup") else near_dist < threshold))[0]:
            if int(i) not in removed:
                removed[int(i)] = {"reason": reason, "nearest": held_out[rows[near_idx[i]]].key,
                                   "distance": float(near_dist[i])}
    # 2. children (labelled ages of the public sets).
    ages = [min_age_of(labels.get(e.photos[0])) if e.photos else None for e in pool]
    for i, age in enumerate(ages):
        if i not in removed and public[i] and age is not None and age < config.min_age:
            removed[i] = {"reason": "child", "age": age}
    # 3. near-duplicates among the rest.
    alive = np.array([i for i in range(len(pool)) if i not in removed])
    groups = duplicate_groups(pool_desc[alive], config.dup_threshold)
    rank = {i: (source_of(pool[i].person) not in LABELLED_SOURCES, -len(pool[i].photos), pool[i].key) for i in alive}
    keeper: dict[int, int] = {}
    for i, g in zip(alive, groups):
        if g not in keeper or rank[i] < rank[keeper[g]]:
            keeper[g] = int(i)
    for i, g in zip(alive, groups):
        k = keeper[g]
        if k != i:
            removed[int(i)] = {"reason": "near-duplicate", "nearest": pool[k].key,
                               "distance": float(np.linalg.norm(pool_desc[i] - pool_desc[k]))}

    # Output face set: kept training faces + every validation and test face, as hard links. A
    # face an earlier, interrupted or older run linked but this one removes is unlinked.
    for i, entry in enumerate(pool):
        if i not in removed:
            _link_face(averaged_root, out_root, entry)
        else:
            _unlink_face(out_root, entry)
    for entry in not_described:
        _unlink_face(out_root, entry)
    for split in ("validation", "test"):
        for entry in faceset.iter_faces(averaged_root, split):
            _link_face(averaged_root, out_root, entry)
    lines = [json.dumps({"key": pool[i].key, "source": source_of(pool[i].person), **info})
             for i, info in sorted(removed.items())]
    io_utils.write_bytes_atomic(out_root / REMOVED_FILE, "".join(ln + "\n" for ln in lines).encode())

    kept_people = {pool[i].person for i in range(len(pool)) if i not in removed}
    pairing = invariance_people(records, kept_people)
    io_utils.write_bytes_atomic(out_root / INVARIANCE_FILE, json.dumps(pairing, indent=1).encode())
    held_people = [e.person for e in held_out]
    miss, pairs = same_person_miss_rate(held_desc, held_people, config.leak_threshold)
    report = _report(pool, removed, ages, public, pool_desc, config, miss, pairs, len(held_out))
    report["invariance_people"] = {src: {"people": len(p), "photos": sum(map(len, p.values()))}
                                   for src, p in pairing.items()}
    io_utils.write_bytes_atomic(out_root / REPORT_FILE, json.dumps(report, indent=1).encode())
    return report


def _report(pool, removed, ages, public, pool_desc, config, miss, pairs, held_out_count) -> dict:
    per_source: dict[str, dict[str, int]] = {}
    for i, entry in enumerate(pool):
        row = per_source.setdefault(source_of(entry.person), {"in": 0, **{r: 0 for r in REASONS}, "kept": 0})
        row["in"] += 1
        if i in removed:
            row[removed[i]["reason"]] += 1
        else:
            row["kept"] += 1
    # The encoder's view of children: how far each public-set face is from its nearest other
    # pool face (a crowded descriptor space means the decoder cannot tell those faces apart).
    _, nn = nearest(pool_desc, pool_desc, exclude_self=True)
    child = np.array([public[i] and a is not None and a < MIN_AGE for i, a in enumerate(ages)])
    adult = np.array([public[i] and a is not None and a >= MIN_AGE for i, a in enumerate(ages)])
    children = {"public_set_faces_under_10": int(child.sum()),
                "median_nearest_distance_children": float(np.median(nn[child])) if child.any() else None,
                "median_nearest_distance_adults": float(np.median(nn[adult])) if adult.any() else None,
                "min_age": config.min_age}
    kept = sum(r["kept"] for r in per_source.values())
    return {
        "config": dataclasses.asdict(config),
        "pool_faces": len(pool), "held_out_photos": held_out_count, "training_faces_kept": kept,
        "removed": {reason: sum(r[reason] for r in per_source.values()) for reason in REASONS},
        "per_source": per_source,
        "estimated_miss_rate": {"value": miss, "same_person_pairs": pairs,
                                "what": "share of same-person pairs of held-out LFW people farther apart than "
                                        "leak_threshold"},
        "children": children,
        "note": "for the public sets, a 'person' is a photo left after deduplication",
    }


def screened_dir(faces_root: str | Path) -> Path:
    """``<faces_root>/screened``: the face set the records are built from."""
    return Path(faces_root) / SCREENED


def read_report(faces_root: str | Path) -> dict:
    path = screened_dir(faces_root) / REPORT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {REPORT_FILE} in {path.parent}: run data_prep/screen_faces.py first")
    return json.loads(path.read_text())


def descriptor_fn_for(encoder: str) -> DescriptorFn:
    """The descriptors of the encoder registered as ``encoder`` (``normface.encoders.resolve``)."""
    from normface import encoders

    encode = encoders.resolve(encoder).record_encoder()
    return lambda images, landmarks: encode(images, landmarks)[1]


__all__ = ["ScreenConfig", "screen_faces", "plan_screening", "finish_screening", "screened_dir", "read_report",
           "descriptor_fn_for", "nearest", "duplicate_groups", "same_person_miss_rate", "min_age_of"]
