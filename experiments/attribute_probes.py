"""Linear probes for FairFace's labelled attributes on photo features and on normalized-face
features, and the age direction ``normface explore`` ships (issue 32).

    nice -n 19 python experiments/attribute_probes.py --output=experiments/results/probes_r128 \
        --max_train=4000 [--max_test=4012] [--write_asset]

Trains on a seeded subset of the training-split FairFace photos (--max_train), scores on the
held-out test photos (all 4,012 unless --max_test). Writes report.md and results.json under
--output; --write_asset writes normface/apps/assets/age_direction.json (from the photo features).
The labels are annotators' perceptions (gender binary); see normface.evaluation.probes.
"""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Export folder of the model (default: the shipped model).")
flags.DEFINE_string("faces", None, "Face-set folder (default <workspace>/faces128).")
flags.DEFINE_string("output", "experiments/results/probes_r128", "Report folder.")
flags.DEFINE_integer("max_train", 4000, "Seeded subset of the training-split FairFace photos.")
flags.DEFINE_integer("max_test", None, "Seeded subset of the test photos (all when unset).")
flags.DEFINE_integer("seed", 0, "Seed of the subsets.")
flags.DEFINE_bool("write_asset", False, "Write normface/apps/assets/age_direction.json.")
flags.DEFINE_string("cache", None, "npz of the computed features (reused when present).")


def main(argv):
    del argv
    from pathlib import Path

    import numpy as np

    from normface.evaluation import probes
    from normface.serving.normalizer import FaceNormalizer
    from normface.utils import io_utils, paths

    start = time.time()
    faces = (Path(FLAGS.faces) if FLAGS.faces else paths.workspace_dir() / "faces128") / "aligned"
    normalizer = FaceNormalizer.from_pretrained(FLAGS.model)
    data = {}
    cache = Path(FLAGS.cache) if FLAGS.cache else None
    stored = np.load(cache, allow_pickle=True) if cache and cache.is_file() else None
    for split, limit in (("train", FLAGS.max_train), ("test", FLAGS.max_test)):
        keys, images, lms, labels = probes.load_photos(faces, split, max_photos=limit, seed=FLAGS.seed)
        print(f"{split}: {len(keys)} photos")
        if stored is not None and list(stored[f"{split}_keys"]) == keys:
            photo, output = stored[f"{split}_photo"], stored[f"{split}_output"]
        else:
            photo, output = probes.photo_and_output_features(normalizer, images, lms, log=print)
        data[split] = (keys, photo, output, labels)
    if cache:
        np.savez(cache, **{f"{s}_{k}": v for s, (keys, p, o, _) in data.items()
                           for k, v in (("keys", np.array(keys)), ("photo", p), ("output", o))})
    (_, tr_p, tr_o, tr_lab), (_, te_p, te_o, te_lab) = data["train"], data["test"]
    names = {"photo": "photo features", "normalized": "normalized-face features"}
    table = probes.probe_table({"photo": tr_p, "normalized": tr_o}, tr_lab, {"photo": te_p, "normalized": te_o},
                               te_lab)
    direction = probes.age_direction(tr_p, tr_lab)
    ages = {}
    for name, (x_tr, x_te) in {"photo": (tr_p, te_p), "normalized": (tr_o, te_o)}.items():
        scale = probes.Standardizer(x_tr)
        mids = np.array([probes.AGE_MIDPOINTS[lab["age_group"]] for lab in tr_lab])
        w, c = probes.fit_ridge(scale(x_tr), mids)
        ages[name] = probes.age_mae((scale, w, c), x_te, te_lab)
    results = {"train_photos": len(tr_lab), "test_photos": len(te_lab), "seed": FLAGS.seed, "note": probes.PERCEIVED,
               "probes": table, "age_ridge_test_mae_years": ages,
               "minutes": round((time.time() - start) / 60, 1)}
    out = Path(FLAGS.output)
    out.mkdir(parents=True, exist_ok=True)
    io_utils.write_bytes_atomic(out / "results.json", json.dumps(results, indent=1).encode())
    text = ("# Attribute probes on the encoder's features (issue 32)\n\n"
            f"Model: {FLAGS.model or 'the shipped model'}. Linear (multinomial logistic) probes trained on "
            f"{len(tr_lab)} training-split FairFace photos (seeded subset, seed {FLAGS.seed}) and scored on "
            f"{len(te_lab)} held-out FairFace test photos: on the dlib features of each photo, and on the features "
            "of its normalized face (the output re-encoded). Per group: the share of that group's test photos the "
            "probe labels correctly (groups with 20+ photos). "
            f"{results['minutes']} min on CPU.\n\n" + probes.markdown(table, names)
            + f"\n\nAge as a number (ridge on the age groups' midpoints, test mean absolute error in years): photo "
              f"features {ages['photo']:.1f}, normalized-face features {ages['normalized']:.1f}.\n")
    io_utils.write_bytes_atomic(out / "report.md", text.encode())
    if FLAGS.write_asset:
        asset = Path(__file__).resolve().parents[1] / "normface" / "apps" / "assets" / "age_direction.json"
        asset.parent.mkdir(parents=True, exist_ok=True)
        direction.update({"attribute": "age", "units": "years of perceived age (FairFace age-group midpoints)",
                          "model": FLAGS.model or "shipped", "generated_by": "experiments/attribute_probes.py",
                          "note": probes.PERCEIVED})
        io_utils.write_bytes_atomic(asset, json.dumps(direction).encode())
        print(f"wrote {asset}")
    print(text)


if __name__ == "__main__":
    app.run(main)
