"""The paper's ablations (Figs. 9-11) at one small scale: same data, same steps, one change each.

    python experiments/ablations.py --records=workspace/records64 --records_plain=workspace/records64_plain \
        --output=workspace/ablations --steps=1500

Variants: the default (texture CNN, augmented records, no identity loss); the fully connected
texture decoder (Fig. 9); no augmentation (``--records_plain``: records built with
``--morphs_per_face=0``; Fig. 9); the plain CNN without landmark/texture decoupling (Fig. 10);
with the identity loss (Fig. 11). Each trains with ``experiments/train.py`` into
``<output>/<variant>`` (resumable: rerunning skips finished variants), then ``ablations.json`` and
``ablations.md`` collect the validation losses and identity metric of each variant's best
checkpoint, and ``ablations.png`` shows their outputs on the first test faces. The evaluation
report (``experiments/evaluate.py --ablations=<output>``) includes them.

``--synthetic`` runs the same machinery on random data (a smoke test; tests/evaluation/test_ablations.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("records", None, "Augmented records (the default data).")
flags.DEFINE_string("records_plain", None, "Un-augmented records (--morphs_per_face=0), for the no-augmentation variant.")
flags.DEFINE_string("output", None, "Folder of the variant runs and the summary (default <workspace>/ablations).")
flags.DEFINE_integer("steps", 1500, "Training steps of every variant.")
flags.DEFINE_integer("batch_size", 32, "Batch size of every variant.")
flags.DEFINE_integer("output_size", 64, "Image size (must match the records).")
flags.DEFINE_list("variants", [], "Variants to run (default: all that the data allows).")
flags.DEFINE_bool("synthetic", False, "Smoke test on random data with a fake encoder.")
flags.DEFINE_list("extra", [], "Extra flags passed to every train.py run (e.g. --feature_hidden=256).")

TRAIN = Path(__file__).resolve().parent / "train.py"
VARIANTS = {
    "cnn (default)": [],
    "fc texture decoder": ["--texture_decoder=fc"],
    "no augmentation": [],  # other records
    "plain cnn (no decoupling)": ["--plain_cnn"],
    "identity loss": ["--identity_weight=1.0"],
}
SUMMARY_KEYS = ("validation/total", "validation/texture", "validation/landmark", "identity/within", "identity/median")


def folder_name(variant: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in variant).strip("_")


def run_variant(name: str, out: Path) -> dict:
    model_dir = out / folder_name(name)
    args = [sys.executable, str(TRAIN), f"--model_dir={model_dir}", f"--steps={FLAGS.steps}",
            f"--batch_size={FLAGS.batch_size}", f"--output_size={FLAGS.output_size}",
            f"--eval_every={max(1, FLAGS.steps // 5)}", f"--checkpoint_every={max(1, FLAGS.steps // 5)}",
            f"--log_every={max(1, FLAGS.steps // 10)}", f"--image_every={FLAGS.steps}", *VARIANTS[name], *FLAGS.extra]
    if FLAGS.synthetic:
        args += ["--synthetic", "--feature_dim=16", "--feature_hidden=32", "--landmark_hidden=16",
                 "--grid_channels=8", "--channels=8,8,8,8", "--identity_eval_examples=4"]
    else:
        records = FLAGS.records_plain if name == "no augmentation" else FLAGS.records
        args.append(f"--records_dir={records}")
    if not (model_dir / "export" / "saved_model.pb").is_file():
        subprocess.run(args, check=True)
    best = json.loads((model_dir / "best.json").read_text())
    return {"step": best.get("step"), **{k: best.get(k) for k in SUMMARY_KEYS}, "model_dir": str(model_dir)}


def output_grid(rows: dict, out: Path, count: int = 8) -> Path | None:
    """Outputs of every variant on the first ``count`` test faces (one row per variant)."""
    import numpy as np

    from normface.utils import io_utils
    from normface.utils import pictures
    from normface.data import pipeline
    from normface.serving import export_format

    faces = next(iter(pipeline.make_dataset(FLAGS.records, "test", count, shuffle=False)))
    tiles, labels = [], []
    for i in range(count):
        tiles.append((faces["image"][i].numpy() * 255).astype(np.uint8))
        labels.append("input face")
    for name, row in rows.items():
        model = export_format.load_keras(Path(row["model_dir"]) / "export")
        images = model(faces["features"], training=False)["image"].numpy()
        for i in range(count):
            tiles.append(np.clip(images[i] * 255, 0, 255).astype(np.uint8))
            labels.append(name)
    path = out / "ablations.png"
    io_utils.save_image_atomic(path, pictures.image_grid(tiles, cols=count, labels=labels))
    return path


def main(argv):
    del argv
    from normface.utils import io_utils

    if not FLAGS.synthetic and not FLAGS.records:
        raise app.UsageError("--records is required (or --synthetic)")
    variants = FLAGS.variants or [v for v in VARIANTS
                                  if v != "no augmentation" or (FLAGS.records_plain and not FLAGS.synthetic)]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise app.UsageError(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")
    from normface.utils import paths

    out = Path(FLAGS.output) if FLAGS.output else paths.workspace_dir() / "ablations"
    rows = {name: run_variant(name, out) for name in variants}
    lines = ["| variant | best step | " + " | ".join(SUMMARY_KEYS) + " |", "|---" * (len(SUMMARY_KEYS) + 2) + "|"]
    for name, row in rows.items():
        cells = [f"{row[k]:.4f}" if isinstance(row[k], float) else str(row[k]) for k in SUMMARY_KEYS]
        lines.append(f"| {name} | {row['step']} | " + " | ".join(cells) + " |")
    io_utils.write_report(out, "ablations", "\n".join(lines) + "\n", {
        "steps": FLAGS.steps, "batch_size": FLAGS.batch_size, "size": FLAGS.output_size, "rows": rows})
    if not FLAGS.synthetic:
        print(f"wrote {output_grid(rows, out)}")
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
