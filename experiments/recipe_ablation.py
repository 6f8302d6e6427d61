"""The training-recipe ablation (issue 17) at 64x64: which additions generalize to new people.

    python experiments/recipe_ablation.py --records=workspace/records128m --pairs=workspace/pairs128 \
        --output=workspace/recipe --results=experiments/results/recipe64 [--variants=baseline,pairs]

Every variant trains the same small 64x64 decoder (from the 128x128 records, read at 64) for the
same budget (``--steps`` of ``--batch_size``, one seed) with ``experiments/train.py`` into
``<output>/<variant>``; finished variants are skipped, interrupted ones resume. Each is then scored
by :mod:`normface.evaluation.recipe` on the validation people (cross-photo and own identity,
sharpness) and the held-out London people (smiling -> neutral), plus its best checkpoint's
validation texture L1. ``<results>/recipe.md`` and ``recipe.json`` hold the table, the budget and
the seed; ``recipe.png`` shows each variant's outputs for held-out London people only (never LFW
faces in committed figures).

Variants: ``baseline`` (today's losses: landmark MSE + texture L1), ``pairs`` (+ invariance
pairs), ``mirror`` (+ the mirror augmentation: records with mirrored features), ``perceptual``
(+ the perceptual loss), ``discriminator`` (+ the patch discriminator) and ``chosen:<a+b>``
(each combination of ``--chosen``, e.g. ``chosen:pairs+mirror``).
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
flags.DEFINE_string("records", None, "Main records (128x128; with mirrored features for the mirror variant).")
flags.DEFINE_string("pairs", None, "Invariance-pair records (data_prep/build_pairs.py).")
flags.DEFINE_string("faces", None, "Faces folder of stage 1 (its aligned/ holds the validation and London photos).")
flags.DEFINE_string("output", None, "Folder of the variant runs.")
flags.DEFINE_string("results", "experiments/results/recipe64", "Where the table and the picture go.")
flags.DEFINE_list("variants", [], "Variants to run (default: all).")
flags.DEFINE_list("chosen", ["pairs+mirror", "pairs+mirror+perceptual"], "Combinations of additions to train as 'chosen' variants "
                  "(each a '+'-joined list, e.g. pairs+mirror,pairs+mirror+perceptual).")
flags.DEFINE_integer("steps", 3000, "Training steps of every variant.")
flags.DEFINE_integer("batch_size", 32, "Batch size of every variant.")
flags.DEFINE_integer("seed", 0, "Seed of every variant.")
flags.DEFINE_integer("size", 64, "Output size of every variant.")
flags.DEFINE_float("pairs_ratio", 0.25, "Share of invariance pairs in the pairs variant.")
flags.DEFINE_float("perceptual_weight", 0.2, "Perceptual loss weight of the perceptual variant (a sigma-2 blur of a "
                   "128 px face costs ~0.43 before weighting, another person ~0.81; texture L1 is ~0.16).")
flags.DEFINE_float("adversarial_weight", 0.02, "Adversarial weight of the discriminator variant.")
flags.DEFINE_string("judge", "default", "The independent identity judge scoring every row (a .tflite path, 'default' or "
                    "'none'; normface.encoders.judge).")
flags.DEFINE_list("model", ["--feature_hidden=512", "--grid_channels=128", "--channels=64,32,32,16"],
                  "Model flags of every variant (a small decoder, as the issue's probe).")

TRAIN = Path(__file__).resolve().parent / "train.py"
ADDITIONS = ("pairs", "mirror", "perceptual", "discriminator")
SHORT = {"pairs": "pairs", "mirror": "mir", "perceptual": "perc", "discriminator": "disc"}
RESULT_KEYS = ("cross_within_0.6", "cross_TAR@FAR0.1%", "cross_TAR@FAR1.0%", "rank1", "own_within_0.6",
               "judge_cross_TAR@FAR0.1%_balanced", "judge_distinctiveness", "validation_texture_l1", "sharpness_ratio",
               "grid_ratio_max", "london_landmark_error_iod", "london_pixel_l1")


def addition_flags(name: str) -> list[str]:
    """train.py flags of one addition."""
    return {
        "pairs": [f"--pairs_dir={FLAGS.pairs}", f"--pairs_ratio={FLAGS.pairs_ratio}"],
        "mirror": ["--mirror"],
        # The encoder's bfloat16 pass halves its CPU time (descriptors move by ~0.01).
        "perceptual": [f"--perceptual_weight={FLAGS.perceptual_weight}", "--encoder_dtype=bfloat16"],
        "discriminator": [f"--adversarial_weight={FLAGS.adversarial_weight}"],
    }[name]


def combo_parts(name: str) -> list[str]:
    """The additions of a ``chosen:a+b`` variant."""
    return name.split(":", 1)[1].split("+")


def variant_flags(name: str) -> list[str]:
    if name == "baseline":
        return []
    if name.startswith("chosen:"):
        return [f for part in combo_parts(name) for f in addition_flags(part)]
    return addition_flags(name)


def folder_name(name: str) -> str:
    """``<output>/<folder>`` of a variant (``chosen:pairs+mirror`` -> ``chosen_pairs_mirror``)."""
    return name.replace(":", "_").replace("+", "_")


def train_variant(name: str, out: Path) -> Path:
    model_dir = out / folder_name(name)
    if not (model_dir / "export" / "saved_model.pb").is_file():
        interval = max(1, FLAGS.steps // 6)
        args = [sys.executable, str(TRAIN), f"--records_dir={FLAGS.records}", f"--model_dir={model_dir}",
                f"--output_size={FLAGS.size}", f"--steps={FLAGS.steps}", f"--batch_size={FLAGS.batch_size}",
                f"--seed={FLAGS.seed}", f"--eval_every={interval}", f"--checkpoint_every={interval}",
                "--log_every=100", f"--image_every={FLAGS.steps}", *FLAGS.model, *variant_flags(name)]
        subprocess.run(args, check=True)
    return model_dir


def main(argv):
    del argv

    from normface.data import build, faceset
    from normface.evaluation import recipe
    from normface.serving import export_format
    from normface.utils import io_utils, paths, pictures
    from normface.utils.tables import markdown_table

    if not FLAGS.records:
        raise app.UsageError("--records is required")
    chosen = [f"chosen:{combo}" for combo in FLAGS.chosen]
    variants = [f"chosen:{v[7:]}" if v.startswith("chosen:") else v for v in FLAGS.variants] or [
        "baseline", *ADDITIONS, *chosen]
    unknown = {v for v in variants if v not in ("baseline", *ADDITIONS) and not v.startswith("chosen:")}
    unknown |= {part for v in variants if v.startswith("chosen:") for part in combo_parts(v) if part not in ADDITIONS}
    if unknown:
        raise app.UsageError(f"unknown variants or additions {sorted(unknown)}; choose from baseline, "
                             f"{', '.join(ADDITIONS)}, chosen:<a+b>")
    uses_pairs = any(v == "pairs" or (v.startswith("chosen:") and "pairs" in combo_parts(v)) for v in variants)
    if not FLAGS.pairs and uses_pairs:
        raise app.UsageError("the pairs variant needs --pairs")
    out = Path(FLAGS.output) if FLAGS.output else paths.workspace_dir() / "recipe"
    faces = Path(FLAGS.faces) if FLAGS.faces else paths.workspace_dir() / "faces128"
    runs = {name: train_variant(name, out) for name in variants}

    encode_fn = build.encode_fn_for("dlib")
    aligned = faceset.aligned_dir(faces)
    from normface.encoders import judge as judge_lib

    judge = judge_lib.judge_from_flag(FLAGS.judge)
    validation = recipe.load_held_out(aligned, encode_fn, "validation", "lfw/")
    if judge is not None:
        validation = recipe.with_judge(validation, judge)
    london = recipe.load_held_out(aligned, encode_fn, "test", "london/")
    rows, grid, labels = {}, [], []
    s_idx, _ = recipe.report.london_expression_pairs(london.photos)
    shown = s_idx[:6]
    small, _ = recipe.resize_faces(london.photos.images[shown], london.photos.landmarks[shown], FLAGS.size)
    grid += list(small)
    labels += ["smiling input"] * len(shown)
    for name, model_dir in runs.items():
        model = export_format.load_keras(model_dir / "export")
        best = json.loads((model_dir / "best.json").read_text())
        row = recipe.score_model(model, validation, encode_fn, london, judge=judge)
        row["validation_texture_l1"] = best.get("validation/texture")
        row["best_step"] = best.get("step")
        rows[name] = row
        images, _ = recipe.decode(model, london.features[shown])
        grid += list(images)
        label = "+".join(SHORT[p] for p in combo_parts(name)) if name.startswith("chosen:") else name
        labels += [label] * len(shown)
        print(name, {k: row.get(k) for k in RESULT_KEYS}, flush=True)

    results = Path(FLAGS.results)
    budget = {"steps": FLAGS.steps, "batch_size": FLAGS.batch_size, "seed": FLAGS.seed, "size": FLAGS.size,
              "model": FLAGS.model, "records": FLAGS.records, "pairs": FLAGS.pairs, "pairs_ratio": FLAGS.pairs_ratio,
              "perceptual_weight": FLAGS.perceptual_weight, "adversarial_weight": FLAGS.adversarial_weight,
              "chosen": FLAGS.chosen, "flags": {n: variant_flags(n) for n in variants}}
    table = markdown_table({name: {"best step": row.get("best_step"), **{k: row.get(k) for k in RESULT_KEYS}}
                            for name, row in rows.items()}, first="variant")
    text = (f"# Recipe ablation at {FLAGS.size}x{FLAGS.size}\n\nBudget per run: {FLAGS.steps} steps of {FLAGS.batch_size}, "
            f"seed {FLAGS.seed}, model flags {' '.join(FLAGS.model)}. Scored on "
            f"{rows[variants[0]]['validation_photos']} photos of {rows[variants[0]]['validation_people']} validation "
            f"people and {rows[variants[0]].get('london_people', 0)} held-out London people.\n\n{table}\n")
    io_utils.write_report(results, "recipe", text, {"budget": paths.portable_values(budget), "rows": rows})
    io_utils.save_image_atomic(results / "recipe.png", pictures.image_grid(grid, cols=len(shown), labels=labels, tile=96))
    print(text)


if __name__ == "__main__":
    app.run(main)
