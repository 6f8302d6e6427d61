"""Batch normalization of files, folders and globs: what ``normface normalize`` runs.

Inputs are expanded (folders recursively, following symbolic links; globs), read one by one (bad
files are reported and skipped, never fatal), and their faces are batched through
:class:`normface.serving.normalizer.FaceNormalizer`. Outputs are named ``<output>/<input path
relative to its root>_face<k>.<fmt>``, written atomically, and never over an input file. Each
problem is one line on stderr naming the file and the reason and, with a report, the input's
line in the report (one JSON line per input per run: ``ok``, ``error`` or ``skipped``). An
output that cannot be written is that input's failure (``BatchSummary.write_failures``).
With a run manifest (:mod:`normface.serving.run_manifest`) inputs whose outputs are complete
are skipped.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import errno
import glob
import json
import os
import queue
import stat
import sys
import threading
import traceback
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from normface.utils import io_utils

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm"}
FORMATS = ("png", "jpg")
SHEET_MAX = 32  # pairs on a contact sheet
SHEET_FILE = "sheet.png"


@dataclasses.dataclass
class InputFile:
    path: Path
    rel: Path  # path relative to the root it was found under (names the outputs)


@dataclasses.dataclass(frozen=True)
class Problem:
    """An input argument or file that gave nothing to normalize, and why."""

    input: str
    reason: str

    def __str__(self) -> str:
        return one_line(f"{self.input}: {self.reason}")


def one_line(text: str) -> str:
    """``text`` with its control characters (a newline or an escape sequence in a file name) written
    as Python writes them (``\\n``, ``\\x1b``), so a message naming a file stays one line."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))


