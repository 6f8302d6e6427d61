"""Data preparation I, stage 1: detect, landmark, measure and align every photo (paper Sec. 6).

Input: the face data folder (LFW, the London and Canada studio sets) and optionally the public face
sets of :mod:`normface.data.public_sets` (``fairface=/path`` etc.). Output, under one face-set
root (see :mod:`normface.data.faceset`): every photo with a face aligned to the template, its 68
landmarks in the aligned frame, and a manifest line per input photo with its quality measures,
or the reason it failed. Filtering happens later, on the measures (``normface.data.average``).

Work is split into fixed, deterministic shards of photos; a shard's manifest part is written
(atomically) only when the shard is done, so a killed run resumes by skipping finished shards and
redoing the rest, giving the same outputs as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable

from normface.data import faceset, public_sets
from normface.data import splits as splits_lib
from normface.faces.alignment import AlignmentTemplate
from normface.utils import io_utils

BUILTIN_SOURCES = ("lfw", "london", "canada")

MANIFEST_DIR = "manifest"
MANIFEST_FILE = "manifest.jsonl"
SPLITS_FILE = "splits.json"
# Photos smaller than this on either side are rejected before detection (no usable face).
MIN_PHOTO_SIDE = 32


@dataclasses.dataclass(frozen=True)
class Photo:
    """One input photo: its key (unique, used for output file names), person and path."""

    key: str       # e.g. lfw/Aaron_Eckhart/Aaron_Eckhart_0001, london/001_08, fairface/train_1
    person: str    # e.g. lfw/Aaron_Eckhart, london/001; a public-set photo is its own person
    path: str      # relative to the data root (absolute for a public set outside it)
    choose: str    # which face when several: "center" for face-centred crops (LFW), else "largest"
    border: float = 0.0   # retry detection with this border (fraction of the longer side) if none found
    border_mode: str = "constant"  # the border's pixels: "constant" (black) or "replicate" (edge)
    labels: dict[str, Any] = dataclasses.field(default_factory=dict)  # a public set's labels
    problem: str = ""     # why some labels are missing (e.g. a malformed UTKFace name)

    @property
    def source(self) -> str:
        return self.key.split("/")[0]


def list_photos(data_root: str | Path, sources: Iterable[str] = BUILTIN_SOURCES) -> list[Photo]:
    """Every photo of the chosen sources, in a fixed order (built-in sources, then FairFace,
    SCUT-FBP5500, UTKFace). A source is a name or, for a public set, ``name=/path/to/its/copy``
    (default: its sample under ``<data_root>/extra/``)."""
    root = Path(data_root)
    photos: list[Photo] = []
    chosen = public_sets.parse_sources(sources, BUILTIN_SOURCES)
    sources = set(chosen)
    if "lfw" in sources:
        for path in sorted((root / "lfw").glob("*/*.jpg")):
            name = path.parent.name
            photos.append(Photo(f"lfw/{name}/{path.stem}", f"lfw/{name}", str(path.relative_to(root)), "center"))
    for studio in splits_lib.studio_photos(root, tuple(s for s in ("london", "canada") if s in sources)):
        photos.append(Photo(f"{studio.source}/{studio.path.stem}", studio.person,
                            str(studio.path.relative_to(root)), "largest"))
    for name in public_sets.PUBLIC_SETS:
        if name in sources:
            set_root = Path(chosen[name] or public_sets.default_root(name, root))
            for p in public_sets.load(name, set_root):
                path = p.path.resolve()
                rel = path.relative_to(root.resolve()) if path.is_relative_to(root.resolve()) else path
                border, mode = public_sets.DETECTION_BORDER[name]
                photos.append(Photo(p.person, p.person, str(rel), "largest" if name == public_sets.SCUT else "center",
                                    border, mode, p.labels, p.problem))
    return photos


def detect(image, choose: str, border: float = 0.0, mode: str = "constant") -> list:
    """Faces of a photo (:func:`normface.faces.detection.find_faces68`). When none is found and ``border`` >
    0, retries on the photo with a border of ``border`` x its longer side (``mode``: "constant",
    black, or "replicate", the edge pixels): tight crops give the detector too little context.
    Boxes and landmarks are in the photo's own pixels either way."""
    import cv2

    from normface.faces.detection import find_faces68

    faces = find_faces68(image, choose=choose)
    pad = int(round(border * max(image.shape[:2])))
    if faces or pad <= 0:
        return faces
    kinds = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}
    if mode not in kinds:
        raise ValueError(f"border mode: expected one of {sorted(kinds)}, got {mode!r}")
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, kinds[mode], value=(0, 0, 0))
    return [dataclasses.replace(f, box=tuple(int(v) - pad for v in f.box), landmarks=f.landmarks - pad,
                                detector=f"{f.detector}+{mode} border")
            for f in find_faces68(padded, choose=choose)]


