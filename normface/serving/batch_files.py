"""Batch normalization of files, folders and globs: what ``normface normalize`` runs.

Inputs are expanded (folders recursively, globs), read one by one (bad files are reported and
skipped, never fatal), and their faces are batched through :class:`normface.serving.normalizer.FaceNormalizer`.
Outputs are named ``<output>/<input path relative to its root>_face<k>.<fmt>``, written atomically,
and never over an input file. Each problem is one line on stderr and, with a report path, one JSON
line in the report.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import sys
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from normface.utils import io_utils

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm"}
FORMATS = ("png", "jpg")
SHEET_MAX = 32  # pairs on a contact sheet


@dataclasses.dataclass
class InputFile:
    path: Path
    rel: Path  # path relative to the root it was found under (names the outputs)


def discover(inputs: Iterable[str], exclude: Path | None = None) -> tuple[list[InputFile], list[str]]:
    """Expands files, folders (recursively, image suffixes only) and globs, in sorted order.

    Files found in folders or globs under ``exclude`` (the output folder) are skipped, so a rerun
    does not normalize its own outputs; files named explicitly are always taken. Each file's ``rel`` (which names its outputs) is unique: colliding names from
    different folders get ``_2``, ``_3``... Returns (files, problems) where problems name
    inputs that matched nothing.
    """
    files: list[InputFile] = []
    problems: list[str] = []
    seen: set[Path] = set()
    used: set[str] = set()
    skip = exclude.resolve() if exclude is not None else None

    def add(path: Path, root: Path, explicit: bool = False):
        real = path.resolve()
        if real in seen or (not explicit and skip is not None and skip in real.parents):
            return
        seen.add(real)
        rel = path.relative_to(root) if root != path else Path(path.name)
        stem, n = rel.with_suffix(""), 1
        while str(rel.with_suffix("")).lower() in used:
            n += 1
            rel = stem.parent / f"{stem.name}_{n}{rel.suffix}"
        used.add(str(rel.with_suffix("")).lower())
        files.append(InputFile(path, rel))

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
                add(f, path)
        elif path.is_file():
            add(path, path, explicit=True)
        else:
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                problems.append(f"{item}: no such file, folder or matching glob")
            for m in matches:
                if Path(m).is_file():
                    add(Path(m), Path(m))
    return files, problems


def output_path(out_dir: Path, item: InputFile, face_index: int, fmt: str, suffix: str = "") -> Path:
    """``<out_dir>/<rel without suffix>_face<k><suffix>.<fmt>``."""
    stem = item.rel.with_suffix("")
    return out_dir / stem.parent / f"{stem.name}_face{face_index}{suffix}.{fmt}"


def read_photo(path: Path) -> np.ndarray:
    """Reads a photo (``io_utils.read_rgb``: converts modes, refuses absurd sizes)."""
    return io_utils.read_rgb(path)


@dataclasses.dataclass
class BatchOptions:
    output: Path
    fmt: str = "png"
    batch_size: int = 8
    side_by_side: bool = False
    write_json: bool = False
    all_faces: bool = False
    keep_pairs: bool = False  # keep (aligned input, output) pairs for a contact sheet


@dataclasses.dataclass
class BatchSummary:
    files: int = 0
    processed: int = 0
    faces: int = 0
    problems: int = 0
    outputs: list = dataclasses.field(default_factory=list)
    pairs: list = dataclasses.field(default_factory=list)


def run_batch(normalizer, files: list[InputFile], options: BatchOptions,
              report: Callable[[dict], None] | None = None, progress: Callable[[int, int], None] | None = None
              ) -> BatchSummary:
    """Normalizes ``files`` with ``normalizer``; reports problems; returns counts."""
    if options.fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {options.fmt!r}")
    inputs = {f.path.resolve() for f in files}
    summary = BatchSummary(files=len(files))

    def problem(path, reason):
        summary.problems += 1
        print(f"normface: {path}: {reason}", file=sys.stderr)
        if report:
            report({"input": str(path), "status": "error", "reason": reason})

    pending: list[tuple[InputFile, np.ndarray]] = []

    def flush():
        if not pending:
            return
        errors: dict[int, str] = {}
        try:
            results = normalizer.normalize_many([img for _, img in pending], all_faces=options.all_faces,
                                                batch_size=options.batch_size, errors=errors)
        except Exception as err:  # a failure of the networks themselves: record every file of the batch
            for item, _ in pending:
                problem(item.path, f"normalization failed: {err!r}")
            pending.clear()
            return
        for j, ((item, _), faces) in enumerate(zip(pending, results)):
            if j in errors:
                problem(item.path, errors[j])
                continue
            if not faces:
                problem(item.path, "no face found")
                continue
            summary.processed += 1
            for res in faces:
                try:
                    written = write_result(item, res, options, inputs)
                except (ValueError, OSError) as err:
                    problem(item.path, str(err))
                    continue
                summary.faces += 1
                summary.outputs.extend(written)
                if options.keep_pairs and len(summary.pairs) < SHEET_MAX:
                    summary.pairs.append((item.rel.stem, res.aligned_input, res.image))
                if report:
                    report({"input": str(item.path), "status": "ok", "outputs": [str(p) for p in written],
                            **res.to_json()})
        pending.clear()

    for n, item in enumerate(files, 1):
        try:
            pending.append((item, read_photo(item.path)))
        except (ValueError, OSError) as err:
            problem(item.path, str(err).replace(f"{item.path}: ", ""))
        if len(pending) >= options.batch_size:
            flush()
        if progress:
            progress(n, len(files))
    flush()
    return summary


def write_result(item: InputFile, res, options: BatchOptions, inputs: set[Path]) -> list[Path]:
    """Writes one face's outputs; refuses any path that is an input file."""
    paths = []
    main = output_path(options.output, item, res.face_index, options.fmt)
    image = np.concatenate([res.aligned_input, res.image], axis=1) if options.side_by_side else res.image
    for path, data in [(main, image)]:
        if path.resolve() in inputs:
            raise ValueError(f"{path}: output would overwrite an input file; choose another --output")
        io_utils.save_image_atomic(path, data)
        paths.append(path)
    if options.write_json:
        jpath = output_path(options.output, item, res.face_index, "json")
        if jpath.resolve() in inputs:
            raise ValueError(f"{jpath}: output would overwrite an input file; choose another --output")
        io_utils.write_bytes_atomic(jpath, json.dumps({"input": str(item.path), **res.to_json()}, indent=1).encode())
        paths.append(jpath)
    return paths


def progress_bar(done: int, total: int, stream=None) -> None:
    """A one-line progress bar on stderr (only when it is a terminal or for long runs)."""
    stream = stream or sys.stderr
    if total < 2 or not (stream.isatty() or total >= 50):
        return
    width = 30
    filled = int(width * done / total)
    end = "\n" if done == total else ""
    stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}{end}")
    stream.flush()


def write_sheet(path: Path, pairs: list) -> Path:
    """A contact sheet of (name, aligned input, output) pairs: two pairs per row."""
    from normface.utils import pictures

    tiles, labels = [], []
    for name, aligned, output in pairs:
        tiles += [aligned, output]
        labels += [name, "normalized"]
    io_utils.save_image_atomic(path, pictures.image_grid(tiles, cols=4, labels=labels))
    return path