def _link_problem(path: Path) -> str | None:
    """Why ``path`` (which exists as a name) is not a readable regular file, or None if it is one."""
    try:
        st = os.stat(path)
    except OSError as err:
        if path.is_symlink():
            if err.errno == errno.ELOOP:
                return "symbolic link loop"
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            return f"broken symbolic link (to {target})"
        return io_utils.os_error_text(err)
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return None


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def output_overlap(inputs: Iterable[str], output: Path) -> str | None:
    """Why ``output`` cannot be the output folder of these inputs: it is one of the input folders
    (the outputs would mix with the photos), or None. An output folder inside an input folder is
    fine (its files are skipped), as is one above it (outputs keep their names relative to the
    input folder, so they do not land in it)."""
    out = output.resolve()
    for item in inputs:
        path = Path(item)
        base = path if path.is_dir() else (_glob_base(item) if glob.has_magic(item) else None)
        if base is not None and base.is_dir() and base.resolve() == out:
            return (f"the output folder {output} is the input folder {item}: its outputs would mix with the "
                    f"photos; choose another folder (a subfolder such as {Path(item) / 'normalized'} works)")
    return None


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard."""
    parts = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def discover(inputs: Iterable[str], exclude: Path | None = None, skip: set[Path] | None = None
             ) -> tuple[list[InputFile], list[Problem]]:
    """Expands files, folders (recursively, image suffixes only, following symbolic links) and
    globs, in sorted order.

    Files in folders or globs under ``exclude`` (the output folder) are skipped when it lies inside
    them, so a rerun does not normalize its own outputs; files named explicitly are taken, except
    those in ``skip`` (outputs the run manifest recorded). Each file's ``rel`` (which names its
    outputs) is unique: colliding names from different folders get ``_2``, ``_3``... Returns
    (files, problems); problems name inputs that matched nothing, broken or looping symbolic
    links, things that are not regular files and folders without images.
    """
    files: list[InputFile] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    used: set[str] = set()
    out = exclude.resolve() if exclude is not None else None
    skip = skip or set()

    def add(path: Path, root: Path, under: Path | None = None):
        real = path.resolve()
        if real in seen or real in skip:
            return
        if out is not None and under is not None and out != under and _inside(out, under) and _inside(real, out):
            return  # the output folder sits inside the folder searched: its files are outputs
        seen.add(real)
        rel = path.relative_to(root) if root != path else Path(path.name)
        stem, n = rel.with_suffix(""), 1
        while str(rel.with_suffix("")).lower() in used:
            n += 1
            rel = stem.parent / f"{stem.name}_{n}{rel.suffix}"
        used.add(str(rel.with_suffix("")).lower())
        files.append(InputFile(path, rel))

    def add_named(path: Path, shown: str, root: Path, under: Path | None = None):
        problem = _link_problem(path)
        if problem:
            problems.append(Problem(shown, problem))
        else:
            add(path, root, under)

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            before = (len(files), len(problems))
            real_root = path.resolve()
            visited: set[tuple[int, int]] = set()
            for dirpath, dirnames, names in os.walk(path, followlinks=True):
                st = os.stat(dirpath)
                if (st.st_dev, st.st_ino) in visited:
                    dirnames[:] = []  # a symbolic link back up the tree: each folder once
                    continue
                visited.add((st.st_dev, st.st_ino))
                dirnames.sort()
                for name in sorted(names):
                    f = Path(dirpath) / name
                    if f.suffix.lower() in IMAGE_SUFFIXES:
                        add_named(f, str(f), path, real_root)
            if (len(files), len(problems)) == before:
                problems.append(Problem(item, "no images in this folder (suffixes "
                                              f"{', '.join(sorted(IMAGE_SUFFIXES))})"))
        elif os.path.lexists(path):
            add_named(path, item, path)
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            base = _glob_base(item).resolve()
            if not matches:
                problems.append(Problem(item, "no file matches this pattern"))
            for m in matches:
                if not Path(m).is_dir():
                    add_named(Path(m), m, Path(m), base)
        else:
            problems.append(Problem(item, "no such file or folder"))
    return files, problems


def output_path(out_dir: Path, item: InputFile, face_index: int, fmt: str, suffix: str = "") -> Path:
    """``<out_dir>/<rel without suffix>_face<k><suffix>.<fmt>``."""
    stem = item.rel.with_suffix("")
    return out_dir / stem.parent / f"{stem.name}_face{face_index}{suffix}.{fmt}"


def read_photo(path: Path) -> np.ndarray:
    """Reads a photo upright and in sRGB (``io_utils.read_rgb``: EXIF orientation, ICC profile,
    modes converted, absurd sizes refused)."""
    return io_utils.read_rgb(path)


def error_text(err: BaseException) -> str:
    """One line for a per-file error (an OSError as its reason and file)."""
    if isinstance(err, OSError):
        return io_utils.os_error_text(err)
    return str(err)


class OutputWriteError(OSError):
    """An output file could not be written (the message names it and why)."""


@dataclasses.dataclass
class BatchOptions:
    output: Path
    fmt: str = "png"
    batch_size: int = 8
    side_by_side: bool = False
    write_json: bool = False
    all_faces: bool = False
    keep_pairs: bool = False  # keep (aligned input, output) pairs for a contact sheet
    debug: bool = False  # print the traceback of each per-file error
    network_workers: int | None = None  # batches in the networks at once (None: network_workers(normalizer))

    def output_options(self) -> dict:
        """The options that change what is written (part of the run manifest's key)."""
        return {"fmt": self.fmt, "side_by_side": self.side_by_side, "json": self.write_json,
                "all_faces": self.all_faces}


@dataclasses.dataclass
class BatchSummary:
    files: int = 0
    processed: int = 0
    faces: int = 0
    problems: int = 0
    write_failures: int = 0  # inputs (or extra files) whose outputs could not be written
    outputs: list = dataclasses.field(default_factory=list)
    pairs: list = dataclasses.field(default_factory=list)
    pair_inputs: list = dataclasses.field(default_factory=list)  # the input path of each of ``pairs``


def _face_fields(faces) -> dict:
    """The report fields of an input's faces: the first face's, flat, plus every face's with several."""
    fields = dict(faces[0].to_json())
    if len(faces) > 1:
        fields["faces"] = [res.to_json() for res in faces]
    return fields


# How far a stage of :func:`run_batch` may run ahead of the next, in network batches: enough to
# keep both cores busy across uneven photos, little enough to bound the faces held in memory.
QUEUE_BATCHES = 2


def network_workers(normalizer) -> int:
    """Batches :func:`run_batch` runs through the networks at once: two on LiteRT (each call takes
    its own interpreter set, one thread each, so the networks use the core that detection and
    writing leave idle), one on TensorFlow (its ops already use every core)."""
    return 2 if getattr(normalizer, "backend", None) is not None and (os.cpu_count() or 1) > 1 else 1


@dataclasses.dataclass
class _Outcome:
    """One input on its way through :func:`run_batch`'s stages: its aligned faces (detection),
    then their results (the networks), or the reason it failed."""

    item: InputFile
    faces: list | None = None  # FaceNormalizer.align's (aligned, landmarks, detection) tuples
    results: list | None = None  # Result per face
    reason: str | None = None
    error: BaseException | None = None


class _Failed:
    """A stage died of an unexpected exception (a bug): handed down so the caller's thread raises it."""

    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()  # the end of a stage's stream


def _poll(wait: Callable, timeout_error: type[Exception]):
    """``wait(timeout=...)`` again and again until it answers: the caller's thread wakes every 0.1 s,
    so Ctrl-C or SIGTERM (which Linux may hand to any thread; Python runs the handler in the main
    thread when it next runs) stops the run at once rather than when the batch it waits for ends."""
    while True:
        try:
            return wait(timeout=0.1)
        except timeout_error:
            continue


class _Pipeline:
    """The stages of :func:`run_batch`: reading + detection + landmarks + alignment in one thread,
    the networks in a pool of :func:`network_workers` threads (a dispatcher thread forms the
    batches), then writing in the caller's thread, joined by bounded FIFO queues. Batches are
    formed in input order and their results taken in the order they were formed, so outcomes
    reach the caller in input order whatever the timing. dlib, OpenCV, LiteRT, TensorFlow, NumPy
    and Pillow's encoders release the GIL, so the stages run on both cores at once."""

    def __init__(self, normalizer, files: list[InputFile], options: "BatchOptions",
                 read: Callable[[InputFile], np.ndarray] | None):
        self.normalizer, self.files, self.options, self.read = normalizer, files, options, read
        workers = options.network_workers or network_workers(normalizer)
        self.aligned: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES * options.batch_size)
        self.batches: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES + workers)  # futures, in batch order
        self.stop = threading.Event()
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="normface-batch_networks")
        self.threads = [threading.Thread(target=self._guarded, args=(stage, out), name=f"normface-batch{stage.__name__}",
                                         daemon=True)
                        for stage, out in ((self._prepare, self.aligned), (self._dispatch, self.batches))]

    def __enter__(self) -> "_Pipeline":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        # Also on Ctrl-C or SIGTERM in the caller's thread: the stages stop after the photo or
        # batch in hand (they write nothing), batches not started are dropped, and no thread
        # outlives the run.
        self.stop.set()
        for thread in self.threads:
            thread.join()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def outcomes(self):
        """The inputs' outcomes, in input order (raises a stage's unexpected exception)."""
        while True:
            batch = _poll(self.batches.get, queue.Empty)
            if batch is _DONE:
                return
            if isinstance(batch, _Failed):
                raise batch.error
            yield from _poll(batch.result, concurrent.futures.TimeoutError)

    # -- the stages' threads ------------------------------------------------------------------

    def _put(self, q: queue.Queue, value) -> bool:
        while not self.stop.is_set():
            try:
                q.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue):
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return _DONE

    def _guarded(self, stage, out: queue.Queue) -> None:
        try:
            stage()
        except BaseException as err:  # noqa: BLE001 -- a bug: the caller's thread raises it
            self._put(out, _Failed(err))
            return
        self._put(out, _DONE)

    def _prepare(self) -> None:
        """Reads each photo and finds, marks and aligns its faces."""
        for item in self.files:
            if self.stop.is_set():
                return
            outcome = _Outcome(item)
            try:
                image = self.read(item) if self.read is not None else read_photo(item.path)
            except (ValueError, OSError) as err:
                outcome.reason, outcome.error = error_text(err).replace(f"{item.path}: ", ""), err
            else:
                try:
                    outcome.faces = self.normalizer.align(image, self.options.all_faces)
                except ValueError as err:  # an unusable image, degenerate landmarks
                    outcome.reason, outcome.error = str(err), err
                except Exception as err:  # noqa: BLE001 -- recorded for this file, the run goes on
                    outcome.reason, outcome.error = f"normalization failed: {err!r}", err
            if not self._put(self.aligned, outcome):
                return

    def _dispatch(self) -> None:
        """Groups the inputs, in order, into batches of ``batch_size`` faces (or more: an input's
        faces stay together) and hands each to the networks' pool."""
        group, count = [], 0
        while True:
            outcome = self._get(self.aligned)
            if outcome is _DONE or isinstance(outcome, _Failed):
                if group and not self.stop.is_set():
                    self._put(self.batches, self.pool.submit(self._run, group))
                if isinstance(outcome, _Failed):
                    raise outcome.error
                return
            group.append(outcome)
            count += len(outcome.faces or ())
            if count >= self.options.batch_size:
                if not self._put(self.batches, self.pool.submit(self._run, group)):
                    return
                group, count = [], 0

    def _run(self, group: list[_Outcome]) -> list[_Outcome]:
        """The networks on a group's faces, ``batch_size`` at a time (a pool thread)."""
        faces = [(o, k, face) for o in group if o.faces for k, face in enumerate(o.faces)]
        for o in group:
            if o.faces is not None:
                o.results = []
        bs = self.options.batch_size
        try:
            for start in range(0, len(faces), bs):
                chunk = faces[start:start + bs]
                out = self.normalizer.normalize_aligned(np.stack([c[2][0] for c in chunk]),
                                                        np.stack([c[2][1] for c in chunk]))
                for (o, _, _), res in zip(chunk, self.normalizer.to_results([c[2] for c in chunk], out,
                                                                            [c[1] for c in chunk])):
                    o.results.append(res)
        except Exception as err:  # noqa: BLE001 -- a failure of the networks themselves: every file of the batch
            for o in group:
                if o.faces:
                    o.results, o.reason, o.error = None, f"normalization failed: {err!r}", err
        for o in group:
            o.faces = None  # the aligned photos are in the results; free the rest
        return group