def process_photo(
    photo: Photo, data_root: Path, out_root: Path, split: str, template: AlignmentTemplate, expression_model,
    read: Callable[[str], Any] | None = None,
) -> dict:
    """Aligns and measures one photo; returns its manifest record (never raises for bad input).
    ``read(path)`` reads the photo (``photo.path`` joined to ``data_root``) as [h, w, 3] uint8;
    default :func:`normface.utils.io_utils.read_rgb` on the local file."""
    from normface.faces import quality
    from normface.faces.alignment import align_image

    record = {"key": photo.key, "person": photo.person, "photo": photo.path, "split": split, "source": photo.source}
    if photo.labels or photo.problem:
        record["labels"] = photo.labels
    if photo.problem:
        record["label_problem"] = photo.problem
    try:
        image = read(photo.path) if read is not None else io_utils.read_rgb(data_root / photo.path)
    except (ValueError, OSError) as err:
        return {**record, "status": "failed", "reason": f"unreadable: {err}"}
    height, width = image.shape[:2]
    if min(height, width) < MIN_PHOTO_SIDE:
        return {**record, "status": "failed", "reason": f"too small: {width}x{height} (< {MIN_PHOTO_SIDE} px)"}
    faces = detect(image, photo.choose, photo.border, photo.border_mode)
    if not faces:
        return {**record, "status": "failed", "reason": "no face found", "num_faces": 0}
    chosen = faces[0]
    landmarks = chosen.landmarks
    try:
        aligned, aligned_lm, _ = align_image(image, landmarks, template)
        measures = quality.measure(landmarks, (height, width), aligned, aligned_lm, template, expression_model,
                                   data_root)
    except ValueError as err:
        return {**record, "status": "failed", "reason": f"alignment failed: {err}", "num_faces": len(faces)}
    entry = faceset.FaceEntry(person=photo.person, split=split, landmarks=aligned_lm.tolist(),
                              photos=[photo.path], key=photo.key)
    faceset.write_face(out_root, entry, aligned)
    return {**record, "status": "aligned", "num_faces": len(faces), "measures": measures,
            "box": [float(v) for v in chosen.box], **({"detector": chosen.detector} if photo.border else {})}


def shard_path(out_root: Path, index: int) -> Path:
    return out_root / MANIFEST_DIR / f"shard-{index:05d}.jsonl"


def run_shard(index: int, photos: list[Photo], data_root: Path, out_root: Path, split_of: dict[str, str],
              template: AlignmentTemplate, expression_model, read: Callable[[str], Any] | None = None) -> list[dict]:
    """Aligns one shard of photos and writes its manifest part (atomically, once the shard is done);
    returns the shard's manifest records. A photo that raises is recorded as failed, never fatal.
    ``read(path)``: reads a photo given its path under ``data_root`` (default: the local file).
    The one home of a shard's work: the local pool and the Beam pipeline both call it."""
    records = []
    for photo in photos:
        try:
            rec = process_photo(photo, data_root, out_root, split_of[photo.person], template, expression_model, read)
        except Exception as err:  # a bug on one photo must not stop the batch: record it
            rec = {"key": photo.key, "person": photo.person, "photo": photo.path, "status": "failed",
                   "reason": f"error: {err!r}", "traceback": traceback.format_exc(limit=3)}
        records.append(rec)
    io_utils.write_bytes_atomic(shard_path(out_root, index), "".join(json.dumps(r) + "\n" for r in records).encode())
    return records


