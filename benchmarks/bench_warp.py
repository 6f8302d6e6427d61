"""Benchmark of the spline warp: speed (forward, forward+backward) and float32 accuracy.

Prints one table row per (size, XLA) setting: milliseconds per batch for the forward warp and for
forward+backward (gradients w.r.t. image and landmarks), and the float32 flow's largest deviation
from a float64 run of the same inputs. The workload is the model's: batch 32, 68 landmarks moved by
a few pixels plus 16 zero-flow boundary points (84 control points).

    python benchmarks/bench_warp.py --sizes=128,224 --repeats=5 [--fused=on,off]

"XLA" is whether the caller compiles the whole graph (``jit_compile``); "fused" is whether the
warp's own inner kernels run XLA-compiled (the default; ``warp.set_fused_kernels``).

The retired tensorflow-addons warp took ~0.27 s (128) and ~0.87 s (224) forward+backward on this
project's 2-core machines, with ~0.6 px float32 flow error at 224.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from normface import warp  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["128", "224"], "Square image sizes to time.")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_integer("landmarks", 68, "Number of moving control points.")
flags.DEFINE_integer("boundary", 4, "num_boundary_points (4 -> 16 zero-flow points).")
flags.DEFINE_integer("repeats", 5, "Timed repeats (after one warm-up); the median is reported.")
flags.DEFINE_list("xla", ["off", "on"], "Run without and/or with jit_compile.")
flags.DEFINE_integer("seed", 0, "Random seed for the synthetic landmarks.")
flags.DEFINE_list("fused", ["on"], "Inner XLA-fused kernels on and/or off (warp.set_fused_kernels).")


def make_inputs(size: int, batch: int, landmarks: int, seed: int):
    """Face-like landmarks in the central 60% of the image, moved by up to ~3% of the size."""
    rng = np.random.default_rng(seed)
    src = rng.uniform(0.2 * size, 0.8 * size, size=(batch, landmarks, 2))
    dst = src + rng.normal(0.0, 0.015 * size, size=src.shape)
    image = rng.uniform(0.0, 1.0, size=(batch, size, size, 3))
    return image, src, dst


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: tracing and compilation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def bench(size: int, jit: bool, fused: bool) -> dict:
    warp.set_fused_kernels(fused)
    image, src, dst = make_inputs(size, FLAGS.batch, FLAGS.landmarks, FLAGS.seed)
    image32, src32, dst32 = (tf.constant(a, tf.float32) for a in (image, src, dst))

    @tf.function(jit_compile=jit)
    def forward(im, s, d):
        return warp.warp_to_landmarks(im, s, d, num_boundary_points=FLAGS.boundary)

    @tf.function(jit_compile=jit)
    def forward_backward(im, s, d):
        with tf.GradientTape() as tape:
            tape.watch([im, d])
            out, _ = warp.warp_to_landmarks(im, s, d, num_boundary_points=FLAGS.boundary)
            loss = tf.reduce_sum(tf.square(out))
        return tape.gradient(loss, [im, d])

    fwd_ms = median_ms(lambda: forward(image32, src32, dst32)[0].numpy(), FLAGS.repeats)
    bwd_ms = median_ms(lambda: [g.numpy() for g in forward_backward(image32, src32, dst32)], FLAGS.repeats)
    _, flow32 = forward(image32, src32, dst32)
    _, flow64 = warp.warp_to_landmarks(
        tf.constant(image), tf.constant(src), tf.constant(dst), num_boundary_points=FLAGS.boundary
    )
    err = float(np.abs(flow32.numpy().astype(np.float64) - flow64.numpy()).max())
    return dict(size=size, xla="on" if jit else "off", fused="on" if fused else "off", fwd=fwd_ms,
                fwd_bwd=bwd_ms, err=err)


def main(argv):
    del argv
    n = FLAGS.landmarks + 4 * FLAGS.boundary
    print(f"batch {FLAGS.batch}, {n} control points ({FLAGS.landmarks} landmarks + {4 * FLAGS.boundary} boundary), "
          f"{os.cpu_count()} CPUs, TensorFlow {tf.__version__}")
    print(f"{'size':>5} {'XLA':>4} {'fused':>6} {'fwd ms':>9} {'fwd+bwd ms':>11} {'f32 flow err px':>16}")
    for size in (int(s) for s in FLAGS.sizes):
        for fused in FLAGS.fused:
            for mode in FLAGS.xla:
                row = bench(size, mode == "on", fused == "on")
                print(f"{row['size']:>5} {row['xla']:>4} {row['fused']:>6} {row['fwd']:>9.1f} "
                      f"{row['fwd_bwd']:>11.1f} {row['err']:>16.2e}", flush=True)


if __name__ == "__main__":
    app.run(main)