def run_batch(normalizer, files: list[InputFile], options: BatchOptions,
              report: Callable[[dict], None] | None = None, progress: Callable[[int, int], None] | None = None,
              on_done: Callable[[InputFile, list[Path]], None] | None = None,
              read: Callable[[InputFile], np.ndarray] | None = None) -> BatchSummary:
    """Normalizes ``files`` with ``normalizer``; reports problems; returns counts.

    The stages overlap (:class:`_Pipeline`): reading, detection and alignment in one thread, the
    networks (``batch_size`` faces at a time, :func:`network_workers` batches at once) in a pool,
    and writing, ``report``, ``on_done`` and ``progress`` in the caller's thread, each input in
    input order whatever the timing, so the outputs, the report and the run manifest are those
    of a run done one stage after another. ``report`` gets one dict per input; ``on_done(item, outputs)`` is called once all of an
    input's outputs are written (the run manifest records it there; an OSError it raises is
    counted as a write failure); ``progress(done, total)`` after each input. ``read(item)``: the
    photo's pixels (default :func:`read_photo` of its local path; the Beam pipeline reads through
    Beam's filesystems). A problem with one input (unreadable, no face, a failed write) is
    reported and the run goes on; Ctrl-C or SIGTERM stops every stage after the file in hand. The
    one home of a batch's work: ``normface normalize`` and ``normface.pipelines.normalize`` both
    call it."""
    if options.fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {options.fmt!r}")
    inputs = {f.path.resolve() for f in files}
    summary = BatchSummary(files=len(files))

    def problem(path, reason, err: BaseException | None = None, write: bool = False):
        summary.problems += 1
        summary.write_failures += write
        print(one_line(f"normface: {path}: {reason}"), file=sys.stderr)
        if options.debug and err is not None:
            traceback.print_exception(err)
        if report:
            report({"input": str(path), "status": "error", "reason": reason})

    def finish(outcome: _Outcome):
        item, faces = outcome.item, outcome.results
        if outcome.reason is not None:
            problem(item.path, outcome.reason, outcome.error)
            return
        if not faces:
            problem(item.path, "no face found")
            return
        written: list[Path] = []
        try:
            for res in faces:
                written += write_result(item, res, options, inputs)
            if on_done:
                on_done(item, written)
        except OutputWriteError as err:
            problem(item.path, str(err), err, write=True)
            return
        except ValueError as err:
            problem(item.path, str(err), err)
            return
        summary.processed += 1
        summary.faces += len(faces)
        summary.outputs.extend(written)
        for res in faces:
            if options.keep_pairs and len(summary.pairs) < SHEET_MAX:
                summary.pairs.append((item.rel.stem, res.aligned_input, res.image))
                summary.pair_inputs.append(item.path)
        if report:
            report({"input": str(item.path), "status": "ok", "outputs": [str(p) for p in written],
                    **_face_fields(faces)})

    with _Pipeline(normalizer, files, options, read) as pipeline:
        for n, outcome in enumerate(pipeline.outcomes(), 1):
            finish(outcome)
            if progress:
                progress(n, len(files))
    return summary


