"""Loaders for three public face sets that bring more people into training (issue 15).

LFW and the studio sets give about 400 training people after filtering; the decoder memorises
them. FairFace, SCUT-FBP5500 and UTKFace (aligned & cropped) add tens of thousands of photos of
(nearly always) different people. Each loader reads the set's own published layout, so a user
points stage 1 at an official download (``--sources=fairface=/data/fairface``); without a path
the small sample under ``<data_root>/extra/`` is used (``../shared/data/README.md``, "More people
for training"). Nothing here detects faces: the loaders list photos with their labels, and stage
1 (:mod:`normface.data.align`) runs them through the same detection, measures and alignment as
LFW.

- FairFace: ``fairface_label_{train,val}.csv`` (``file,age,gender,race,service_test``) at the
  root; images at ``<root>/<file>`` (official layout) or ``<root>/fair_face/<file>`` (the GitHub
  copy). That copy's age column was mangled by a spreadsheet (``03-Sep`` is 3-9, ``Oct-19`` is
  10-19); :func:`normalize_fairface_age` maps it back to the official groups.
- SCUT-FBP5500: ``Images/*.jpg`` (``AF``/``AM``/``CF``/``CM`` + number), ``facial landmark/*.pts``
  (binary: int32 count, then float32 x, y pairs; 86 points), ``train_test_files/All_labels.txt``
  (file name and beauty score).
- UTKFace: one folder of ``age_gender_race_datetime.jpg.chip.jpg``. A few real names miss a field;
  those photos are listed with a ``problem`` (stage 1 records it), never dropped silently.

Every photo is its own person (none of the sets labels identities). Errors name the missing or
malformed file. Each set has an expected photo count; :func:`count_check` says when a copy holds
another number (the samples are small by design, so that is a report, not an error).
"""

from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

FAIRFACE, SCUT, UTKFACE = "fairface", "scut", "utkface"
PUBLIC_SETS = (FAIRFACE, SCUT, UTKFACE)
# Default folders under <data_root>/extra/ (the samples for tests).
SAMPLE_DIRS = {FAIRFACE: "fairface", SCUT: "scut_fbp5500", UTKFACE: "utkface"}
# Photo counts of the copies this project uses (README "More people for training"). The official
# FairFace release (padding 0.25) has 86,744 train + 10,954 val photos; the GitHub copy 40,000 +
# 5,000.
EXPECTED_COUNTS: dict[str, dict[str, int]] = {
    FAIRFACE: {"train": 40_000, "val": 5_000},
    SCUT: {"all": 5_500},
    UTKFACE: {"all": 23_707},
}
FAIRFACE_RELEASE_COUNTS = {"train": 86_744, "val": 10_954}

# Tight crops: when the detector finds no face in the photo as it is, it retries on the photo with
# a border of this fraction of its longer side, black ("constant") or repeating the edge pixels
# ("replicate"). Measured on 2,000 random photos of each full copy (WORKSPACE.md): FairFace 77.3%
# as is, 80.0% always with a black border, 81.6% with the black-border retry (80.4% replicating);
# UTKFace 99.1% as is, 99.4% / 99.6% with a black / replicated retry. SCUT's 350x350 photos have
# room around the face.
DETECTION_BORDER: dict[str, tuple[float, str]] = {
    FAIRFACE: (0.25, "constant"), SCUT: (0.0, "constant"), UTKFACE: (0.25, "replicate")}

FAIRFACE_AGE_GROUPS = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")
# Spreadsheet-mangled and long spellings -> official group.
_FAIRFACE_AGE_ALIASES = {"03-Sep": "3-9", "3-Sep": "3-9", "Sep-03": "3-9", "Oct-19": "10-19",
                         "19-Oct": "10-19", "more than 70": "70+", "70-": "70+"}
FAIRFACE_CSVS = {"train": "fairface_label_train.csv", "val": "fairface_label_val.csv"}
FAIRFACE_COLUMNS = ("file", "age", "gender", "race", "service_test")
FAIRFACE_COPY_FOLDER = "fair_face"

SCUT_IMAGES, SCUT_LANDMARKS, SCUT_LABELS = "Images", "facial landmark", "train_test_files/All_labels.txt"
SCUT_NUM_LANDMARKS = 86
SCUT_SUBSETS = {"AF": ("asian", "female"), "AM": ("asian", "male"),
                "CF": ("caucasian", "female"), "CM": ("caucasian", "male")}

UTKFACE_SUFFIX = ".jpg.chip.jpg"
UTKFACE_GENDERS = ("male", "female")
UTKFACE_RACES = ("white", "black", "asian", "indian", "others")
_UTKFACE_NAME = re.compile(r"^(\d+)_([01])_([0-4])_(\d+)\.jpg\.chip\.jpg$")


