"""Benchmark of the records stage: augmentation throughput and tf.data input throughput.

Prints one table: per image size, the seconds to factorize the compositing system once, then
examples per second for (1) the gradient-domain composite alone, (2) morph + composite + warp back
(``Morpher.render``, batches of 32, the warp batched in TF) and (3) the full record (2 + PNG
encoding + tf.train.Example serialization), and (4) tf.data examples/second feeding a no-op model
(``make_dataset``: interleave, parse, PNG decode, flips, batch 32, prefetch) from records written
to a temporary folder. Synthetic faces (``synthetic.synthetic_faces``); no encoder.

    python benchmarks/bench_records.py --sizes=128,224 --morphs=64 --batches=30

Run it on the 2-core machines docs/benchmarks.md quotes, with nothing else running.
"""

from __future__ import annotations

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from normface.faces.alignment import AlignmentTemplate  # noqa: E402
from normface.data import composite, morph, pipeline  # noqa: E402
from normface.data import decompose
from normface.testing import synthetic
from normface.data import build
from normface.data.faceset import FaceEntry  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["128", "224"], "Square image sizes.")
flags.DEFINE_integer("faces", 16, "Synthetic seed faces.")
flags.DEFINE_integer("morphs", 64, "Morphs timed per size (after one warm-up batch).")
flags.DEFINE_integer("batches", 30, "tf.data batches timed (after warm-up).")
flags.DEFINE_integer("batch_size", 32, "tf.data batch size.")


def _rate(count: int, fn) -> float:
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def bench_size(size: int) -> dict:
    template = AlignmentTemplate.for_size(size)
    images, marks = synthetic.synthetic_faces(FLAGS.faces, template, seed=0)
    mean = decompose.mean_landmarks(marks, size)
    textures = decompose.to_texture(images / 255.0, marks, mean)
    start = time.perf_counter()
    compositor = composite.Compositor.for_landmarks(mean, size)
    factor_s = time.perf_counter() - start
    morpher = morph.Morpher(images, marks, textures, mean, compositor)
    neighbours = morph.nearest_neighbours(sum(morph.distance_terms(marks, textures)), 4)
    plan = morph.plan_examples(len(images), neighbours, FLAGS.morphs, np.random.default_rng(0),
                               include_originals=False)
    n = len(plan)
    comp_rate = _rate(n, lambda: [compositor(textures[plan.seed[i]], textures[plan.neighbour[i]]) for i in range(n)])

    def render():
        for s in range(0, n, build.RENDER_BATCH):
            morpher.render(plan.slice(slice(s, s + build.RENDER_BATCH)))

    morpher.render(plan.slice(slice(0, build.RENDER_BATCH)))  # warm-up: trace the warp
    render_rate = _rate(n, render)

    def full():
        fake_faces = build.SplitFaces([faceset_entry(i) for i in range(len(images))], images, marks, textures)
        for ex in build.iter_examples(fake_faces, plan, morpher, build.no_encoder):
            ex.SerializeToString()

    full_rate = _rate(n, full)
    return {"size": size, "factor_s": factor_s, "composite": comp_rate, "render": render_rate,
            "record": full_rate, "tfdata": bench_tfdata(size)}


def faceset_entry(i: int) -> FaceEntry:
    return FaceEntry(person=f"synthetic/{i}", split="train", landmarks=np.zeros((68, 2)).tolist(), photos=[])


def bench_tfdata(size: int) -> float:
    """Examples/second of make_dataset (shuffle, flips, batch) into a no-op model step."""
    with tempfile.TemporaryDirectory() as tmp:
        faces = os.path.join(tmp, "faces")
        synthetic.write_synthetic_faceset(faces, size, {"train": FLAGS.faces, "validation": 0, "test": 0})
        config = build.BuildConfig(morphs_per_face=3, shard_size=16, k=4)
        build.build_records(faces, os.path.join(tmp, "rec"), config, splits=["train"], log=lambda _: None)
        ds = pipeline.make_dataset(os.path.join(tmp, "rec"), "train", FLAGS.batch_size, flip=True,
                                   repeat=True, drop_remainder=True, seed=0)

        @tf.function
        def noop_model(batch):
            # Touches every tensor so nothing is optimized away; no compute worth timing.
            return tf.add_n([tf.reduce_sum(batch[k][:, :1]) for k in ("image", "texture", "landmarks")])

        it = iter(ds)
        for _ in range(3):
            noop_model(next(it))
        return _rate(FLAGS.batches * FLAGS.batch_size, lambda: [noop_model(next(it)) for _ in range(FLAGS.batches)])


def main(argv):
    del argv
    rows = [bench_size(int(s)) for s in FLAGS.sizes]
    print(f"CPU cores visible: {os.cpu_count()}; synthetic faces: {FLAGS.faces}; morphs timed: {FLAGS.morphs}")
    print("| size | factorize (s, once) | composites/s | morph+composite+warp/s | full records/s | tf.data examples/s (no-op model) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['factor_s']:.2f} | {r['composite']:.1f} | {r['render']:.1f} | {r['record']:.1f} | {r['tfdata']:.0f} |")


if __name__ == "__main__":
    app.run(main)