def _run_shard(args) -> tuple[int, int, int]:
    index, photos, data_root, out_root, split_of, template_dict, model_path = args
    from normface.faces import quality

    model = quality.ExpressionModel.load(model_path)
    records = run_shard(index, photos, Path(data_root), Path(out_root), split_of,
                        AlignmentTemplate.from_dict(template_dict), model)
    return index, len(records), sum(r["status"] == "failed" for r in records)


def prepare_output(out_root: Path, data_root: Path, template: AlignmentTemplate, seed: int,
                   extra_people: Iterable[str] = ()) -> dict[str, str]:
    """Writes (or checks) the template and the person split; returns person -> split.
    ``extra_people``: the public-set person ids of this run (each must be in the split)."""
    faceset.write_template(out_root, template)
    split_file = out_root / SPLITS_FILE
    if split_file.is_file():
        splits = splits_lib.read_splits(split_file)
        stored_seed = json.loads(split_file.read_text()).get("seed")
        if stored_seed != seed:
            raise ValueError(f"{split_file} was made with seed {stored_seed}, not {seed}: use another output folder")
        known = splits_lib.split_of(splits)
        missing = [p for p in extra_people if p not in known]
        if missing:
            raise ValueError(f"{split_file} lacks {len(missing)} people of this run's public sets (e.g. {missing[0]}): "
                             "use another output folder")
    else:
        splits = splits_lib.make_splits(data_root, seed=seed, extra_people=extra_people)
        splits_lib.write_splits(split_file, splits, seed, splits_lib.split_rules(seed))
    return splits_lib.split_of(splits)


@dataclasses.dataclass
class AlignmentPlan:
    """What a stage-1 run does: the shards of photos, the person split, the shards still to do.
    Drawn up by :func:`plan_alignment` (which also writes the template, the split and run.json);
    run by the local pool (:func:`align_all`) or the Beam pipeline (``normface.pipelines.align``)."""

    data_root: Path
    out_root: Path
    template: AlignmentTemplate
    shards: list[list[Photo]]
    split_of: dict[str, str]
    todo: list[int]                  # indices of the shards without a manifest part
    source_checks: dict
    expression_model_path: str | None

    @property
    def photos(self) -> int:
        return sum(len(s) for s in self.shards)


