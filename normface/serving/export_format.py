"""The export format: what a normalizer export folder holds and how serving reads it.

Training writes it (:mod:`normface.training.export`); serving and the applications read it
through :func:`load_export` / :func:`load_keras` / :class:`ExportMetadata`, so they never import
training code.

Layout of an export folder::

    saved_model.pb, variables/      SavedModel; signatures below
    assets.extra/normface.json      metadata (also returned by the ``metadata`` signature)
    normalizer.keras                the Keras model (features -> landmarks, texture, image)
    MODEL_CARD.md                   data, flags, steps, final losses, git commit

Signatures (all batched; outputs ``image`` and ``texture`` are uint8 ``[b, S, S, 3]``,
``landmarks`` float32 ``[b, 68, 2]`` (x, y) pixels of the output image):

- ``serving_default`` = ``normalize_features``: ``features`` float32 ``[b, F]`` (encoder features).
- ``normalize_chips`` (only when an encoder is exported with the model): ``chips`` uint8
  ``[b, C, C, 3]`` aligned face chips (the encoder's chip format, e.g. dlib's 150x150) ->
  the same outputs; the frozen encoder is inside the SavedModel.
- ``metadata``: ``{"json": string}``.

The metadata carries the alignment template, mean landmarks, output size, encoder id and chip
parameters, so the export folder alone is enough to normalize faces. The plain-CNN ablation
has no texture output.
"""


from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normface.faces.alignment import AlignmentTemplate

if TYPE_CHECKING:
    import keras

METADATA_FILE = "assets.extra/normface.json"

KERAS_FILE = "normalizer.keras"

MODEL_CARD_FILE = "MODEL_CARD.md"

FORMAT_VERSION = 1


@dataclasses.dataclass
class ExportMetadata:
    """What inference needs besides the weights (stored as JSON in the export)."""

    model_config: dict[str, Any]
    mean_landmarks: list[list[float]]
    output_size: int
    encoder_id: str = ""
    template: dict[str, Any] | None = None
    chip: dict[str, Any] | None = None  # e.g. {"size": 150, "padding": 0.25, "landmarks": "68"}
    step: int = 0
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ExportMetadata":
        try:
            data = json.loads(text)
            meta = cls(**data)
        except (ValueError, TypeError) as err:
            raise ValueError(f"not a normface model metadata file ({err})") from err
        if meta.format_version > FORMAT_VERSION:
            raise ValueError(f"model format {meta.format_version} is newer than this normface reads "
                             f"({FORMAT_VERSION}): upgrade normface")
        return meta

    @property
    def alignment_template(self) -> AlignmentTemplate | None:
        return None if self.template is None else AlignmentTemplate.from_dict(self.template)


def load_export(export_dir: str | os.PathLike):
    """``(loaded SavedModel, ExportMetadata)`` from an export folder."""
    import tensorflow as tf

    export_dir = Path(export_dir)
    if not (export_dir / "saved_model.pb").is_file():
        raise FileNotFoundError(f"{export_dir}: not a normface export (no saved_model.pb)")
    meta = ExportMetadata.from_json((export_dir / METADATA_FILE).read_text())
    return tf.saved_model.load(str(export_dir)), meta


def load_keras(path: str | os.PathLike) -> "keras.Model":
    """The ``.keras`` model of an export folder (or a ``.keras`` file itself)."""
    import keras

    import normface.models  # noqa: F401  (registers the custom layers)
    import normface.warp.layer  # noqa: F401  (registers SplineWarp, which the file names)

    path = Path(path)
    return keras.models.load_model(path if path.suffix == ".keras" else path / KERAS_FILE, compile=False)
