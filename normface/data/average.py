"""Data preparation I, stage 2: filter the aligned photos and morph-average each person.

Reads the stage-1 face set (aligned photos + manifest of measures), applies the quality
thresholds (:class:`normface.faces.quality.QualityThresholds`, all flags), and for every person with at
least ``min_photos`` kept photos writes the morph average (:func:`average_faces`) and the mean
landmarks as a new face set (``min_photos`` 1: single-photo LFW people join). Each photo of a
public face set (:mod:`normface.data.public_sets`) is its own person and passes through when it
passes every filter, including even light. Studio neutral photos pass through as one-photo
"averages" (they are frontal and neutral by construction; their measures are still recorded).
A one-photo person's "average" is the photo itself. The summary counts photos per source and per
filter, and the light measures' distribution per source. Resumable per person.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from normface.faces import quality
from normface.utils import io_utils
from normface.utils import pictures
from normface.data import align, faceset, public_sets, splits

FILTERS = ("pose", "expression", "blur", "monochrome", "size", "light")
# Sources whose photos are kept when every filter passes (each public-set photo is its own person).
FILTERED_SOURCES = ("lfw/",) + tuple(f"{name}/" for name in public_sets.PUBLIC_SETS)
STUDIO_NEUTRAL = ("london/", "canada/")


def is_studio_neutral(record: dict) -> bool:
    return record["person"].startswith(STUDIO_NEUTRAL) and splits.is_neutral_studio_photo(record["photo"])


def filter_records(records: list[dict], thresholds: quality.QualityThresholds) -> tuple[list[dict], dict]:
    """Adds ``rejected_by`` to aligned records; returns (kept records, counts per filter)."""
    counts = {f"rejected_{name}": 0 for name in FILTERS}
    kept = []
    for rec in records:
        if rec["status"] != "aligned":
            continue
        rec["rejected_by"] = quality.rejections(rec["measures"], thresholds)
        for name in rec["rejected_by"]:
            counts[f"rejected_{name}"] += 1
        if is_studio_neutral(rec) or (not rec["rejected_by"] and rec["person"].startswith(FILTERED_SOURCES)):
            kept.append(rec)
    return kept, counts


@dataclasses.dataclass
class AveragePlan:
    """What a stage-2 run does: the filtered manifest, and per person to average, its photos
    (sorted by key, at most ``max_photos``). Drawn up by :func:`plan_average`; run by the local
    loop (:func:`average_all`) or the Beam pipeline (``normface.pipelines.average``)."""

    aligned_root: Path
    out_root: Path
    thresholds: quality.QualityThresholds
    min_photos: int
    records: list[dict]
    counts: dict
    people: list[str]
    photos_of: dict[str, list[dict]]


def plan_average(aligned_root: str | Path, out_root: str | Path, thresholds: quality.QualityThresholds,
                 min_photos: int = 1, max_photos: int = 32) -> AveragePlan:
    """Reads and filters the manifest, writes the template and run.json (a rerun with other
    settings is refused), and lists the people to average with their photos."""
    aligned_root, out_root = Path(aligned_root), Path(out_root)
    if min_photos < 1:
        raise ValueError(f"min_photos must be >= 1, got {min_photos}")
    if max_photos < 1:
        raise ValueError(f"max_photos must be >= 1, got {max_photos}")
    template = faceset.read_template(aligned_root)
    faceset.write_template(out_root, template)
    # Finished people are skipped on a rerun: that is only right with the same settings.
    align.check_run_config(out_root, {"thresholds": dataclasses.asdict(thresholds), "min_photos": min_photos,
                                      "max_photos": max_photos})
    records = align.read_manifest(aligned_root)
    kept, counts = filter_records(records, thresholds)
    by_person: dict[str, list[dict]] = defaultdict(list)
    for rec in kept:
        by_person[rec["person"]].append(rec)
    people = sorted(p for p, recs in by_person.items() if len(recs) >= min_photos or p.startswith(STUDIO_NEUTRAL))
    photos_of = {p: sorted(by_person[p], key=lambda r: r["key"])[:max_photos] for p in people}
    return AveragePlan(aligned_root, out_root, thresholds, min_photos, records, counts, people, photos_of)


def average_person(aligned_root: Path, out_root: Path, person: str, recs: list[dict]) -> bool:
    """Writes one person's morph average and mean landmarks unless present; returns whether it
    wrote them. The one home of a person's work: the local loop and the Beam pipeline call it."""
    split = recs[0]["split"]
    if faceset.has_face(out_root, split, person):
        return False
    entries = [faceset.read_entry(aligned_root, r["split"], r["key"]) for r in recs]
    images = np.stack([faceset.load_face_image(aligned_root, e) for e in entries])
    lms = np.stack([e.landmarks_array for e in entries])
    # One photo is its own average (morphing it onto its own landmarks changes nothing).
    avg, mean_lm = (images[0], lms[0]) if len(entries) == 1 else average_faces(images, lms)
    entry = faceset.FaceEntry(person=person, split=split, landmarks=mean_lm.tolist(),
                              photos=[r["photo"] for r in recs], key=person)
    faceset.write_face(out_root, entry, np.clip(np.rint(avg), 0, 255).astype(np.uint8))
    return True


