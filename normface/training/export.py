"""Exports a trained normalizer: a SavedModel with serving signatures, the ``.keras`` file, the
metadata inference needs, and a model card.

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
import datetime
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from normface.utils import io_utils
from normface.utils import paths
from normface.faces.alignment import AlignmentTemplate
from normface.models import IMAGE, LANDMARKS, TEXTURE, ModelConfig
from normface.models.normalizer import mean_landmarks_of

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


def _to_uint8(x: tf.Tensor) -> tf.Tensor:
    with tf.name_scope("to_uint8"):
        return tf.cast(tf.round(tf.clip_by_value(tf.cast(x, tf.float32), 0.0, 1.0) * 255.0), tf.uint8)


class _ServingModule(tf.Module):
    """Holds the model (and optional encoder) so their variables are saved with the signatures."""

    def __init__(self, model: keras.Model, metadata_json: str, chip_encoder=None, chip_size: int = 0):
        super().__init__(name="normface_serving")
        self.model = model
        self.metadata_json = metadata_json
        self.chip_encoder = chip_encoder
        # The encoder may be a plain callable: track the Keras model behind it, if any.
        self.encoder_model = getattr(chip_encoder, "model", chip_encoder if isinstance(chip_encoder, keras.Model) else None)
        self.chip_size = chip_size

    def outputs(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
        out = self.model(features, training=False)
        result = {IMAGE: _to_uint8(out[IMAGE]), LANDMARKS: tf.cast(out[LANDMARKS], tf.float32)}
        if TEXTURE in out:
            result[TEXTURE] = _to_uint8(out[TEXTURE])
        return result

    def chips_to_features(self, chips: tf.Tensor) -> tf.Tensor:
        # IdentityEncoder (normface.encoders) returns an object with .features; a plain callable
        # or Keras model returns the features themselves.
        out = self.chip_encoder(tf.cast(chips, tf.float32))
        return getattr(out, "features", out)


def git_commit() -> str:
    """The repository's HEAD commit (``+dirty`` with uncommitted changes), or ``unknown``."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.REPO_ROOT, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=paths.REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def export_normalizer(
    model: keras.Model,
    model_config: ModelConfig,
    export_dir: str | os.PathLike,
    *,
    template: AlignmentTemplate | None = None,
    encoder_id: str = "",
    chip_encoder: Callable[[tf.Tensor], Any] | None = None,
    chip: dict[str, Any] | None = None,
    step: int = 0,
    card: dict[str, Any] | None = None,
) -> Path:
    """Writes the export folder (see the module docstring) and returns its path.

    Args:
      model: the full normalizer (features -> {landmarks, texture, image}).
      model_config: its config.
      export_dir: destination folder (replaced if it exists).
      template: the alignment template of the training records.
      encoder_id: the frozen encoder's registry name (e.g. ``dlib_face_resnet_v1``).
      chip_encoder: optional callable chips float32 ``[b, C, C, 3]`` in [0, 255] -> features
        ``[b, F]`` (or an object with ``.features``): adds the ``normalize_chips`` signature. Its
        Keras model (``.model``) is saved inside the export.
      chip: chip parameters; ``size`` is required with ``chip_encoder``.
      step: training step of the weights.
      card: extra model-card facts (``data``, ``flags``, ``final_losses``...; see write_model_card).
    """
    export_dir = Path(export_dir)
    if chip_encoder is not None and not (chip and chip.get("size")):
        raise ValueError("chip_encoder needs chip={'size': <chip side in pixels>, ...}")
    meta = ExportMetadata(
        model_config=model_config.to_dict(),
        mean_landmarks=mean_landmarks_of(model).tolist(),
        output_size=model_config.output_size,
        encoder_id=encoder_id,
        template=None if template is None else template.to_dict(),
        chip=chip,
        step=int(step),
    )
    module = _ServingModule(model, meta.to_json(), chip_encoder, int((chip or {}).get("size", 0)))
    feature_spec = tf.TensorSpec([None, model_config.feature_dim], tf.float32, name="features")
    normalize_features = tf.function(module.outputs, input_signature=[feature_spec])
    signatures = {"serving_default": normalize_features, "normalize_features": normalize_features,
                  "metadata": tf.function(lambda: {"json": tf.constant(module.metadata_json)}, input_signature=[])}
    if chip_encoder is not None:
        c = module.chip_size
        chip_spec = tf.TensorSpec([None, c, c, 3], tf.uint8, name="chips")
        signatures["normalize_chips"] = tf.function(
            lambda chips: module.outputs(module.chips_to_features(chips)), input_signature=[chip_spec]
        )
    module.normalize_features = normalize_features
    tmp = export_dir.with_name(f".{export_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(module, str(tmp), signatures=signatures)
    (tmp / Path(METADATA_FILE).parent).mkdir(parents=True, exist_ok=True)
    (tmp / METADATA_FILE).write_text(meta.to_json())
    model.save(tmp / KERAS_FILE)
    write_model_card(tmp / MODEL_CARD_FILE, meta, card or {})
    # Swap into place last, so a crash never leaves a half-written export under the final name.
    if export_dir.exists():
        old = export_dir.with_name(f".{export_dir.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(export_dir, old)
        os.replace(tmp, export_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, export_dir)
    return export_dir


def _table(rows: dict[str, Any]) -> str:
    if not rows:
        return "(none recorded)\n"
    lines = ["| name | value |", "| --- | --- |"]
    for k, v in sorted(rows.items()):
        if isinstance(v, float):
            v = f"{v:.6g}"
        lines.append(f"| {k} | {v} |")
    return "\n".join(lines) + "\n"


def write_model_card(path: str | os.PathLike, meta: ExportMetadata, card: dict[str, Any]) -> None:
    """Markdown model card: data, flags, steps, final losses, best validation, git commit."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"# normface normalizer ({meta.output_size}x{meta.output_size})\n",
        "Face normalizer after Cole et al., CVPR 2017: frozen encoder features -> landmarks, texture, "
        "warped output image.\n",
        f"- exported: {when}\n- git commit: `{card.get('git_commit', git_commit())}`\n"
        f"- training steps: {meta.step}\n- encoder: `{meta.encoder_id or 'unspecified'}`\n"
        f"- chip: {meta.chip or 'none (features input only)'}\n- template: {meta.template}\n",
        "\n## Data\n\n" + _table(card.get("data", {})),
        "\n## Model\n\n" + _table(meta.model_config),
        "\n## Flags\n\n" + _table(card.get("flags", {})),
        "\n## Final losses and validation\n\n" + _table(card.get("final_losses", {})),
    ]
    if card.get("notes"):
        parts.append("\n## Notes\n\n" + str(card["notes"]) + "\n")
    io_utils.write_bytes_atomic(path, "".join(parts).encode())


def export_from_model_dir(
    model_dir: str | os.PathLike,
    export_dir: str | os.PathLike,
    *,
    which: str = "best",
    chip_encoder: Callable[[tf.Tensor], Any] | None = None,
    chip: dict[str, Any] | None = None,
    notes: str = "",
) -> Path:
    """Exports the ``best`` (else latest) or ``latest`` checkpoint of a training folder.

    Everything else comes from the folder's ``config.json`` (model config; ``metadata`` with
    ``mean_landmarks``, ``template``, ``encoder_id``, ``data``, ``flags``), ``history.json`` and
    ``best.json``, written by :class:`normface.training.trainer.Trainer`.
    """
    from normface.models import build_normalizer
    from normface.training import trainer

    model_dir = Path(model_dir)
    if which not in ("best", "latest"):
        raise ValueError(f"which must be best or latest, got {which!r}")
    config_path = model_dir / trainer.CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{model_dir}: no {trainer.CONFIG_FILE}; not a normface training folder")
    record = json.loads(config_path.read_text())
    meta = record.get("metadata", {})
    if "mean_landmarks" not in meta:
        raise ValueError(f"{config_path}: metadata lacks mean_landmarks")
    model_config = ModelConfig.from_dict(record["model"])
    folders = ["best", "checkpoints"] if which == "best" else ["checkpoints"]
    latest = next((c for c in (tf.train.latest_checkpoint(str(model_dir / f)) for f in folders) if c), None)
    if latest is None:
        raise FileNotFoundError(f"{model_dir}: no checkpoint in {folders}")
    net = build_normalizer(model_config, np.asarray(meta["mean_landmarks"], np.float32))
    tf.train.Checkpoint(model=net.model).restore(latest).expect_partial()
    final = {}
    for name, prefix in ((trainer.HISTORY_FILE, "last"), (trainer.BEST_FILE, "best")):
        path = model_dir / name
        if path.is_file():
            final.update({f"{prefix}/{k}": v for k, v in json.loads(path.read_text()).items()})
    template = meta.get("template")
    return export_normalizer(
        net.model, model_config, export_dir,
        template=None if template is None else AlignmentTemplate.from_dict(template),
        encoder_id=meta.get("encoder_id", ""), chip_encoder=chip_encoder, chip=chip or meta.get("chip"),
        step=int(latest.rsplit("-", 1)[-1]),
        card={"data": meta.get("data", {}), "flags": {**record.get("train", {}), **meta.get("flags", {})},
              "final_losses": final, "notes": notes or f"weights from {latest}"},
    )


def load_export(export_dir: str | os.PathLike):
    """``(loaded SavedModel, ExportMetadata)`` from an export folder."""
    export_dir = Path(export_dir)
    if not (export_dir / "saved_model.pb").is_file():
        raise FileNotFoundError(f"{export_dir}: not a normface export (no saved_model.pb)")
    meta = ExportMetadata.from_json((export_dir / METADATA_FILE).read_text())
    return tf.saved_model.load(str(export_dir)), meta


def load_keras(path: str | os.PathLike) -> keras.Model:
    """The ``.keras`` model of an export folder (or a ``.keras`` file itself)."""
    import normface.models  # noqa: F401  (registers the custom layers)

    path = Path(path)
    return keras.models.load_model(path if path.suffix == ".keras" else path / KERAS_FILE, compile=False)
