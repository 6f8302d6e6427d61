"""The model shipped inside the package: compact float16 weights + the export's metadata.

A training export (``experiments/export.py``) holds a SavedModel and a float32 ``.keras`` file,
~2x too big for the package's 60 MB budget. ``pack`` keeps what inference needs: the export's
metadata JSON (model config, template, mean landmarks, encoder id), its model card, and the
weights as float16 in one compressed ``weights.npz``. ``load`` rebuilds the network from the
config and restores the weights (cast back to float32; float16 rounding changes outputs by
about one grey level).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from normface.utils import io_utils

WEIGHTS_FILE = "weights.npz"
METADATA_FILE = "normface.json"
CARD_FILE = "MODEL_CARD.md"


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
    io_utils.write_bytes_atomic(out_dir / METADATA_FILE, (export_dir / export_format.METADATA_FILE).read_bytes())
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


def load(packed_dir: str | Path):
    """``(keras model, ExportMetadata)`` of a packed model."""
    from normface.models import ModelConfig, build_normalizer
    from normface.serving.export_format import ExportMetadata

    packed_dir = Path(packed_dir)
    meta_path = packed_dir / METADATA_FILE
    if not meta_path.is_file() or not (packed_dir / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"{packed_dir}: not a packed normface model (needs {WEIGHTS_FILE} and {METADATA_FILE})")
    metadata = ExportMetadata.from_json(meta_path.read_text())
    net = build_normalizer(ModelConfig.from_dict(metadata.model_config),
                           np.asarray(metadata.mean_landmarks, np.float32))
    with np.load(packed_dir / WEIGHTS_FILE) as data:
        weights = [data[k].astype(np.float32) for k in sorted(data.files)]
    try:
        net.model.set_weights(weights)
    except ValueError as err:
        raise ValueError(f"{packed_dir / WEIGHTS_FILE}: weights do not fit the model config ({err})") from err
    return net.model, metadata