@dataclasses.dataclass(frozen=True)
class PublicPhoto:
    """One photo of a public set.

    name: unique within the set, no dots or slashes (``train_1``, ``AF1``, a UTKFace stem); the
      stage-1 key and person id are ``<source>/<name>``.
    path: absolute path of the image.
    labels: what the set says about the face (age, gender, race, ...); see each loader.
    problem: why some labels could not be read ("" when none); the photo is still usable.
    """

    source: str
    name: str
    path: Path
    labels: dict[str, Any]
    problem: str = ""

    @property
    def person(self) -> str:
        return f"{self.source}/{self.name}"


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


# --- FairFace -------------------------------------------------------------------------------------


def normalize_fairface_age(value: str) -> str:
    """An official FairFace age group (``0-2`` ... ``70+``) from a CSV cell, undoing the
    spreadsheet's date mangling (``03-Sep`` -> ``3-9``, ``Oct-19`` -> ``10-19``). ValueError
    for anything else."""
    text = value.strip()
    group = _FAIRFACE_AGE_ALIASES.get(text, text)
    if group not in FAIRFACE_AGE_GROUPS:
        raise ValueError(f"unknown FairFace age group {value!r} (expected one of {FAIRFACE_AGE_GROUPS})")
    return group


def fairface_image_root(root: str | Path) -> Path:
    """Where FairFace's ``train/`` and ``val/`` folders are: ``root`` itself (official layout) or
    ``root/fair_face`` (the GitHub copy)."""
    root = Path(root)
    for base in (root, root / FAIRFACE_COPY_FOLDER):
        if (base / "train").is_dir() or (base / "val").is_dir():
            return base
    raise FileNotFoundError(f"FairFace images not found: neither {root / 'train'} nor "
                            f"{root / FAIRFACE_COPY_FOLDER / 'train'} is a folder")


def load_fairface(root: str | Path) -> list[PublicPhoto]:
    """FairFace photos of both CSVs (train first), in CSV order.

    Labels: ``age_group`` (official group), ``gender`` (``male``/``female``), ``race`` (as in
    the CSV, e.g. ``East Asian``, ``Latino_Hispanic``), ``service_test`` (bool), ``subset``
    (``train`` or ``val``). Names are ``<subset>_<number>`` (``train_1``).
    """
    root = _require_dir(Path(root), "FairFace folder")
    images = fairface_image_root(root)
    photos: list[PublicPhoto] = []
    for subset, filename in FAIRFACE_CSVS.items():
        path = _require_file(root / filename, f"FairFace {subset} labels")
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or tuple(h.strip() for h in header[:len(FAIRFACE_COLUMNS)]) != FAIRFACE_COLUMNS:
                raise ValueError(f"{path}: header must start with {','.join(FAIRFACE_COLUMNS)}, got {header}")
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) < len(FAIRFACE_COLUMNS):
                    raise ValueError(f"{path}:{line}: expected {len(FAIRFACE_COLUMNS)} columns, got {row}")
                file, age, gender, race, service = (c.strip() for c in row[:len(FAIRFACE_COLUMNS)])
                rel = Path(file)
                if rel.parent.name != subset or rel.suffix.lower() != ".jpg":
                    raise ValueError(f"{path}:{line}: file {file!r} is not {subset}/<n>.jpg")
                try:
                    age_group = normalize_fairface_age(age)
                except ValueError as err:
                    raise ValueError(f"{path}:{line}: {err}") from None
                if gender.lower() not in ("male", "female"):
                    raise ValueError(f"{path}:{line}: gender {gender!r} is not Male or Female")
                labels = {"subset": subset, "age_group": age_group, "gender": gender.lower(), "race": race,
                          "service_test": service.upper() == "TRUE"}
                photos.append(PublicPhoto(FAIRFACE, _safe_name(f"{subset}_{rel.stem}"), images / rel, labels))
    _check_unique(photos, root)
    return photos


# --- SCUT-FBP5500 ---------------------------------------------------------------------------------


