"""Measures the merged face (normface.serving.merge) against single-photo outputs with the
independent judge, on LFW View 1 test people with 4+ photos (issue 32).

    nice -n 19 python experiments/merge_eval.py --output=experiments/results/merge_r128 [--max_people=60]

Writes report.md and results.json under --output (no LFW faces: those stay in the workspace,
--samples_dir writes a sheet of them there). --max_people takes a seeded subset of the people.
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
flags.DEFINE_string("output", "experiments/results/merge_r128", "Report folder.")
flags.DEFINE_string("samples_dir", None, "Also write a sheet of LFW photos | singles | merged faces here.")
flags.DEFINE_integer("max_people", None, "A seeded subset of the people (all when unset).")
flags.DEFINE_integer("seed", 0, "Seed of the photo choice, the subset and the bootstrap.")
flags.DEFINE_integer("bootstrap", 2000, "Bootstrap resamples of people.")


def main(argv):
    del argv
    from pathlib import Path

    import numpy as np

    from normface.encoders import judge as judge_lib
    from normface.evaluation import merge_eval, protocol
    from normface.serving.normalizer import FaceNormalizer
    from normface.utils import io_utils, paths

    start = time.time()
    faces = Path(FLAGS.faces) if FLAGS.faces else paths.workspace_dir() / "faces128"
    photos = protocol.load_test_photos(faces / "aligned", "lfw/", max_people=FLAGS.max_people, seed=FLAGS.seed,
                                       min_photos=merge_eval.PHOTOS_PER_PERSON)
    results = merge_eval.evaluate(FaceNormalizer.from_pretrained(FLAGS.model), judge_lib.load_judge(), photos,
                                  seed=FLAGS.seed, n_boot=FLAGS.bootstrap)
    samples = results.pop("samples")
    results["subset"] = (f"seeded subset of {FLAGS.max_people} people (seed {FLAGS.seed})" if FLAGS.max_people
                         else "all test people with 4+ photos")
    results["minutes"] = round((time.time() - start) / 60, 1)
    out = Path(FLAGS.output)
    out.mkdir(parents=True, exist_ok=True)
    io_utils.write_bytes_atomic(out / "results.json", json.dumps(results, indent=1).encode())
    text = ("# Merging several photos of a person into one face (issue 32)\n\n"
            f"Model: {FLAGS.model or 'the shipped model'}; {results['subset']}; {results['minutes']} min on CPU.\n"
            "`merged (mean)` averages the three photos' dlib features; `merged (agreement)` weighs each by "
            "exp(-(d/0.6)^2), d its dlib descriptor distance to the other two (weights "
            f"{results['agreement_weights']['min']:.2f}-{results['agreement_weights']['max']:.2f} of 1). "
            "`single photo`: each of the three photos' own output; `real photo (ceiling)`: the three photos "
            "themselves.\n\n" + merge_eval.markdown(results) + "\n")
    io_utils.write_bytes_atomic(out / "report.md", text.encode())
    if FLAGS.samples_dir:
        rows = [np.concatenate([np.concatenate(list(samples[k][p]), 1) for k in ("photos", "single", "merged")], 1)
                for p in range(len(samples["people"]))]
        Path(FLAGS.samples_dir).mkdir(parents=True, exist_ok=True)
        io_utils.save_image_atomic(Path(FLAGS.samples_dir) / "merge_samples.png", np.concatenate(rows, 0))
    print(text)


if __name__ == "__main__":
    app.run(main)
