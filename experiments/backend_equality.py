"""The LiteRT path's faces against the TensorFlow path's on LFW View 1 test photos (issue 31).

    nice -n 19 python experiments/backend_equality.py [--photos=50] [--output=experiments/results/litert_equality]

Normalizes --photos LFW photos of test people (a seeded draw, one photo per person;
normface.evaluation.backends) end to end with both backends of the shipped model (or --model, a
packed model with LiteRT files) and writes results.json and report.md under --output: the 99th
percentile per-pixel grey difference (acceptance <= 1) and the largest landmark difference
(<= 0.05 px). Numbers and photo names only: no LFW image leaves the data folder. Exit status 1
when a criterion fails.
"""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Packed model with LiteRT files (default: the shipped model).")
flags.DEFINE_integer("photos", 50, "LFW test photos to compare.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the draw of people and photos.")
flags.DEFINE_string("output", "experiments/results/litert_equality", "Report folder.")


def main(argv):
    del argv
    from pathlib import Path

    from normface.evaluation import backends
    from normface.serving.normalizer import FaceNormalizer
    from normface.utils import io_utils, paths

    start = time.time()
    root = paths.require_data_dir()
    files = backends.lfw_test_photos(root, FLAGS.photos, FLAGS.seed)
    photos = [io_utils.read_rgb(f) for f in files]
    lite = FaceNormalizer.from_pretrained(FLAGS.model, backend="litert")
    tensorflow = FaceNormalizer.from_pretrained(FLAGS.model, backend="tensorflow")
    results = backends.compare_backends(lite, tensorflow, photos)
    results.update(model=FLAGS.model or "the shipped model", seed=FLAGS.seed,
                   photo_names=[f.relative_to(root / "lfw").as_posix() for f in files],
                   minutes=round((time.time() - start) / 60, 1))
    out = Path(FLAGS.output)
    out.mkdir(parents=True, exist_ok=True)
    io_utils.write_bytes_atomic(out / "results.json", (json.dumps(results, indent=1) + "\n").encode())
    text = ("# The LiteRT path against the TensorFlow path on LFW test photos (issue 31)\n\n"
            f"{results['photos']} LFW View 1 test photos (one per person, seed {FLAGS.seed}; their names in "
            f"results.json), {results['faces']} faces, normalized end to end by {results['model']} on both "
            f"backends (`python experiments/backend_equality.py --photos={FLAGS.photos}`). Grey levels 0-255, "
            "differences over every pixel and channel of every output face. "
            f"{'Both criteria met.' if results['pass'] else 'A criterion FAILED.'}\n\n"
            + backends.markdown(results) + "\n")
    io_utils.write_bytes_atomic(out / "report.md", text.encode())
    print(text)
    return 0 if results["pass"] else 1


if __name__ == "__main__":
    app.run(main)