def read_scut_landmarks(path: str | Path) -> np.ndarray:
    """The ``[86, 2]`` float32 (x, y) landmarks of a SCUT-FBP5500 ``.pts`` file (binary: int32
    point count, then float32 x, y pairs, little-endian). ValueError naming the file when it is
    truncated, too long or holds another count; FileNotFoundError when absent."""
    path = _require_file(Path(path), "SCUT-FBP5500 landmark file")
    data = path.read_bytes()
    if len(data) < 4:
        raise ValueError(f"{path}: truncated landmark file ({len(data)} bytes, no point count)")
    count = int(np.frombuffer(data[:4], dtype="<i4")[0])
    if count != SCUT_NUM_LANDMARKS:
        raise ValueError(f"{path}: header says {count} points, SCUT-FBP5500 has {SCUT_NUM_LANDMARKS}")
    expected = 4 + 8 * count
    if len(data) != expected:
        raise ValueError(f"{path}: {len(data)} bytes, expected {expected} for {count} points "
                         f"({'truncated' if len(data) < expected else 'trailing data'})")
    points = np.frombuffer(data[4:], dtype="<f4").reshape(count, 2).astype(np.float32)
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{path}: landmarks are not finite")
    return points


def scut_landmark_path(root: str | Path, name: str) -> Path:
    return Path(root) / SCUT_LANDMARKS / f"{name}.pts"


def read_scut_labels(path: str | Path) -> dict[str, float]:
    """``All_labels.txt``: file name -> beauty score (1..5)."""
    path = _require_file(Path(path), "SCUT-FBP5500 labels")
    scores: dict[str, float] = {}
    for line, text in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not text.strip():
            continue
        parts = text.split()
        try:
            if len(parts) != 2:
                raise ValueError
            scores[parts[0]] = float(parts[1])
        except ValueError:
            raise ValueError(f"{path}:{line}: expected '<file>.jpg <score>', got {text!r}") from None
    return scores


def load_scut(root: str | Path) -> list[PublicPhoto]:
    """SCUT-FBP5500 photos sorted by subset and number (``AF1``, ``AF2``, ...).

    Labels: ``subset`` (``AF``...), ``ethnicity`` (``asian``/``caucasian``), ``gender``,
    ``beauty`` (mean rating, 1..5; None with a problem when ``All_labels.txt`` lacks the photo).
    The landmarks are read separately (:func:`read_scut_landmarks`).
    """
    root = _require_dir(Path(root), "SCUT-FBP5500 folder")
    images = _require_dir(root / SCUT_IMAGES, "SCUT-FBP5500 images folder")
    scores = read_scut_labels(root / SCUT_LABELS)
    photos = []
    for path in sorted(images.glob("*.jpg"), key=_scut_order):
        name = path.stem
        subset = name[:2]
        if subset not in SCUT_SUBSETS or not name[2:].isdigit():
            raise ValueError(f"{path}: SCUT-FBP5500 image names are AF/AM/CF/CM + number")
        ethnicity, gender = SCUT_SUBSETS[subset]
        beauty = scores.get(path.name)
        problem = "" if beauty is not None else f"no beauty score in {root / SCUT_LABELS}"
        photos.append(PublicPhoto(SCUT, name, path, {"subset": subset, "ethnicity": ethnicity,
                                                      "gender": gender, "beauty": beauty}, problem))
    return photos


def _scut_order(path: Path) -> tuple[str, int]:
    stem = path.stem
    return (stem[:2], int(stem[2:]) if stem[2:].isdigit() else -1)


# --- UTKFace --------------------------------------------------------------------------------------


def age_group(age: int) -> str:
    """FairFace's age group of an age in years (so every set can be reported per group)."""
    for group in FAIRFACE_AGE_GROUPS[:-1]:
        low, high = (int(v) for v in group.split("-"))
        if low <= age <= high:
            return group
    return FAIRFACE_AGE_GROUPS[-1]


def parse_utkface_name(filename: str) -> tuple[dict[str, Any], str]:
    """(labels, problem) from a UTKFace file name ``age_gender_race_datetime.jpg.chip.jpg``.

    Labels: ``age`` (years), ``age_group``, ``gender`` (0 male, 1 female), ``race`` (0 white,
    1 black, 2 asian, 3 indian, 4 others), ``datetime``. A malformed name gives the fields that
    are unambiguous (the age comes first; gender and race only when all four fields are there)
    and a problem saying what is wrong.
    """
    match = _UTKFACE_NAME.match(filename)
    if match:
        age, gender, race, stamp = match.groups()
        return ({"age": int(age), "age_group": age_group(int(age)), "gender": UTKFACE_GENDERS[int(gender)],
                 "race": UTKFACE_RACES[int(race)], "datetime": stamp}, "")
    stem = filename[:-len(".chip.jpg")] if filename.endswith(".chip.jpg") else Path(filename).stem
    fields = stem.removesuffix(".jpg").split("_")
    labels: dict[str, Any] = {}
    if fields[0].isdigit():
        labels.update(age=int(fields[0]), age_group=age_group(int(fields[0])))
    if len(fields) == 4 and fields[1] in ("0", "1") and fields[2] in tuple("01234"):
        labels.update(gender=UTKFACE_GENDERS[int(fields[1])], race=UTKFACE_RACES[int(fields[2])])
    missing = [k for k in ("age", "gender", "race") if k not in labels]
    detail = f"{len(fields)} fields, expected 4" if len(fields) != 4 else "not <age>_<0|1>_<0-4>_<datetime>.jpg.chip.jpg"
    return labels, (f"malformed UTKFace name {filename!r} ({detail})"
                    + (f"; unknown: {', '.join(missing)}" if missing else ""))