def _write(path: Path, write: Callable[[], None]) -> None:
    try:
        write()
    except OSError as err:
        raise OutputWriteError(f"cannot write {path}: {io_utils.os_error_text(err)}") from err


def write_result(item: InputFile, res, options: BatchOptions, inputs: set[Path]) -> list[Path]:
    """Writes one face's outputs; refuses any path that is an input file (ValueError); raises
    OutputWriteError naming the output that could not be written."""
    paths = []
    main = output_path(options.output, item, res.face_index, options.fmt)
    image = np.concatenate([res.aligned_input, res.image], axis=1) if options.side_by_side else res.image
    for path, data in [(main, image)]:
        if path.resolve() in inputs:
            raise ValueError(f"{path}: output would overwrite an input file; choose another --output")
        _write(path, lambda: io_utils.save_image_atomic(path, data))
        paths.append(path)
    if options.write_json:
        jpath = output_path(options.output, item, res.face_index, "json")
        if jpath.resolve() in inputs:
            raise ValueError(f"{jpath}: output would overwrite an input file; choose another --output")
        text = json.dumps({"input": str(item.path), **res.to_json()}, indent=1).encode()
        _write(jpath, lambda: io_utils.write_bytes_atomic(jpath, text))
        paths.append(jpath)
    return paths


