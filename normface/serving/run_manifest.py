"""The run manifest of ``normface normalize``: what a rerun in the same output folder may skip.

``<output>/.normface-run.jsonl`` gets one JSON line per input whose outputs were all written:
the input's real path, its SHA-256, the name its outputs take (``rel``), the run key (a digest of
the model's files, of the backend that runs it, LiteRT or TensorFlow, whose faces differ by up to
a grey level, and of the options that change the outputs: format, side-by-side, JSON, all faces)
and the outputs with their sizes. A rerun skips an input when a line matches its path, content,
name and run key and every listed output is still there with its size; anything else (another
model or backend, other options, a changed photo, a deleted output) is normalized again, and
``--overwrite`` redoes everything. Lines are appended, so a killed run keeps the lines of the
inputs it finished; a torn last line is ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from normface.utils import io_utils

MANIFEST_FILE = ".normface-run.jsonl"
FORMAT = 1


file_sha256 = io_utils.file_sha256  # the run manifest's content key of an input photo


def run_key(model_fingerprint: str, options: dict) -> str:
    """A short digest of what makes the outputs: the model (with its backend:
    ``normalizer.model_fingerprint(path, backend)``) and the output options."""
    text = json.dumps({"format": FORMAT, "model": model_fingerprint, "options": options}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclasses.dataclass
class Entry:
    input: str
    sha256: str
    rel: str
    run: str
    outputs: list[str]  # relative to the output folder
    sizes: list[int]


class RunManifest:
    """The manifest of one output folder (read once, then appended to)."""

    def __init__(self, output: str | os.PathLike):
        self.output = Path(output)
        self.path = self.output / MANIFEST_FILE
        self.entries: dict[tuple[str, str, str, str], Entry] = {}
        self.recorded_outputs: set[Path] = set()
        if self.path.is_file():
            for line in self.path.read_text(errors="replace").splitlines():
                try:
                    entry = Entry(**json.loads(line))
                except (ValueError, TypeError):
                    continue  # a line torn by a kill, or not ours
                self.entries[(entry.input, entry.sha256, entry.rel, entry.run)] = entry
                self.recorded_outputs.update((self.output / o).resolve() for o in entry.outputs)

    def done(self, input_path: Path, sha256: str, rel: Path, key: str) -> Entry | None:
        """The entry of an input whose outputs are complete, else None."""
        entry = self.entries.get((str(Path(input_path).resolve()), sha256, rel.as_posix(), key))
        if entry is None:
            return None
        for name, size in zip(entry.outputs, entry.sizes):
            path = self.output / name
            if not path.is_file() or path.stat().st_size != size:
                return None
        return entry

    def record(self, input_path: Path, sha256: str, rel: Path, key: str, outputs: list[Path]) -> Entry:
        """Appends the line of an input whose outputs were all written (raises OSError if it cannot)."""
        entry = Entry(input=str(Path(input_path).resolve()), sha256=sha256, rel=rel.as_posix(), run=key,
                      outputs=[Path(o).relative_to(self.output).as_posix() for o in outputs],
                      sizes=[Path(o).stat().st_size for o in outputs])
        line = json.dumps(dataclasses.asdict(entry)) + "\n"
        with open(self.path, "ab+") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line  # close a line torn by a killed run
            f.write(line.encode())
        self.entries[(entry.input, entry.sha256, entry.rel, entry.run)] = entry
        self.recorded_outputs.update((self.output / o).resolve() for o in entry.outputs)
        return entry
