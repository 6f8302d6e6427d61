"""End-to-end speed of ``normface normalize`` on CPU, per stage.

    python benchmarks/bench_normalize.py --photos=200

On the first --photos LFW photos (sorted), times: reading, detection + 68 landmarks + alignment,
the networks (chip + encoder + decoder + warp + encoding the output for the confidence), the
decoder + warp alone on stored features, and writing the PNGs; prints faces/second for each and
for the whole pipeline, and which stage dominates.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from normface.utils import io_utils
from normface.utils import paths
from normface.serving.normalizer import FaceNormalizer  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("photos", 200, "LFW photos to normalize.")
flags.DEFINE_integer("batch_size", 16, "Faces per network batch.")
flags.DEFINE_string("model", None, "Model (default: the shipped one).")


def main(argv):
    del argv
    import tensorflow as tf

    files = sorted((paths.require_data_dir() / "lfw").glob("*/*.jpg"))[: FLAGS.photos]
    normalizer = FaceNormalizer.from_pretrained(FLAGS.model)
    times = {}
    start = time.perf_counter()
    photos = [io_utils.read_rgb(f) for f in files]
    times["read"] = time.perf_counter() - start
    start = time.perf_counter()
    prepared = [normalizer.align(p) for p in photos]
    times["detect + landmarks + align"] = time.perf_counter() - start
    faces = [p[0] for p in prepared if p]
    aligned = np.stack([f[0] for f in faces])
    landmarks = np.stack([f[1] for f in faces])
    bs = FLAGS.batch_size
    normalizer.normalize_aligned(aligned[:bs], landmarks[:bs])  # warm-up (tracing)
    start = time.perf_counter()
    outs = [normalizer.normalize_aligned(aligned[i:i + bs], landmarks[i:i + bs]) for i in range(0, len(faces), bs)]
    times["chip + encoder + decoder + warp + confidence"] = time.perf_counter() - start
    features = np.concatenate([o["features"] for o in outs])
    decode = tf.function(lambda f: normalizer.model(f, training=False))
    decode(tf.constant(features[:bs]))
    start = time.perf_counter()
    for i in range(0, len(faces), bs):
        decode(tf.constant(features[i:i + bs]))["image"].numpy()
    times["decoder + warp alone"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for i, img in enumerate(np.concatenate([o["image"] for o in outs])):
            io_utils.save_image_atomic(Path(tmp) / f"{i}.png", img)
        times["write PNG"] = time.perf_counter() - start
    n = len(faces)
    pipeline = sum(v for k, v in times.items() if k != "decoder + warp alone")
    print(f"{len(files)} LFW photos, {n} faces, batch {bs}, {os.cpu_count()} CPUs")
    print(f"{'stage':<46} {'s':>7} {'faces/s':>8}")
    for name, seconds in times.items():
        print(f"{name:<46} {seconds:>7.2f} {n / seconds:>8.1f}")
    print(f"{'end to end (all but the decoder-alone row)':<46} {pipeline:>7.2f} {n / pipeline:>8.1f}")
    slowest = max((k for k in times if k != "decoder + warp alone"), key=times.get)
    print(f"dominant stage: {slowest} ({100 * times[slowest] / pipeline:.0f}% of the time)")


if __name__ == "__main__":
    app.run(main)