def average_all(
    aligned_root: str | Path,
    out_root: str | Path,
    thresholds: quality.QualityThresholds,
    min_photos: int = 1,
    max_photos: int = 32,
    progress=print,
) -> dict:
    """Runs stage 2; returns the summary written to ``summary.json``."""
    plan = plan_average(aligned_root, out_root, thresholds, min_photos, max_photos)
    for n, person in enumerate(plan.people):
        average_person(plan.aligned_root, plan.out_root, person, plan.photos_of[person])
        if n % 200 == 0:
            progress(f"averaged {n + 1}/{len(plan.people)} people")
    return write_summary(plan)


def write_summary(plan: AveragePlan) -> dict:
    """Writes and returns ``summary.json`` of a finished stage-2 run."""
    records, counts, people, thresholds = plan.records, plan.counts, plan.people, plan.thresholds
    per_split: dict[str, int] = defaultdict(int)
    for person in people:
        per_split[plan.photos_of[person][0]["split"]] += 1
    aligned = [r for r in records if r["status"] == "aligned"]
    lfw_aligned = [r for r in aligned if r["person"].startswith("lfw/")]
    summary = {
        "photos_in": len(records),
        "aligned": len(aligned),
        "lfw_aligned": len(lfw_aligned),
        **{f"lfw_kept_by_{name}": sum(name not in r["rejected_by"] for r in lfw_aligned) for name in FILTERS},
        "lfw_kept_all_filters": sum(not r["rejected_by"] for r in lfw_aligned),
        **counts,
        "per_source": per_source_summary(records, people),
        "light_per_source": light_distribution(records),
        "people_averaged": len(people),
        "people_averaged_per_split": dict(per_split),
        "min_photos": plan.min_photos,
        "thresholds": dataclasses.asdict(thresholds),
    }
    io_utils.write_bytes_atomic(plan.out_root / "summary.json", json.dumps(summary, indent=1).encode())
    return summary


def _source(record: dict) -> str:
    return record["person"].split("/", 1)[0]


def per_source_summary(records: list[dict], people: list[str]) -> dict[str, dict[str, int]]:
    """Per source: photos in, aligned, kept by each filter, kept by all, people (faces) written.
    (``filter_records`` must have run: it sets ``rejected_by``.)"""
    out: dict[str, dict[str, int]] = {}
    for rec in records:
        row = out.setdefault(_source(rec), {"photos": 0, "aligned": 0, **{f"kept_by_{n}": 0 for n in FILTERS},
                                            "kept_all_filters": 0, "people": 0})
        row["photos"] += 1
        if rec["status"] != "aligned":
            continue
        row["aligned"] += 1
        for name in FILTERS:
            row[f"kept_by_{name}"] += name not in rec.get("rejected_by", [])
        row["kept_all_filters"] += not rec.get("rejected_by")
    for person in people:
        out.setdefault(person.split("/", 1)[0], {"people": 0})["people"] += 1
    return dict(sorted(out.items()))


def light_distribution(records: list[dict], quantiles=(0.1, 0.5, 0.9, 0.99)) -> dict[str, dict]:
    """Per source, quantiles of |light asymmetry| and of the light gradient over aligned photos."""
    values: dict[str, dict[str, list[float]]] = {}
    for rec in records:
        m = rec.get("measures") or {}
        if rec["status"] != "aligned" or "light_asymmetry" not in m:
            continue
        row = values.setdefault(_source(rec), {"asymmetry": [], "gradient": []})
        row["asymmetry"].append(abs(m["light_asymmetry"]))
        row["gradient"].append(m["light_gradient"])
    return {src: {name: {f"q{int(q * 100)}": float(np.quantile(v, q)) for q in quantiles} for name, v in row.items()}
            for src, row in sorted(values.items())}


def _entry_stub(record: dict) -> faceset.FaceEntry:
    """A FaceEntry with just enough to locate the record's files."""
    return faceset.FaceEntry(person=record["person"], split=record["split"],
                             landmarks=np.zeros((68, 2)).tolist(), photos=[], key=record["key"])


