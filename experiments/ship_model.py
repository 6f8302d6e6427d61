"""Packs a trained export into the package as the default pretrained model.

    python experiments/ship_model.py --export=workspace/runs/r128/export [--name=normface128]

Writes normface/serving/pretrained/<name>/ (weights.npz in float16, normface.json with the
weights' checksums, MODEL_CARD.md) and prints its size; the package must stay under 60 MB. The
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
from normface.serving import packed  # noqa: E402
from normface.utils import config_flags, io_utils  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("export", None, "Export folder written by experiments/export.py or train.py.", required=True)
flags.DEFINE_string("name", DEFAULT_MODEL, "Name of the packed model under normface/serving/pretrained/.")
flags.DEFINE_float("max_mb", 60.0, "Refuse to ship a model larger than this (MB, > 0).", lower_bound=1e-6)
flags.DEFINE_string("pretrained_dir", str(PRETRAINED_DIR), "Folder of the packed models (the package's; tests "
                    "use another).")
config_flags.existing_folder("export")
flags.register_validator("name", lambda v: bool(v) and v not in (".", "..") and "/" not in v and os.sep not in v,
                         message="--name must be a plain folder name")


def ship(export: str | Path, target: Path, max_mb: float) -> float:
    """Packs ``export`` into ``target`` when it is at most ``max_mb`` MB; returns its size in MB.
    Raises ValueError (and writes nothing into ``target``) when it is larger."""
    with tempfile.TemporaryDirectory(prefix="normface-ship-") as tmp:
        staged = Path(tmp) / target.name
        staged.mkdir()
        if (target / packed.CARD_FILE).is_file():  # so the hand-written sections are merged as usual
            shutil.copy2(target / packed.CARD_FILE, staged / packed.CARD_FILE)
        packed.pack(export, staged)
        size = sum(p.stat().st_size for p in staged.iterdir()) / 1e6
        if size > max_mb:
            raise ValueError(f"the packed model is {size:.1f} MB, over --max_mb={max_mb}: {target} left as it was")
        target.mkdir(parents=True, exist_ok=True)
        # Weights first, the metadata (with their checksums) last: a copy interrupted in between
        # fails the checksum check on load instead of loading mismatched weights.
        for name in (packed.WEIGHTS_FILE, packed.CARD_FILE, packed.METADATA_FILE):
            if (staged / name).is_file():
                io_utils.write_bytes_atomic(target / name, (staged / name).read_bytes())
    return size


def main(argv):
    del argv
    target = Path(FLAGS.pretrained_dir) / FLAGS.name
    try:
        size = ship(FLAGS.export, target, FLAGS.max_mb)
    except ValueError as err:
        print(f"ship_model.py: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {target} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main, flags_parser=config_flags.flags_parser))
