"""The warp benchmark's workload, shared by normface and the tensorflow-addons reference.

Imports only numpy and TensorFlow, never normface: ``bench_warp.py --reference=PYTHON`` runs this
file as a script under a second interpreter (TF 2.15 + tensorflow-addons 0.23), which prints one
JSON line of timings; ``bench_warp.py`` itself times normface with the same functions.

    PYTHON benchmarks/warp_workload.py --size=224 --batch=32 --landmarks=68 --boundary=4 --repeats=5

The workload is the model's: batch 32, 68 landmarks moved by a few pixels plus 16 zero-flow
boundary points (84 control points), ``sparse_image_warp`` with order 1, all under
``tf.function``, three ways:

- forward;
- forward + backward: the gradients of a loss on the warped image w.r.t. the image, the source and
  the destination points;
- the gradient of the mean warped image w.r.t. the source points alone (issue 31: what fitting
  landmarks through a fixed image asks; an implementation that computes the other gradients
  anyway pays for them here).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def make_inputs(size: int, batch: int, landmarks: int, seed: int = 0):
    """float64 ``(image [b, s, s, 3], src [b, n, 2], dst [b, n, 2])``: face-like (row, col)
    landmarks in the central 60% of the image, moved by ~1.5% of the size."""
    rng = np.random.default_rng(seed)
    src = rng.uniform(0.2 * size, 0.8 * size, size=(batch, landmarks, 2))
    dst = src + rng.normal(0.0, 0.015 * size, size=src.shape)
    image = rng.uniform(0.0, 1.0, size=(batch, size, size, 3))
    return image, src, dst


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up (tracing)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def workload(sparse_image_warp, size: int, batch: int, landmarks: int, boundary: int, seed: int = 0):
    """``(forward, forward_backward, source_gradient)`` zero-argument callables on float32 inputs,
    for any implementation of tensorflow-addons' ``sparse_image_warp`` signature."""
    image, src, dst = (tf.constant(a, tf.float32) for a in make_inputs(size, batch, landmarks, seed))

    def warp(im, s, d):
        return sparse_image_warp(im, s, d, interpolation_order=1, num_boundary_points=boundary)[0]

    @tf.function
    def forward(im, s, d):
        return warp(im, s, d)

    @tf.function
    def forward_backward(im, s, d):
        with tf.GradientTape() as tape:
            tape.watch([im, s, d])
            loss = tf.reduce_sum(tf.square(warp(im, s, d)))
        return tape.gradient(loss, [im, s, d])

    @tf.function
    def source_gradient(im, s, d):
        with tf.GradientTape() as tape:
            tape.watch(s)  # the source points only: the image and the destination points are constants
            loss = tf.reduce_mean(warp(im, s, d))
        return tape.gradient(loss, s)

    def run_forward():
        return forward(image, src, dst).numpy()

    def run_forward_backward():
        return [g.numpy() for g in forward_backward(image, src, dst)]

    def run_source_gradient():
        return source_gradient(image, src, dst).numpy()

    return run_forward, run_forward_backward, run_source_gradient


# The timed callables of ``workload``, in its order, by the keys of the JSON line and of bench_warp.py.
TIMINGS = ("fwd_s", "fwd_bwd_s", "src_grad_s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--landmarks", type=int, default=68)
    parser.add_argument("--boundary", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import tensorflow_addons as tfa  # the reference; only this interpreter has it

    runs = workload(tfa.image.sparse_image_warp, args.size, args.batch, args.landmarks, args.boundary, args.seed)
    timings = {key: median_seconds(run, args.repeats) for key, run in zip(TIMINGS, runs)}
    print(json.dumps({**timings, "tensorflow": tf.__version__, "tensorflow_addons": tfa.__version__}))


if __name__ == "__main__":
    main()
