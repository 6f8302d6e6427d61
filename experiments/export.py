"""Exports a training folder's best (or latest) checkpoint, or a packed model, as a SavedModel +
.keras + model card.

    python experiments/export.py --model_dir=workspace/runs/r128 [--export_dir=...] [--which=best] \
        [--encoder=dlib_face_resnet_v1]
    python experiments/export.py --packed=shipped --export_dir=export/normface128   # for TF Serving

``--packed`` (``shipped`` = the model inside the package, or a packed folder) writes the
SavedModel that TF Serving loads, with both signatures (``normalize_chips`` bundles the frozen
encoder); docs/serving.md (TF Serving) shows the REST requests.

``--encoder`` adds the ``normalize_chips`` signature (uint8 face chips in, the frozen encoder
inside the export); without it only ``normalize_features`` (= serving_default) is exported.
``train.py`` runs the same export at the end of training.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Training folder written by experiments/train.py.")
flags.DEFINE_string("packed", None, "A packed model folder, or 'shipped' for the one in the package, instead "
                    "of --model_dir; exports both signatures (normalize_chips with the frozen encoder).")
flags.DEFINE_string("export_dir", None, "Destination (default <model_dir>/export).")
flags.DEFINE_enum("which", "best", ["best", "latest"], "Best checkpoint by the validation identity metric, or latest.")
flags.DEFINE_string("encoder", "", "normface.encoders name to bundle for the normalize_chips signature ('' = none).")
flags.register_multi_flags_validator(["model_dir", "packed"], lambda f: bool(f["model_dir"]) != bool(f["packed"]),
                                    message="give exactly one of --model_dir and --packed")


def main(argv):
    del argv
    from normface.training import export

    if FLAGS.packed:
        if not FLAGS.export_dir:
            print("export.py: error: --packed needs --export_dir", file=sys.stderr)
            sys.exit(2)
        source = None if FLAGS.packed == "shipped" else FLAGS.packed
        if source is not None and not Path(source).is_dir():
            print(f"export.py: error: --packed={source}: no such folder", file=sys.stderr)
            sys.exit(2)
        print(f"exported {export.export_packed(source, FLAGS.export_dir)}")
        return
    model_dir = Path(FLAGS.model_dir)
    if not (model_dir / "config.json").is_file():
        print(f"export.py: error: --model_dir={model_dir} is not a training folder (no config.json)", file=sys.stderr)
        sys.exit(2)
    encoder, chip = None, None
    if FLAGS.encoder:
        from normface import encoders

        resolved = encoders.resolve(FLAGS.encoder)
        encoder, chip = resolved.encoder, resolved.chip
    out = export.export_from_model_dir(model_dir, FLAGS.export_dir or model_dir / "export", which=FLAGS.which,
                                       chip_encoder=encoder, chip=chip)
    print(f"exported {out}")


if __name__ == "__main__":
    app.run(main)
