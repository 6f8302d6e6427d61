"""The evaluation protocol on held-out people (paper Sec. 7, issue 8).

Test photos are the aligned photos of LFW View 1 *test* people (never trained on), read from the
stage-1 face set, plus the held-out London people's smiling and neutral photos. Each photo is
normalized by a model (:class:`normface.serving.normalizer.FaceNormalizer`) and, as the baseline,
frontalized by warping (:mod:`normface.evaluation.frontalize`); every descriptor comes from the same
encoder path as training (aligned face + landmarks -> chip -> network).

The measurements are plain functions of those arrays (:mod:`normface.evaluation.metrics`).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import numpy as np

from normface.data import align, faceset
from normface.encoders.similarity import SAME_PERSON_THRESHOLD
from normface.evaluation import metrics



@dataclasses.dataclass
class TestPhotos:
    keys: list[str]
    people: np.ndarray         # [n] person ids
    images: np.ndarray         # [n, S, S, 3] uint8 aligned photos
    landmarks: np.ndarray      # [n, 68, 2]
    sources: list[str] = dataclasses.field(default_factory=list)  # [n] photo paths under the data root
    labels: list[dict] = dataclasses.field(default_factory=list)   # [n] the set's labels (FairFace: race, ...)
    missing: int = 0  # photos of these people that stage 1 could not align (no face found, ...): left out


def load_test_photos(aligned_root: str | Path, prefix: str = "lfw/", max_people: int | None = None,
                     seed: int = 0, keys: set[str] | None = None, min_photos: int = 1,
                     split: str = "test") -> TestPhotos:
    """Aligned photos of ``split`` people (test by default; validation for model selection) with
    at least ``min_photos`` photos (optionally a seeded subset of ``max_people`` of them)."""
    if split not in ("test", "validation"):
        raise ValueError(f"split must be test or validation (people never trained on), got {split!r}")
    manifest = [r for r in align.read_manifest(aligned_root)
                if r.get("split") == split and str(r.get("person", "")).startswith(prefix)
                and (keys is None or r["key"] in keys)]
    records = [r for r in manifest if r["status"] == "aligned"]
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        counts[r["person"]] += 1
    people = sorted(p for p, c in counts.items() if c >= min_photos)
    if max_people and len(people) > max_people:
        rng = np.random.default_rng(seed)
        people = sorted(rng.choice(people, max_people, replace=False).tolist())
    chosen = set(people)
    records = [r for r in records if r["person"] in chosen]
    missing = sum(r["status"] != "aligned" and (max_people is None or r["person"] in chosen) for r in manifest)
    if not records:
        raise ValueError(f"no aligned {split} photos with prefix {prefix!r} in {aligned_root}")
    entries = [faceset.read_entry(aligned_root, split, r["key"]) for r in records]
    images = [faceset.load_face_image(aligned_root, e) for e in entries]
    lms = [e.landmarks_array for e in entries]
    return TestPhotos([r["key"] for r in records], np.array([r["person"] for r in records]),
                      np.stack(images), np.stack(lms), [r["photo"] for r in records],
                      [r.get("labels") or {} for r in records], missing)


def run_model(normalizer, photos: TestPhotos, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Normalizes every photo; returns stacked outputs and both descriptors."""
    parts = defaultdict(list)
    for start in range(0, len(photos.keys), batch_size):
        out = normalizer.normalize_aligned(photos.images[start:start + batch_size],
                                           photos.landmarks[start:start + batch_size])
        for k, v in out.items():
            parts[k].append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


def identity_table(real: np.ndarray, out: np.ndarray, people: np.ndarray, far_threshold: float) -> dict:
    """Output-vs-own-input and cross-photo identity numbers for one method."""
    own = np.linalg.norm(out - real, axis=-1)
    d = metrics.pairwise_distances(out, real)
    same = people[:, None] == people[None, :]
    other_photo = same & ~np.eye(len(people), dtype=bool)
    genuine = d[other_photo]
    impostor = d[~same]
    row = {
        "own_within_0.6": metrics.share_within(own, SAME_PERSON_THRESHOLD),
        f"own_within_far0.1%({far_threshold:.3f})": metrics.share_within(own, far_threshold),
        "own_median": float(np.median(own)),
    }
    if genuine.size:
        row["cross_within_0.6"] = metrics.share_within(genuine, SAME_PERSON_THRESHOLD)
        for far in (0.001, 0.01):
            tar, _ = metrics.tar_at_far(genuine, impostor, far)
            row[f"cross_TAR@FAR{far:.1%}"] = tar
        row["rank1"] = rank1(out, real, people)
    return row