def sheet_pair_from_outputs(item: InputFile, outputs: list[str | Path], options: BatchOptions,
                            normalizer=None) -> list[tuple]:
    """(name, aligned input, output) sheet pairs of an input normalized by an earlier run, from its
    image outputs: a side-by-side output holds both halves; otherwise the aligned input is
    recomputed with ``normalizer.align`` (detection and alignment, not the networks)."""
    images = [Path(o) for o in outputs if Path(o).suffix.lower() == f".{options.fmt}"]
    pairs = []
    aligned = None
    for path in sorted(images):
        full = path if path.is_absolute() else options.output / path
        out = io_utils.read_rgb(full)
        if options.side_by_side:
            half = out.shape[1] // 2
            pairs.append((item.rel.stem, out[:, :half], out[:, half:]))
            continue
        if aligned is None:
            aligned = [a for a, _, _ in normalizer.align(read_photo(item.path), options.all_faces)]
        k = int(full.stem.rsplit("_face", 1)[1])
        if k < len(aligned):
            pairs.append((item.rel.stem, aligned[k], out))
    return pairs


class ProgressBar:
    """The ``run_batch`` progress callback: a tqdm bar on stderr with the count, the rate and
    the time left, shown when stderr is a terminal or the run is long (50+ files), so logs of
    short runs stay clean. Call it with ``(done, total)``; it closes itself at ``total``."""

    def __init__(self, stream=None, unit: str = "photo"):
        self.stream = stream or sys.stderr
        self.unit = unit
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if total < 2 or not (self.stream.isatty() or total >= 50):
            return
        if self.bar is None:
            self.bar = tqdm(total=total, file=self.stream, unit=self.unit, dynamic_ncols=True, leave=True,
                            mininterval=0.2, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} "
                                                        "[{elapsed}<{remaining}, {rate_fmt}]")
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()
            self.bar = None


def write_sheet(path: Path, pairs: list) -> Path:
    """A contact sheet of (name, aligned input, output) pairs: two pairs per row. Raises
    OutputWriteError naming the sheet when it cannot be written."""
    from normface.utils import pictures

    tiles, labels = [], []
    for name, aligned, output in pairs:
        tiles += [aligned, output]
        labels += [name, "normalized"]
    grid = pictures.image_grid(tiles, cols=4, labels=labels)
    _write(path, lambda: io_utils.save_image_atomic(path, grid))
    return path