def contact_sheet(face_root: str | Path, split: str = "train", count: int = 64, seed: int = 0,
                  prefix: str = "lfw/") -> np.ndarray:
    """A grid of ``count`` seeded random faces of a face set (8 columns): those whose person
    starts with ``prefix`` (LFW's averages by default), or every face of the split when it has
    none of those (a face set made without LFW). ValueError when the split has no face at all."""
    every = list(faceset.iter_faces(face_root, split))
    entries = [e for e in every if e.person.startswith(prefix)] or every
    if not entries:
        raise ValueError(f"no faces in {face_root}/{split}")
    rng = np.random.default_rng(seed)
    chosen = [entries[i] for i in sorted(rng.permutation(len(entries))[:count])]
    images = [faceset.load_face_image(face_root, e) for e in chosen]
    return pictures.image_grid(images, cols=8, labels=[e.person.split("/")[-1] for e in chosen])


def write_sheets(aligned_root: str | Path, out_root: str | Path, thresholds: quality.QualityThresholds,
                 split: str = "train") -> list[Path]:
    """Writes stage 2's pictures: ``contact_sheet.png`` (averaged ``split`` faces; left out when
    the split has none) and ``filter_examples.png`` (kept / rejected LFW photos per filter; blank
    cells without LFW photos). Returns the paths written."""
    aligned_root, out_root = Path(aligned_root), Path(out_root)
    written = []
    if any(True for _ in faceset.iter_faces(out_root, split)):
        io_utils.save_image_atomic(out_root / "contact_sheet.png", contact_sheet(out_root, split))
        written.append(out_root / "contact_sheet.png")
    records = align.read_manifest(aligned_root)
    filter_records(records, thresholds)
    io_utils.save_image_atomic(out_root / "filter_examples.png", filter_sheet(aligned_root, records))
    written.append(out_root / "filter_examples.png")
    return written


def filter_sheet(aligned_root: str | Path, records: list[dict], per_cell: int = 6, seed: int = 0) -> np.ndarray:
    """Rows per filter: ``per_cell`` LFW photos it kept, then ``per_cell`` it rejected."""
    rng = np.random.default_rng(seed)
    tiles, labels = [], []
    lfw = [r for r in records if r["status"] == "aligned" and r["person"].startswith("lfw/")]
    for name in FILTERS:
        for want_rejected in (False, True):
            pool = [r for r in lfw if (name in r["rejected_by"]) == want_rejected]
            picks = [pool[i] for i in rng.permutation(len(pool))[:per_cell]] if pool else []
            for r in picks:
                tiles.append(faceset.load_face_image(aligned_root, _entry_stub(r)))
                labels.append(f"{name} {'rej' if want_rejected else 'ok'}")
            size = tiles[0].shape[0] if tiles else 64
            for _ in range(per_cell - len(picks)):
                tiles.append(np.full((size, size, 3), 255, np.uint8))
                labels.append("")
    return pictures.image_grid(tiles, cols=2 * per_cell, labels=labels)


def average_faces(
    images: np.ndarray, landmarks: np.ndarray, num_boundary_points: int = 4, batch_size: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Morph-averages aligned photos of one person.

    Args:
      images: ``[k, s, s, 3]`` uint8 or float aligned photos.
      landmarks: ``[k, 68, 2]`` their (x, y) landmarks in the aligned frame.
      num_boundary_points: zero-flow anchors per image edge for the warp.
      batch_size: photos warped at once (bounds memory for people with many photos).

    Returns:
      ``(average [s, s, 3] float32 in the input's value range, mean_landmarks [68, 2])``.
    """
    import tensorflow as tf

    from normface import warp

    images = np.asarray(images)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if images.ndim != 4 or landmarks.ndim != 3 or images.shape[0] != landmarks.shape[0]:
        raise ValueError(
            f"expected images [k, s, s, 3] and landmarks [k, 68, 2] with the same k, got {images.shape} and {landmarks.shape}"
        )
    if images.shape[0] == 0:
        raise ValueError("average_faces needs at least one photo")
    mean = landmarks.mean(axis=0)
    total = np.zeros(images.shape[1:], np.float64)
    for start in range(0, images.shape[0], batch_size):
        chunk = images[start:start + batch_size].astype(np.float32)
        src = landmarks[start:start + batch_size].astype(np.float32)
        dst = np.broadcast_to(mean.astype(np.float32), src.shape)
        warped, _ = warp.warp_to_landmarks(
            tf.constant(chunk), tf.constant(src), tf.constant(dst), num_boundary_points=num_boundary_points
        )
        total += warped.numpy().astype(np.float64).sum(axis=0)
    return (total / images.shape[0]).astype(np.float32), mean