def load_utkface(root: str | Path) -> list[PublicPhoto]:
    """UTKFace (aligned & cropped) photos sorted by file name; names are the file name without
    ``.jpg.chip.jpg`` (dots replaced by ``-``). Photos with malformed names keep a ``problem``."""
    root = _require_dir(Path(root), "UTKFace folder")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.name.lower().endswith(".jpg"))
    if not files:
        raise FileNotFoundError(f"no UTKFace photos (*.jpg.chip.jpg) in {root}")
    photos = []
    for path in files:
        labels, problem = parse_utkface_name(path.name)
        stem = path.name[:-len(UTKFACE_SUFFIX)] if path.name.endswith(UTKFACE_SUFFIX) else path.name.removesuffix(".jpg")
        photos.append(PublicPhoto(UTKFACE, _safe_name(stem.removesuffix(".chip")), path, labels, problem))
    _check_unique(photos, root)
    return photos


# --- common ---------------------------------------------------------------------------------------


LOADERS: dict[str, Callable[[Path], list[PublicPhoto]]] = {
    FAIRFACE: load_fairface, SCUT: load_scut, UTKFACE: load_utkface}


def load(source: str, root: str | Path) -> list[PublicPhoto]:
    """The photos of one public set (``fairface``, ``scut``, ``utkface``) at ``root``."""
    if source not in LOADERS:
        raise ValueError(f"unknown public face set {source!r}: choose from {', '.join(PUBLIC_SETS)}")
    return LOADERS[source](Path(root))


def default_root(source: str, data_root: str | Path) -> Path:
    """The sample of ``source`` under ``<data_root>/extra/``."""
    return Path(data_root) / "extra" / SAMPLE_DIRS[source]


def parse_sources(items: Iterable[str], builtin: Iterable[str] = ("lfw", "london", "canada")
                  ) -> dict[str, str | None]:
    """``["lfw", "fairface=/data/ff"]`` -> ``{"lfw": None, "fairface": "/data/ff"}``.

    Built-in sources (read from the data root) take no path; a public set without one reads its
    sample under ``<data_root>/extra/``. ValueError for unknown or repeated names."""
    builtin = tuple(builtin)
    out: dict[str, str | None] = {}
    for item in items:
        name, sep, path = (s.strip() for s in str(item).partition("="))
        if name not in builtin and name not in PUBLIC_SETS:
            raise ValueError(f"unknown source {name!r}: choose from {', '.join(builtin + PUBLIC_SETS)}")
        if name in out:
            raise ValueError(f"source {name!r} given twice")
        if sep and name in builtin:
            raise ValueError(f"source {name!r} is read from the data root and takes no path (got {item!r})")
        if sep and not path:
            raise ValueError(f"source {item!r}: empty path after '='")
        out[name] = path or None
    return out


def count_check(source: str, photos: list[PublicPhoto]) -> dict[str, Any]:
    """How many photos a copy holds against the expected count: ``{"found", "expected",
    "complete", "note"}`` (per FairFace subset too)."""
    expected = EXPECTED_COUNTS[source]
    if source == FAIRFACE:
        found = {k: sum(p.labels["subset"] == k for p in photos) for k in expected}
    else:
        found = {"all": len(photos)}
    complete = found == expected
    note = "" if complete else (
        f"{source}: found {_fmt(found)} photos, expected {_fmt(expected)}"
        + (f" (the official FairFace release has {_fmt(FAIRFACE_RELEASE_COUNTS)})" if source == FAIRFACE else "")
        + ": a sample or an incomplete copy")
    return {"found": found, "expected": expected, "complete": complete, "note": note}


def _fmt(counts: Mapping[str, int]) -> str:
    return " + ".join(f"{v:,} {k}" if k != "all" else f"{v:,}" for k, v in counts.items())


def _safe_name(name: str) -> str:
    """A name usable as a file stem and key part: no dots, slashes or spaces."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


def _check_unique(photos: list[PublicPhoto], root: Path) -> None:
    seen: dict[str, Path] = {}
    for p in photos:
        if p.name in seen:
            raise ValueError(f"{root}: two photos map to the name {p.name!r}: {seen[p.name]} and {p.path}")
        seen[p.name] = p.path
