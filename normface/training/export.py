"""Exports a trained normalizer in the format of :mod:`normface.serving.export_format`: the
SavedModel with its serving signatures, the ``.keras`` file, the metadata and a model card."""


from __future__ import annotations

import dataclasses

import datetime
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from normface.utils import io_utils
from normface.faces.alignment import AlignmentTemplate
from normface.models import IMAGE, LANDMARKS, TEXTURE, ModelConfig
from normface.models.normalizer import mean_landmarks_of
from normface.serving.export_format import KERAS_FILE, METADATA_FILE, MODEL_CARD_FILE, ExportMetadata
from normface.training.checkpoints import BEST_DIR, BEST_FILE, LATEST_DIR, WHICH, find_checkpoint
from normface.utils import paths, provenance
from normface.utils.tables import key_value_table
from normface.utils.pictures import to_uint8


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
        # Keras 3 variables wrap tf.Variables; listing those here puts every one in the SavedModel's
        # object graph under its own name. Without it TF2's loader copes, but TF1-style session
        # loaders (TF Serving, ``saved_model_cli run``) fail with "Could not find variable ...".
        models = [model] + ([self.encoder_model] if self.encoder_model is not None else [])
        self.tf_variables = [getattr(v, "value", v) for m in models for v in m.variables]

    def outputs(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
        out = self.model(features, training=False)
        result = {IMAGE: to_uint8(out[IMAGE]), LANDMARKS: tf.cast(out[LANDMARKS], tf.float32)}
        if TEXTURE in out:
            result[TEXTURE] = to_uint8(out[TEXTURE])
        return result

    def chips_to_features(self, chips: tf.Tensor) -> tf.Tensor:
        # IdentityEncoder (normface.encoders) returns an object with .features; a plain callable
        # or Keras model returns the features themselves.
        out = self.chip_encoder(tf.cast(chips, tf.float32))
        return getattr(out, "features", out)


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


def write_model_card(path: str | os.PathLike, meta: ExportMetadata, card: dict[str, Any]) -> None:
    """Markdown model card: data, flags, steps, final losses, best validation, normface version and
    git commit ("built from a dirty tree at <commit>" with uncommitted changes). Paths are written
    relative to the workspace, data root or repository (:func:`normface.utils.paths.portable`),
    never as the training machine's absolute paths."""
    from normface import __version__

    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    source = provenance.parse(card["git_commit"]) if card.get("git_commit") else provenance.git_state()
    card = paths.portable_values(card)
    parts = [
        f"# normface normalizer ({meta.output_size}x{meta.output_size})\n",
        "Face normalizer after Cole et al., CVPR 2017: frozen encoder features -> landmarks, texture, "
        "warped output image.\n",
        f"- exported: {when}\n- normface version: {__version__}\n- git commit: {source.markdown()}\n"
        f"- training steps: {meta.step}\n- encoder: `{meta.encoder_id or 'unspecified'}`\n"
        f"- chip: {meta.chip or 'none (features input only)'}\n- template: {meta.template}\n",
        "\n## Data\n\n" + key_value_table(card.get("data", {})),
        "\n## Model\n\n" + key_value_table(meta.model_config),
        "\n## Flags\n\n" + key_value_table(card.get("flags", {})),
        "\n## Final losses and validation\n\n" + key_value_table(card.get("final_losses", {})),
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

    The exported model computes in float32 whatever mixed-precision policy trained it.
    Everything else comes from the folder's ``config.json`` (model config; ``metadata`` with
    ``mean_landmarks``, ``template``, ``encoder_id``, ``data``, ``flags``), ``history.json`` and
    ``best.json``, written by :class:`normface.training.trainer.Trainer`.
    """
    from normface.models import build_normalizer
    from normface.training import trainer

    model_dir = Path(model_dir)
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    config_path = model_dir / trainer.CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{model_dir}: no {trainer.CONFIG_FILE}; not a normface training folder")
    record = json.loads(config_path.read_text())
    meta = record.get("metadata", {})
    if "mean_landmarks" not in meta:
        raise ValueError(f"{config_path}: metadata lacks mean_landmarks")
    trained = ModelConfig.from_dict(record["model"])
    # Mixed precision is a training-time speed-up: the export computes in float32 (the weights
    # are float32 variables either way), as every serving path and TF Serving expect.
    model_config = dataclasses.replace(trained, dtype_policy="float32")
    latest = find_checkpoint(model_dir, which)
    if latest is None:
        raise FileNotFoundError(f"{model_dir}: no {which} checkpoint (nothing in its {BEST_DIR}/ or {LATEST_DIR}/)")
    net = build_normalizer(model_config, np.asarray(meta["mean_landmarks"], np.float32))
    tf.train.Checkpoint(model=net.model).restore(latest).expect_partial()
    final = {}
    for name, prefix in ((trainer.HISTORY_FILE, "last"), (BEST_FILE, "best")):
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
              "final_losses": final,
              "notes": (notes or f"weights from {latest}") + (
                  f"; trained under {trained.dtype_policy}, exported in float32" if trained.dtype_policy != "float32" else "")},
    )


def export_packed(packed_dir: str | os.PathLike | None, export_dir: str | os.PathLike, *,
                  with_chips: bool = True) -> Path:
    """Exports a packed model (default: the one shipped in the package) as an export folder
    with a SavedModel for TF Serving: ``normalize_features`` (= ``serving_default``) and, with
    ``with_chips``, ``normalize_chips`` with the model's frozen encoder inside (see
    :mod:`normface.serving.export_format`). The weights are the packed float16 ones, cast to
    float32; the metadata and the card come from the packed model."""
    from normface import encoders
    from normface.serving import packed
    from normface.serving.normalizer import resolve_model_path

    packed_dir = resolve_model_path(packed_dir)
    if not packed.is_packed(packed_dir):
        raise ValueError(f"{packed_dir}: not a packed normface model (no {packed.WEIGHTS_FILE})")
    model, meta = packed.load(packed_dir)
    chip_encoder, chip = None, meta.chip
    if with_chips:
        resolved = encoders.resolve(meta.encoder_id or encoders.DEFAULT_ENCODER)
        chip_encoder, chip = resolved.encoder, meta.chip or resolved.chip
    card_path = packed_dir / packed.CARD_FILE
    return export_normalizer(
        model, ModelConfig.from_dict(meta.model_config), export_dir, template=meta.alignment_template,
        encoder_id=meta.encoder_id, chip_encoder=chip_encoder, chip=chip, step=meta.step,
        card={"notes": f"SavedModel export of the packed model {packed_dir} (float16 weights cast to float32)"
                       + (f"; its card:\n\n{card_path.read_text()}" if card_path.is_file() else "")},
    )
