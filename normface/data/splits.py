"""Person splits: the one home of who may be trained on and who is held out.

Rules (issue 4; never mix people across splits):

- train = LFW View 1 training people (lfw_peopleDevTrain.txt) minus a seeded 5%, plus 72 seeded
  London people, plus all Canada people;
- validation = that seeded 5% of LFW training people (model selection);
- test = LFW View 1 test people (lfw_peopleDevTest.txt) plus the other London people (their
  smiling photos are the expression ground truth).

Person ids are ``<source>/<name>``: ``lfw/George_W_Bush``, ``london/001``, ``canada/003f``.
The split is written once (``splits.json``) beside the data it governs; later stages read it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from normface.utils import io_utils

SPLITS = ("train", "validation", "test")
DEFAULT_SEED = 0
VALIDATION_FRACTION = 0.05
LONDON_TRAIN_PEOPLE = 72


# Studio folders under <data>/studio: folder -> (source, smiling). London photos are named
# NNN_03 (neutral) and NNN_08 (smiling), so the person is the stem before "_"; Canada photos are
# one per person, named by the person.
LONDON_NEUTRAL = "london_neutral"
STUDIO_FOLDERS = {LONDON_NEUTRAL: ("london", False), "london_smiling": ("london", True),
                  "canada_neutral": ("canada", False)}


# London photo stems end in the set's expression number: NNN_03 neutral, NNN_08 smiling.
LONDON_EXPRESSION_SUFFIX = {"03": False, "08": True}


def is_neutral_studio_photo(photo: str | Path) -> bool:
    """Whether ``photo`` (a path, e.g. a manifest's ``studio/london_neutral/001_03.jpg``) lies in a
    neutral studio folder of :data:`STUDIO_FOLDERS`."""
    parts = Path(photo).parts
    return any(folder in parts for folder, (_, smiling) in STUDIO_FOLDERS.items() if not smiling)


def london_key_smiling(key: str) -> bool | None:
    """For a London photo key (``london/001_08``): True smiling, False neutral; None otherwise."""
    source, _, stem = key.rpartition("/")
    if not source.endswith("london"):
        return None
    return LONDON_EXPRESSION_SUFFIX.get(stem.rpartition("_")[2])


def person_id(source: str, name: str) -> str:
    return f"{source}/{name}"


@dataclasses.dataclass(frozen=True)
class StudioPhoto:
    path: Path        # the photo
    source: str       # "london" or "canada"
    name: str         # the person's name within the source ("001", "003f")
    smiling: bool

    @property
    def person(self) -> str:
        return person_id(self.source, self.name)


def studio_photos(data_root: str | Path, sources: tuple[str, ...] = ("london", "canada")) -> list[StudioPhoto]:
    """Every studio photo of ``sources``, folder by folder in :data:`STUDIO_FOLDERS` order and
    sorted by file name: the one place that reads people from studio file names."""
    out = []
    for folder, (source, smiling) in STUDIO_FOLDERS.items():
        if source not in sources:
            continue
        for path in sorted((Path(data_root) / "studio" / folder).glob("*.jpg")):
            name = path.stem.split("_")[0] if source == "london" else path.stem
            out.append(StudioPhoto(path, source, name, smiling))
    return out


def read_lfw_people(path: str | Path) -> list[str]:
    """Names from an LFW View 1 people file (first line: count; then ``name<TAB>images``)."""
    path = Path(path)
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    try:
        count = int(lines[0])
    except (IndexError, ValueError) as err:
        raise ValueError(f"{path}: first line must be the number of people") from err
    names = [ln.split("\t")[0] for ln in lines[1:]]
    if len(names) != count:
        raise ValueError(f"{path}: header says {count} people, found {len(names)}")
    return names


def studio_people(data_root: str | Path, folder: str) -> list[str]:
    """Sorted, distinct person names of one studio folder (``001``, ``003f``)."""
    source, _ = STUDIO_FOLDERS[folder]
    return sorted({p.name for p in studio_photos(data_root, (source,))
                   if p.path.parent.name == folder})


def make_splits(
    data_root: str | Path,
    seed: int = DEFAULT_SEED,
    validation_fraction: float = VALIDATION_FRACTION,
    london_train: int = LONDON_TRAIN_PEOPLE,
) -> dict[str, list[str]]:
    """Builds the person splits from the data folder; deterministic for a seed."""
    root = Path(data_root)
    rng = np.random.default_rng(seed)
    lfw_train = sorted(read_lfw_people(root / "lfw_peopleDevTrain.txt"))
    lfw_test = sorted(read_lfw_people(root / "lfw_peopleDevTest.txt"))
    n_val = int(round(validation_fraction * len(lfw_train)))
    val_idx = set(rng.permutation(len(lfw_train))[:n_val].tolist())
    london = studio_people(root, LONDON_NEUTRAL)
    if london_train > len(london):
        raise ValueError(f"london_train={london_train} but only {len(london)} London people")
    london_perm = rng.permutation(len(london))
    london_tr = {london[i] for i in london_perm[:london_train]}
    canada = studio_people(root, "canada_neutral")
    splits = {
        "train": [person_id("lfw", n) for i, n in enumerate(lfw_train) if i not in val_idx]
        + [person_id("london", n) for n in london if n in london_tr]
        + [person_id("canada", n) for n in canada],
        "validation": [person_id("lfw", n) for i, n in enumerate(lfw_train) if i in val_idx],
        "test": [person_id("lfw", n) for n in lfw_test]
        + [person_id("london", n) for n in london if n not in london_tr],
    }
    check_disjoint(splits)
    return {k: sorted(v) for k, v in splits.items()}


def check_disjoint(splits: dict[str, list[str]]) -> None:
    """Raises ValueError if any person is in two splits."""
    seen: dict[str, str] = {}
    for split, people in splits.items():
        for p in people:
            if p in seen and seen[p] != split:
                raise ValueError(f"person {p} is in both {seen[p]} and {split}")
            seen[p] = split


def write_splits(path: str | Path, splits: dict[str, list[str]], seed: int) -> None:
    check_disjoint(splits)
    data = {"seed": seed, **{k: sorted(splits[k]) for k in SPLITS}}
    io_utils.write_bytes_atomic(path, json.dumps(data, indent=1).encode())


def read_splits(path: str | Path) -> dict[str, list[str]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path} (written by data_prep/align_faces.py)")
    data = json.loads(path.read_text())
    missing = [k for k in SPLITS if k not in data]
    if missing:
        raise ValueError(f"{path}: missing splits {missing}")
    splits = {k: list(data[k]) for k in SPLITS}
    check_disjoint(splits)
    return splits


def split_of(splits: dict[str, list[str]]) -> dict[str, str]:
    """person id -> split name."""
    return {p: s for s, people in splits.items() for p in people}