def plan_alignment(
    data_root: str | Path,
    out_root: str | Path,
    template: AlignmentTemplate,
    sources: Iterable[str] = BUILTIN_SOURCES,
    shard_size: int = 200,
    seed: int = splits_lib.DEFAULT_SEED,
    limit: int | None = None,
    expression_model_path: str | Path | None = None,
    progress=print,
) -> AlignmentPlan:
    """Lists the photos, writes (or checks) the template, the person split and the run settings,
    and splits the photos into fixed shards; the shards already written are left out of ``todo``."""
    data_root, out_root = Path(data_root), Path(out_root)
    if not data_root.is_dir():
        raise FileNotFoundError(f"data root not found: {data_root}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    from normface.faces import face3d
    from normface.faces import quality

    # Fail at start-up, not once per photo, when a model file is missing.
    face3d.model_dir(data_root)
    quality.ExpressionModel.load(expression_model_path)
    sources = list(sources)
    all_photos = list_photos(data_root, sources)
    public = [p for p in all_photos if p.source in public_sets.PUBLIC_SETS]
    split_of = prepare_output(out_root, data_root, template, seed, [p.person for p in public])
    photos = [p for p in all_photos if p.person in split_of]
    # Full copies are checked against the expected photo counts (reported, not fatal: samples).
    checks = {name: public_sets.count_check(name, [p for p in public if p.source == name])
              for name in public_sets.parse_sources(sources, BUILTIN_SOURCES) if name in public_sets.PUBLIC_SETS}
    for check in checks.values():
        if check["note"]:
            progress(check["note"])
    if limit:
        photos = photos[:limit]
    shards = [photos[i:i + shard_size] for i in range(0, len(photos), shard_size)]
    check_run_config(out_root, {"sources": sorted(set(sources)), "shard_size": shard_size, "limit": limit or 0,
                                "template": template.to_dict(), "photos": len(photos),
                                "keys_sha256": _keys_digest(p.key for p in photos)})
    todo = [i for i in range(len(shards)) if not shard_path(out_root, i).is_file()]
    progress(f"{len(photos)} photos in {len(shards)} shards; {len(shards) - len(todo)} already done")
    return AlignmentPlan(data_root, out_root, template, shards, split_of, todo, checks,
                         str(expression_model_path) if expression_model_path else None)


def align_all(data_root: str | Path, out_root: str | Path, template: AlignmentTemplate, workers: int = 2,
              progress=print, **plan_args) -> dict:
    """Runs stage 1 over the data on ``workers`` local processes; resumable. Returns the summary
    written to ``summary.json``. ``plan_args``: ``sources`` (names or ``name=/path`` for the public
    sets, :func:`list_photos`), ``shard_size``, ``seed``, ``limit``, ``expression_model_path``
    (:func:`plan_alignment`)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    plan = plan_alignment(data_root, out_root, template, progress=progress, **plan_args)
    jobs = [(i, plan.shards[i], str(plan.data_root), str(plan.out_root), plan.split_of, template.to_dict(),
             plan.expression_model_path) for i in plan.todo]
    if workers == 1:
        results = map(_run_shard, jobs)
    else:
        pool = multiprocessing.get_context("spawn").Pool(workers)
        results = pool.imap_unordered(_run_shard, jobs)
    done = len(plan.shards) - len(plan.todo)
    for index, count, failed in results:
        done += 1
        progress(f"shard {index}: {count} photos, {failed} failed ({done}/{len(plan.shards)} shards)")
    if workers != 1:
        pool.close()
        pool.join()
    return merge_manifest(plan.out_root, len(plan.shards), plan.source_checks)


RUN_FILE = "run.json"


def _keys_digest(keys) -> str:
    import hashlib

    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def check_run_config(out_root: Path, config: dict) -> None:
    """Records the run's settings; refuses to resume a folder made with other settings (its
    finished shards would hold other photos, and photos would be silently skipped)."""
    path = out_root / RUN_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
        if changed:
            raise ValueError(f"{out_root} was made with other settings ({', '.join(changed)} differ): "
                             "use another output folder or the same flags")
        return
    io_utils.write_bytes_atomic(path, json.dumps(config, indent=1).encode())


def merge_manifest(out_root: Path, num_shards: int, source_checks: dict | None = None) -> dict:
    """Concatenates the shard manifests into ``manifest.jsonl`` and writes ``summary.json``
    (with counts per source, the public sets' photo-count checks and their label problems)."""
    records = []
    for i in range(num_shards):
        records += [json.loads(ln) for ln in shard_path(out_root, i).read_text().splitlines() if ln.strip()]
    io_utils.write_bytes_atomic(out_root / MANIFEST_FILE, "".join(json.dumps(r) + "\n" for r in records).encode())
    reasons: dict[str, int] = {}
    for r in records:
        if r["status"] == "failed":
            reason = r["reason"].split(":")[0]
            reasons[reason] = reasons.get(reason, 0) + 1
    summary = {
        "photos": len(records),
        "aligned": sum(r["status"] == "aligned" for r in records),
        "failed": sum(r["status"] == "failed" for r in records),
        "failure_reasons": reasons,
        "several_faces": sum(r.get("num_faces", 0) > 1 for r in records),
        "per_source": _per_source(records),
        "source_checks": source_checks or {},
        "label_problems": {r["key"]: r["label_problem"] for r in records if r.get("label_problem")},
    }
    io_utils.write_bytes_atomic(out_root / "summary.json", json.dumps(summary, indent=1).encode())
    return summary


def _per_source(records: list[dict]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for r in records:
        counts = out.setdefault(r.get("source") or r["key"].split("/")[0], {"photos": 0, "aligned": 0, "failed": 0})
        counts["photos"] += 1
        counts[r["status"]] += 1
    return out


def read_manifest(out_root: str | Path) -> list[dict]:
    path = Path(out_root) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no manifest at {path}: run data_prep/align_faces.py first")
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
