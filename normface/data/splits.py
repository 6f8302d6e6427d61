"""Person splits: the one home of who may be trained on and who is held out.

Rules (issue 4; never mix people across splits):

- train = LFW View 1 training people (lfw_peopleDevTrain.txt) minus the validation people, plus
  72 seeded London people, plus all Canada people, plus every photo of the public face sets
  (FairFace train, SCUT-FBP5500, UTKFace; each photo is its own person) except FairFace's val
  photos;
- validation = seeded LFW training people: 150 with 2+ photos and 100 with one (issue 15: >= 200
  people, >= 100 of them with 2+ photos, so a cross-photo score can pick checkpoints);
- test = LFW View 1 test people (lfw_peopleDevTest.txt) plus the other London people (their
  smiling photos are the expression ground truth), plus FairFace's val photos (held out for the
  per-group limitations report).

Person ids are ``<source>/<name>``: ``lfw/George_W_Bush``, ``london/001``, ``canada/003f``,
``fairface/train_1``, ``scut/AF1``, ``utkface/<stem>``.
The split is written once (``splits.json``) beside the data it governs; later stages read it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Iterable

import numpy as np

from normface.utils import io_utils

SPLITS = ("train", "validation", "test")
DEFAULT_SEED = 0
# Validation: seeded LFW View 1 training people, by their photo count in lfw_peopleDevTrain.txt.
VALIDATION_MULTI_PHOTO_PEOPLE = 150
VALIDATION_SINGLE_PHOTO_PEOPLE = 100
LONDON_TRAIN_PEOPLE = 72
# Public-set photos (person ids ``<set>/<name>``) held out as test; all others train.
HELD_OUT_PREFIXES = ("fairface/val_",)


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
    return list(read_lfw_people_counts(path))


def read_lfw_people_counts(path: str | Path) -> dict[str, int]:
    """Name -> number of images, in file order, from an LFW View 1 people file."""
    path = Path(path)
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    try:
        count = int(lines[0])
    except (IndexError, ValueError) as err:
        raise ValueError(f"{path}: first line must be the number of people") from err
    people: dict[str, int] = {}
    for ln in lines[1:]:
        name, _, images = ln.partition("\t")
        try:
            people[name] = int(images)
        except ValueError:
            raise ValueError(f"{path}: expected 'name<TAB>images', got {ln!r}") from None
    if len(people) != count:
        raise ValueError(f"{path}: header says {count} people, found {len(people)}")
    return people


def studio_people(data_root: str | Path, folder: str) -> list[str]:
    """Sorted, distinct person names of one studio folder (``001``, ``003f``)."""
    source, _ = STUDIO_FOLDERS[folder]
    return sorted({p.name for p in studio_photos(data_root, (source,))
                   if p.path.parent.name == folder})


def make_splits(
    data_root: str | Path,
    seed: int = DEFAULT_SEED,
    validation_multi: int = VALIDATION_MULTI_PHOTO_PEOPLE,
    validation_single: int = VALIDATION_SINGLE_PHOTO_PEOPLE,
    london_train: int = LONDON_TRAIN_PEOPLE,
    extra_people: Iterable[str] = (),
) -> dict[str, list[str]]:
    """Builds the person splits from the data folder; deterministic for a seed.

    ``extra_people``: person ids of the public face sets (one per photo), placed by
    :func:`extra_split`. The London draw is the same as before issue 15 (the expression filter
    was fitted on those London training people).
    """
    root = Path(data_root)
    rng = np.random.default_rng(seed)
    counts = read_lfw_people_counts(root / "lfw_peopleDevTrain.txt")
    lfw_train = sorted(counts)
    lfw_test = sorted(read_lfw_people(root / "lfw_peopleDevTest.txt"))
    order = rng.permutation(len(lfw_train))
    multi = [lfw_train[i] for i in order if counts[lfw_train[i]] >= 2][:validation_multi]
    single = [lfw_train[i] for i in order if counts[lfw_train[i]] == 1][:validation_single]
    if len(multi) < validation_multi or len(single) < validation_single:
        raise ValueError(f"validation needs {validation_multi} LFW training people with 2+ photos and "
                         f"{validation_single} with one; the list has {len(multi)} and {len(single)}")
    val_names = set(multi) | set(single)
    london = studio_people(root, LONDON_NEUTRAL)
    if london_train > len(london):
        raise ValueError(f"london_train={london_train} but only {len(london)} London people")
    london_perm = rng.permutation(len(london))
    london_tr = {london[i] for i in london_perm[:london_train]}
    canada = studio_people(root, "canada_neutral")
    extra = sorted(set(extra_people))
    splits = {
        "train": [person_id("lfw", n) for n in lfw_train if n not in val_names]
        + [person_id("london", n) for n in london if n in london_tr]
        + [person_id("canada", n) for n in canada]
        + [p for p in extra if extra_split(p) == "train"],
        "validation": [person_id("lfw", n) for n in lfw_train if n in val_names],
        "test": [person_id("lfw", n) for n in lfw_test]
        + [person_id("london", n) for n in london if n not in london_tr]
        + [p for p in extra if extra_split(p) == "test"],
    }
    check_disjoint(splits)
    return {k: sorted(v) for k, v in splits.items()}


def extra_split(person: str) -> str:
    """The split of a public-set person id: ``test`` for FairFace's val photos, else ``train``."""
    if person.split("/")[0] in ("lfw", "london", "canada"):
        raise ValueError(f"{person}: not a public-set person (those are split by make_splits' own rules)")
    return "test" if person.startswith(HELD_OUT_PREFIXES) else "train"


def split_rules(seed: int, validation_multi: int = VALIDATION_MULTI_PHOTO_PEOPLE,
                validation_single: int = VALIDATION_SINGLE_PHOTO_PEOPLE,
                london_train: int = LONDON_TRAIN_PEOPLE) -> dict:
    """What :func:`make_splits` did, for ``splits.json``."""
    return {"seed": seed, "validation": {"lfw_train_people_2plus_photos": validation_multi,
                                         "lfw_train_people_1_photo": validation_single},
            "london_train_people": london_train, "held_out_public_prefixes": list(HELD_OUT_PREFIXES),
            "public_sets": "each photo is its own person; train unless held out"}


def check_disjoint(splits: dict[str, list[str]]) -> None:
    """Raises ValueError if any person is in two splits."""
    seen: dict[str, str] = {}
    for split, people in splits.items():
        for p in people:
            if p in seen and seen[p] != split:
                raise ValueError(f"person {p} is in both {seen[p]} and {split}")
            seen[p] = split


def write_splits(path: str | Path, splits: dict[str, list[str]], seed: int, rules: dict | None = None) -> None:
    """Writes ``splits.json``: the seed, the rules (:func:`split_rules`), counts and the people."""
    check_disjoint(splits)
    counts = {k: len(splits[k]) for k in SPLITS}
    data = {"seed": seed, "rules": rules or {}, "counts": counts, **{k: sorted(splits[k]) for k in SPLITS}}
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
