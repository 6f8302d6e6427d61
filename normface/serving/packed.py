"""The model shipped inside the package: compact float16 weights + the export's metadata.

A training export (``experiments/export.py``) holds a SavedModel and a float32 ``.keras`` file,
~2x too big for the package's 60 MB budget. ``pack`` keeps what inference needs: the export's
metadata JSON (model config, template, mean landmarks, encoder id), its model card, and the
weights as float16 in one compressed ``weights.npz``. ``load`` rebuilds the network from the
config and restores the weights (cast back to float32; float16 rounding changes outputs by
about one grey level).

``normface.json`` also records the size and SHA-256 of ``weights.npz`` (key ``packed_files``);
``load`` checks them first, so a truncated, partial or altered weights file is a
:class:`ModelFileError` naming the file and what is wrong. A packed model from before the
checksums (no ``packed_files``) still loads; its damage is caught when the file is decoded.
:func:`record_checksums` adds the checksums to such a model without touching its weights.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from normface.utils import io_utils

WEIGHTS_FILE = "weights.npz"
METADATA_FILE = "normface.json"
CARD_FILE = "MODEL_CARD.md"
CHECKSUMS_KEY = "packed_files"


class ModelFileError(ValueError):
    """A model file that is missing, corrupt, partial or does not fit its metadata (the message
    names the file)."""


def file_digest(path: str | Path) -> dict:
    """``{"bytes": size, "sha256": hex digest}`` of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": Path(path).stat().st_size, "sha256": digest.hexdigest()}


def _metadata_with_checksums(metadata_text: str, packed_dir: Path) -> bytes:
    data = json.loads(metadata_text)
    data[CHECKSUMS_KEY] = {WEIGHTS_FILE: file_digest(packed_dir / WEIGHTS_FILE)}
    return json.dumps(data, indent=2, sort_keys=True).encode()  # the layout of ExportMetadata.to_json


def record_checksums(packed_dir: str | Path) -> Path:
    """Writes the size and SHA-256 of ``weights.npz`` into ``normface.json`` (atomically; the
    weights file is only read). Returns the metadata path."""
    packed_dir = Path(packed_dir)
    meta_path = packed_dir / METADATA_FILE
    io_utils.write_bytes_atomic(meta_path, _metadata_with_checksums(meta_path.read_text(), packed_dir))
    return meta_path


def verify_checksums(packed_dir: str | Path, recorded: dict | None) -> bool:
    """Checks the files ``recorded`` (``normface.json``'s ``packed_files``) lists; raises
    ModelFileError naming the first that differs. False when nothing is recorded (older models)."""
    if not recorded:
        return False
    packed_dir = Path(packed_dir)
    for name, want in recorded.items():
        path = packed_dir / name
        if not path.is_file():
            raise ModelFileError(f"{path}: missing (the model's {METADATA_FILE} lists it)")
        have = file_digest(path)
        if have["bytes"] != want.get("bytes"):
            raise ModelFileError(f"{path}: {have['bytes']} bytes, but the model was packed with "
                                 f"{want.get('bytes')} (a partial copy or download?): reinstall or re-pack the model")
        if have["sha256"] != want.get("sha256"):
            raise ModelFileError(f"{path}: corrupt (SHA-256 {have['sha256'][:12]}..., the model was packed with "
                                 f"{str(want.get('sha256'))[:12]}...): reinstall or re-pack the model")
    return True


def is_packed(path: str | Path) -> bool:
    return (Path(path) / WEIGHTS_FILE).is_file()


