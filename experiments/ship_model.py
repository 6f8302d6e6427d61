"""Packs a trained export into the package as the default pretrained model.

    python experiments/ship_model.py --export=workspace/runs/r128/export [--name=normface128]

Writes normface/serving/pretrained/<name>/ (weights.npz in float16, normface.json with the
weights' checksums, MODEL_CARD.md, and the LiteRT files: encoder.tflite, the decoder's files
without their weights, litert.json mapping them into weights.npz) and prints its size; the
package must stay under 60 MB. The
model is packed into a temporary folder first and copied into the package only when it fits
``--max_mb``, so a model over the limit leaves the package as it was (exit 1). The card comes
from the export; sections of the shipped card that the export's lacks (the evaluation, the
limitations) are kept. A bad flag exits 2 before anything is packed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from normface.serving.normalizer import DEFAULT_MODEL, PRETRAINED_DIR  # noqa: E402
from normface.serving import litert_export, packed  # noqa: E402
from normface.utils import config_flags, io_utils  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("export", None, "Export folder written by experiments/export.py or train.py; none: write the "
                    "LiteRT files of the model already packed as --name again (after a change of their format).")
flags.DEFINE_string("name", DEFAULT_MODEL, "Name of the packed model under normface/serving/pretrained/.")
flags.DEFINE_float("max_mb", 60.0, "Refuse to ship a model larger than this (MB, > 0).", lower_bound=1e-6)
flags.DEFINE_string("pretrained_dir", str(PRETRAINED_DIR), "Folder of the packed models (the package's; tests "
                    "use another).")
flags.DEFINE_bool("litert", True, "Also write the LiteRT files (encoder.tflite, decoder_*.tflite, litert.json) "
                  "that run the model without TensorFlow.")
config_flags.existing_folder("export")
flags.register_validator("name", lambda v: bool(v) and v not in (".", "..") and "/" not in v and os.sep not in v,
                         message="--name must be a plain folder name")


def _write_litert(staged: Path) -> None:
    """The LiteRT files of the packed model in ``staged`` (:mod:`normface.serving.litert_export`),
    checked against TensorFlow before they ship."""
    from normface.encoders import get_encoder

    model, metadata = packed.load(staged)
    if litert_export.not_exportable(metadata.model_config):
        return  # e.g. the plain-CNN ablation (no texture, no warp): TensorFlow only
    encoder = get_encoder(metadata.encoder_id or "dlib")
    litert_export.write_tflite(staged, model, metadata.model_config, encoder)
    litert_export.verify_export(staged, model, encoder, metadata.mean_landmarks)


def ship(export: str | Path | None, target: Path, max_mb: float, litert: bool = True) -> float:
    """Packs ``export`` into ``target`` when it is at most ``max_mb`` MB; returns its size in MB.
    With ``litert``, also its LiteRT files (the networks for inference without TensorFlow; the
    plain-CNN ablation has none). ``export`` None: the model packed in ``target`` stays, its
    LiteRT files are written again. Raises ValueError (and writes nothing into ``target``) when
    it is larger or its LiteRT files do not match TensorFlow."""
    with tempfile.TemporaryDirectory(prefix="normface-ship-") as tmp:
        staged = Path(tmp) / target.name
        staged.mkdir()
        if (target / packed.CARD_FILE).is_file():  # so the hand-written sections are merged as usual
            shutil.copy2(target / packed.CARD_FILE, staged / packed.CARD_FILE)
        if export is None:
            for name in (packed.WEIGHTS_FILE, packed.METADATA_FILE):
                shutil.copy2(target / name, staged / name)
            packed.read_metadata(staged)  # its checksums: a damaged model is not shipped again
        else:
            packed.pack(export, staged)
        for stage in ("weights", "litert"):
            size = sum(p.stat().st_size for p in staged.iterdir()) / 1e6
            if size > max_mb:
                raise ValueError(f"the packed model is {size:.1f} MB, over --max_mb={max_mb}: {target} left as it was")
            if stage == "weights" and litert:
                _write_litert(staged)
        target.mkdir(parents=True, exist_ok=True)
        # Weights first, the metadata (with their checksums) last: a copy interrupted in between
        # fails the checksum check on load instead of loading mismatched weights. A model shipped
        # without LiteRT files loses the old ones (they would not fit its weights).
        for name in (*litert_export.LITERT_FILES, *litert_export.OLD_FILES):
            if not (staged / name).is_file() and (target / name).is_file():
                (target / name).unlink()
        for name in (packed.WEIGHTS_FILE, *litert_export.LITERT_FILES, packed.CARD_FILE, packed.METADATA_FILE):
            if (staged / name).is_file():
                io_utils.write_bytes_atomic(target / name, (staged / name).read_bytes())
    return size


def main(argv):
    del argv
    target = Path(FLAGS.pretrained_dir) / FLAGS.name
    try:
        size = ship(FLAGS.export, target, FLAGS.max_mb, litert=FLAGS.litert)
    except ValueError as err:
        print(f"ship_model.py: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {target} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main, flags_parser=config_flags.flags_parser))
