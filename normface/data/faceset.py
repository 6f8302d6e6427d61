"""The on-disk set of aligned (or per-person averaged) faces: data_prep writes it, records read it.

Layout under a face-set root (e.g. ``workspace/faces128/averaged``)::

    template.json            the AlignmentTemplate every image here was made with
    <split>/<source>/<name>.png     the aligned RGB face, template.size square
    <split>/<source>/<name>.json    its FaceEntry (68 landmarks in (x, y) pixels of the PNG, ...)

One JSON per face (written after its PNG, both atomically) makes parallel, resumable writing
trivial: a face exists once its JSON does.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from normface.utils import io_utils
from normface.faces.alignment import NUM_LANDMARKS, AlignmentTemplate

TEMPLATE_FILE = "template.json"
# Stages under one faces root (e.g. workspace/faces128): stage 1 writes aligned/, stage 2 averaged/.
ALIGNED = "aligned"
AVERAGED = "averaged"


def aligned_dir(faces_root: str | Path) -> Path:
    """``<faces_root>/aligned``: stage 1's face set (one aligned face per photo)."""
    return Path(faces_root) / ALIGNED


def averaged_dir(faces_root: str | Path) -> Path:
    """``<faces_root>/averaged``: stage 2's face set (one averaged face per person)."""
    return Path(faces_root) / AVERAGED


@dataclasses.dataclass
class FaceEntry:
    """One aligned face: who, which split, its landmarks and where it came from."""

    person: str                 # "<source>/<name>", see normface.data.splits
    split: str                  # train | validation | test
    landmarks: list[list[float]]  # [68][2] (x, y) pixels in the aligned image
    photos: list[str]           # source photo paths (relative to the data root)
    key: str = ""               # file stem under <split>/; defaults to the person id

    def __post_init__(self):
        if not self.key:
            self.key = self.person
        arr = np.asarray(self.landmarks, dtype=np.float64)
        if arr.shape != (NUM_LANDMARKS, 2) or not np.all(np.isfinite(arr)):
            raise ValueError(f"{self.key}: landmarks must be 68 finite (x, y) points, got shape {arr.shape}")

    @property
    def landmarks_array(self) -> np.ndarray:
        return np.asarray(self.landmarks, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def write_template(root: str | Path, template: AlignmentTemplate) -> None:
    """Writes ``template.json``; refuses to mix templates in one face set."""
    path = Path(root) / TEMPLATE_FILE
    if path.is_file():
        existing = read_template(root)
        if existing != template:
            raise ValueError(f"{path} holds {existing}, not {template}: use another output folder")
        return
    io_utils.write_bytes_atomic(path, template.to_json().encode())


def read_template(root: str | Path) -> AlignmentTemplate:
    path = Path(root) / TEMPLATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {TEMPLATE_FILE} in {root}: not a face set written by data_prep")
    return AlignmentTemplate.from_dict(json.loads(path.read_text()))


def face_paths(root: str | Path, entry: FaceEntry) -> tuple[Path, Path]:
    """(png, json) paths of a face."""
    base = Path(root) / entry.split / entry.key
    return base.with_suffix(".png"), base.with_suffix(".json")


def write_face(root: str | Path, entry: FaceEntry, image: np.ndarray) -> None:
    """Writes the face's PNG then its JSON, each atomically."""
    png, meta = face_paths(root, entry)
    io_utils.save_image_atomic(png, image)
    io_utils.write_bytes_atomic(meta, json.dumps(entry.to_dict()).encode())


def has_face(root: str | Path, split: str, key: str) -> bool:
    return (Path(root) / split / key).with_suffix(".json").is_file()


def read_entry(root: str | Path, split: str, key: str) -> FaceEntry:
    """The FaceEntry stored for ``key`` in ``split`` (FileNotFoundError naming the file)."""
    meta = (Path(root) / split / key).with_suffix(".json")
    if not meta.is_file():
        raise FileNotFoundError(f"no face entry {meta}")
    try:
        return FaceEntry(**json.loads(meta.read_text()))
    except (ValueError, TypeError) as err:
        raise ValueError(f"{meta}: not a valid face entry ({err})") from err


def iter_faces(root: str | Path, split: str | None = None) -> Iterator[FaceEntry]:
    """FaceEntries under ``root`` (one split or all), in sorted key order."""
    root = Path(root)
    splits = [split] if split else ["train", "validation", "test"]
    for s in splits:
        for meta in sorted((root / s).rglob("*.json")):
            try:
                data = json.loads(meta.read_text())
                yield FaceEntry(**data)
            except (ValueError, TypeError) as err:
                raise ValueError(f"{meta}: not a valid face entry ({err})") from err


def load_face_image(root: str | Path, entry: FaceEntry) -> np.ndarray:
    """The face's ``[size, size, 3]`` uint8 RGB image."""
    return io_utils.read_rgb(face_paths(root, entry)[0])