def pack(export_dir: str | Path, out_dir: str | Path) -> Path:
    """Writes a packed model from an export folder; returns ``out_dir``."""
    from normface.serving import export_format

    export_dir, out_dir = Path(export_dir), Path(out_dir)
    model = export_format.load_keras(export_dir)
    arrays = {f"w{i:03d}": w.astype(np.float16) for i, w in enumerate(model.get_weights())}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    out_dir.mkdir(parents=True, exist_ok=True)
    io_utils.write_bytes_atomic(out_dir / WEIGHTS_FILE, buffer.getvalue())
    io_utils.write_bytes_atomic(out_dir / METADATA_FILE,
                                _metadata_with_checksums((export_dir / export_format.METADATA_FILE).read_text(), out_dir))
    if (export_dir / export_format.MODEL_CARD_FILE).is_file():
        card = (export_dir / export_format.MODEL_CARD_FILE).read_text()
        if (out_dir / CARD_FILE).is_file():
            card = merge_cards(card, (out_dir / CARD_FILE).read_text())
        io_utils.write_bytes_atomic(out_dir / CARD_FILE, card.encode())
    return out_dir


def _sections(card: str) -> list[tuple[str, str]]:
    """``(heading, text)`` per ``## `` section of a markdown card (the preamble has heading "")."""
    out: list[tuple[str, str]] = [("", "")]
    for line in card.splitlines(keepends=True):
        if line.startswith("## "):
            out.append((line.strip(), ""))
        out[-1] = (out[-1][0], out[-1][1] + line)
    return out


def merge_cards(generated: str, existing: str) -> str:
    """The generated card plus the sections of the existing card that it lacks (those written
    by hand after shipping, such as the evaluation and limitations), so re-shipping loses none."""
    have = {heading for heading, _ in _sections(generated)}
    extra = [text for heading, text in _sections(existing) if heading and heading not in have]
    if not extra:
        return generated
    return generated.rstrip("\n") + "\n\n" + "".join(t.rstrip("\n") + "\n\n" for t in extra).rstrip("\n") + "\n"


def read_metadata(packed_dir: str | Path):
    """The ``ExportMetadata`` of a packed model, after checking its weights' recorded size and
    SHA-256 (no TensorFlow: the LiteRT path reads only this). Raises as :func:`load`."""
    from normface.serving.export_format import ExportMetadata

    packed_dir = Path(packed_dir)
    meta_path, weights_path = packed_dir / METADATA_FILE, packed_dir / WEIGHTS_FILE
    if not meta_path.is_file() or not weights_path.is_file():
        raise FileNotFoundError(f"{packed_dir}: not a packed normface model (needs {WEIGHTS_FILE} and {METADATA_FILE})")
    try:
        data = json.loads(meta_path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        recorded = data.pop(CHECKSUMS_KEY, None)
        metadata = ExportMetadata.from_json(json.dumps(data))
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{meta_path}: not a readable model metadata file ({err})") from err
    verify_checksums(packed_dir, recorded)
    return metadata


def load(packed_dir: str | Path):
    """``(keras model, ExportMetadata)`` of a packed model.

    Raises FileNotFoundError when a file is missing, :class:`ModelFileError` (a ValueError)
    naming the file when it is corrupt, partial or does not fit the model config."""
    from normface.models import ModelConfig, build_normalizer

    packed_dir = Path(packed_dir)
    meta_path, weights_path = packed_dir / METADATA_FILE, packed_dir / WEIGHTS_FILE
    metadata = read_metadata(packed_dir)
    try:
        with np.load(weights_path) as arrays:
            weights = [arrays[k].astype(np.float32) for k in sorted(arrays.files)]
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError, OSError) as err:
        raise ModelFileError(f"{weights_path}: corrupt or partial weights file ({type(err).__name__}: {err}): "
                             "reinstall or re-pack the model") from err
    try:
        net = build_normalizer(ModelConfig.from_dict(metadata.model_config),
                               np.asarray(metadata.mean_landmarks, np.float32))
    except (ValueError, TypeError, KeyError) as err:
        raise ModelFileError(f"{meta_path}: the model config cannot be built ({type(err).__name__}: {err})") from err
    try:
        net.model.set_weights(weights)
    except ValueError as err:
        raise ModelFileError(f"{weights_path}: weights do not fit the model config ({err})") from err
    return net.model, metadata
