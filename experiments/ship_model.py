"""Packs a trained export into the package as the default pretrained model.

    python experiments/ship_model.py --export=workspace/runs/r128/export [--name=normface128]

Writes normface/serving/pretrained/<name>/ (weights.npz in float16, normface.json, MODEL_CARD.md) and
prints its size; the package must stay under 60 MB. The card comes from the export; sections of
the shipped card that the export's lacks (the evaluation, the limitations) are kept.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from normface.serving.normalizer import DEFAULT_MODEL, PRETRAINED_DIR
from normface.serving import packed

FLAGS = flags.FLAGS
flags.DEFINE_string("export", None, "Export folder written by experiments/export.py or train.py.", required=True)
flags.DEFINE_string("name", DEFAULT_MODEL, "Name of the packed model under normface/serving/pretrained/.")
flags.DEFINE_integer("max_mb", 60, "Refuse to ship a model larger than this.")


def main(argv):
    del argv
    out = packed.pack(FLAGS.export, PRETRAINED_DIR / FLAGS.name)
    size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    if size > FLAGS.max_mb:
        raise app.UsageError(f"{out} is {size:.1f} MB, over --max_mb={FLAGS.max_mb}")
    print(f"wrote {out} ({size:.1f} MB)")


if __name__ == "__main__":
    app.run(main)