def judge_identity_table(real: np.ndarray, out: np.ndarray | None, people: np.ndarray) -> dict:
    """The independent judge's identity numbers of one method (:mod:`normface.encoders.judge`):
    ``real`` ``[n, D]`` embeddings of the photos, ``out`` ``[n, D]`` of each photo's output, or
    None for the real-photo ceiling (photo A against photo B).

    Cross-photo: the output of photo A against every other photo B of the same person (genuine)
    and against every photo of every other person (impostor); the threshold at a FAR is that
    row's impostor quantile. ``all``: every genuine pair counts once (people with many photos
    dominate); ``balanced``: each person's genuine pairs weigh one in all. Rank-1: gallery = the
    first photo of every person, probes = the outputs of their other photos. Own: the output
    against its own photo. Distinctiveness: mean cosine between the outputs of different people."""
    people = np.asarray(people)
    ceiling = out is None
    out = real if ceiling else out
    sims = metrics.cosine_matrix(out, real)
    same = people[:, None] == people[None, :]
    genuine_mask = same & ~np.eye(len(people), dtype=bool)
    row: dict = {}
    if genuine_mask.any():
        genuine = sims[genuine_mask]
        weights = metrics.person_balanced_weights(np.broadcast_to(people[:, None], sims.shape)[genuine_mask])
        impostor = sims[~same]
        for far in (0.001, 0.01):
            threshold = metrics.similarity_threshold_at_far(impostor, far)
            row[f"cross_TAR@FAR{far:.1%}"] = metrics.weighted_accept_rate(genuine, threshold)
            row[f"cross_TAR@FAR{far:.1%}_balanced"] = metrics.weighted_accept_rate(genuine, threshold, weights)
        row["cross_mean_cosine"] = float(genuine.mean())
        row["genuine_pairs"] = int(genuine.size)
        row["rank1"] = rank1(out, real, people)
    row["own_mean_cosine"] = None if ceiling else float(np.mean(np.diag(sims)))
    row["distinctiveness"] = metrics.distinctiveness(out, people)
    return row


def ceiling_shares(rows: dict[str, dict], ceiling: str, keys: tuple[str, ...] = (
        "cross_TAR@FAR0.1%", "cross_TAR@FAR0.1%_balanced", "rank1")) -> None:
    """Adds to every row of ``rows`` its share of the ``ceiling`` row for each of ``keys`` (in place)."""
    top = rows[ceiling]
    for name, row in rows.items():
        if name != ceiling:
            for key in keys:
                if row.get(key) is not None and top.get(key):
                    row[f"{key}_of_ceiling"] = row[key] / top[key]


GROUP_LABELS = ("race", "gender", "age_group")


def group_table(own: dict[str, np.ndarray], labels: list[dict], keys: tuple[str, ...] = GROUP_LABELS,
                min_photos: int = 20, judged: dict[str, np.ndarray] | None = None) -> dict:
    """Own-input identity by labelled group (e.g. FairFace's race, gender, age group): one row per
    ``key: value`` with at least ``min_photos`` photos, the share within 0.6 of each method in
    ``own`` (name -> ``[n]`` dlib distances of each output to its input photo) and their median,
    and with ``judged`` (name -> ``[n]`` the independent judge's cosines of the same pairs) the
    judge's mean cosine."""
    rows = {}
    for key in keys:
        values = np.array([str(lab.get(key, "")) for lab in labels])
        for value in sorted(set(values.tolist()) - {""}):
            idx = np.flatnonzero(values == value)
            if len(idx) < min_photos:
                continue
            row: dict = {"photos": int(len(idx))}
            for name, dist in own.items():
                row[f"{name} within 0.6"] = metrics.share_within(dist[idx], SAME_PERSON_THRESHOLD)
                row[f"{name} median"] = float(np.median(dist[idx]))
                if judged is not None and name in judged:
                    row[f"{name} judge cosine"] = float(np.mean(judged[name][idx]))
            rows[f"{key}: {value}"] = row
    return rows


def rank1(out: np.ndarray, real: np.ndarray, people: np.ndarray) -> float:
    """Gallery: the first real photo of each person; probes: outputs of their other photos."""
    first: dict[str, int] = {}
    for i, p in enumerate(people):
        first.setdefault(p, i)
    gallery_idx = np.array(sorted(first.values()))
    probes = np.array([i for i in range(len(people)) if i not in set(gallery_idx)
                       and (people == people[i]).sum() > 1])
    if probes.size == 0:
        return float("nan")
    return metrics.rank1_identification(out[probes], people[probes], real[gallery_idx], people[gallery_idx])


def invariance_table(images: np.ndarray, landmarks: np.ndarray | None, people: np.ndarray, min_photos: int = 3
                     ) -> dict:
    """Mean per-person spread (pixel L1, landmark px) over people with ``min_photos``+ photos."""
    rows = []
    for p in np.unique(people):
        idx = np.flatnonzero(people == p)
        if len(idx) >= min_photos:
            rows.append(metrics.spread(images[idx], None if landmarks is None else landmarks[idx]))
    if not rows:
        return {}
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} | {"people": len(rows)}
