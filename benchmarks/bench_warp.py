"""Benchmark of the spline warp, side by side with tensorflow-addons: speed and float32 accuracy.

The workload (``benchmarks/warp_workload.py``) is the model's: batch 32, 68 landmarks plus 16
zero-flow boundary points, ``sparse_image_warp`` of order 1, under ``tf.function``, timed three
ways: forward; forward + backward (gradients w.r.t. the image and both point sets); and the
gradient of the mean warped image w.r.t. the source points alone (issue 31). Prints a table per
size, one row per way: median ms per batch for each implementation and the speed-up of normface
over the reference; and the float32 flow's largest deviation from a float64 run of the same inputs.

    python benchmarks/bench_warp.py --sizes=128,224 [--reference=/work/venv_tfa/bin/python] [--profile]

``--reference=PYTHON`` times the same workload with tensorflow-addons in that interpreter (TF 2.15
+ tensorflow-addons 0.23; docs/warp.md says how to make it), in rounds that
alternate with normface's, so a shared machine's load falls on both alike. Without it only
normface is timed. ``--profile`` adds a table of where normface's time goes at the largest size:
the kernel matrix and solve, the spline on every pixel, the bilinear resampling, the whole warp.
It uses only the public API, so it also runs against an older checkout (``PYTHONPATH``) for a
before/after comparison.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from warp_workload import TIMINGS, make_inputs, median_seconds, workload  # noqa: E402

from normface import warp  # noqa: E402
from normface.utils.tables import markdown_table  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["128", "224"], "Square image sizes to time.")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_integer("landmarks", 68, "Number of moving control points.")
flags.DEFINE_integer("boundary", 4, "num_boundary_points (4 -> 16 zero-flow points).")
flags.DEFINE_integer("repeats", 5, "Timed calls per round (after one warm-up); the median is kept.")
flags.DEFINE_integer("rounds", 2, "Alternating reference/normface rounds per size; medians over rounds.")
flags.DEFINE_integer("seed", 0, "Random seed for the synthetic landmarks.")
flags.DEFINE_string("reference", "", "Python interpreter with TF 2.15 + tensorflow-addons 0.23 (optional).")
flags.DEFINE_bool("profile", False, "Also print where normface's time goes at the largest size.")

WORKER = Path(__file__).resolve().parent / "warp_workload.py"


def reference_round(size: int) -> dict:
    """One round of the reference workload in the ``--reference`` interpreter."""
    cmd = [FLAGS.reference, str(WORKER), f"--size={size}", f"--batch={FLAGS.batch}",
           f"--landmarks={FLAGS.landmarks}", f"--boundary={FLAGS.boundary}", f"--repeats={FLAGS.repeats}",
           f"--seed={FLAGS.seed}"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"reference run failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def flow_error(size: int) -> float:
    """Largest |float32 flow - float64 flow| in pixels for the workload's inputs."""
    image, src, dst = make_inputs(size, FLAGS.batch, FLAGS.landmarks, FLAGS.seed)
    flows = []
    for dtype in (tf.float32, tf.float64):
        args = [tf.constant(a, dtype) for a in (image, src, dst)]
        _, flow = warp.sparse_image_warp(*args, interpolation_order=1, num_boundary_points=FLAGS.boundary)
        flows.append(flow.numpy().astype(np.float64))
    return float(np.abs(flows[0] - flows[1]).max())


# The rows of each size's table: the key of warp_workload.TIMINGS, and what it times.
WAYS = {
    "fwd_s": "forward",
    "fwd_bwd_s": "forward + backward (image, both point sets)",
    "src_grad_s": "gradient w.r.t. the source points only",
}


def speed_rows() -> dict:
    """Per size, a table: one row per way of WAYS, median ms per batch and the speed-up."""
    rows = {}
    ours_label = f"normface (TF {tf.__version__}) ms"
    for size in (int(s) for s in FLAGS.sizes):
        runs = workload(warp.sparse_image_warp, size, FLAGS.batch, FLAGS.landmarks, FLAGS.boundary, FLAGS.seed)
        ours, theirs = [], []
        for _ in range(FLAGS.rounds):
            if FLAGS.reference:
                theirs.append(reference_round(size))
            ours.append({key: median_seconds(run, FLAGS.repeats) for key, run in zip(TIMINGS, runs)})
        table = {}
        for key, way in WAYS.items():
            nf = float(np.median([r[key] for r in ours]))
            row = table[f"{size} {way}"] = {ours_label: 1000 * nf}
            if theirs:
                ref = float(np.median([r[key] for r in theirs]))
                label = f"tensorflow-addons (TF {theirs[0]['tensorflow']}, tfa {theirs[0]['tensorflow_addons']}) ms"
                row[label] = 1000 * ref
                row["speed-up"] = f"{ref / nf:.2f}x"
        print(markdown_table(table, "size, timed", floatfmt=".0f"))
        print(f"{size}x{size} normface float32 flow, largest error vs float64: {flow_error(size):.1e} px\n", flush=True)
        rows.update(table)
    return rows


def timed_parts(fn, *args, source: int | None = None) -> dict:
    """Forward ms and forward+backward ms (gradients w.r.t. all args) of ``fn(*args) -> tensor``;
    with ``source``, also the ms of the gradient of its mean w.r.t. ``args[source]`` alone."""
    forward = tf.function(fn)

    @tf.function
    def forward_backward(*xs):
        with tf.GradientTape() as tape:
            tape.watch(xs)
            loss = tf.reduce_sum(tf.square(fn(*xs)))
        return tape.gradient(loss, xs)

    @tf.function
    def source_gradient(*xs):
        with tf.GradientTape() as tape:
            tape.watch(xs[source])
            loss = tf.reduce_mean(fn(*xs))
        return tape.gradient(loss, xs[source])

    fwd = median_seconds(lambda: forward(*args).numpy(), FLAGS.repeats)
    bwd = median_seconds(lambda: [g.numpy() for g in forward_backward(*args)], FLAGS.repeats)
    row = {"fwd ms": 1000 * fwd, "fwd+bwd ms": 1000 * bwd, "src grad ms": ""}
    if source is not None:
        row["src grad ms"] = 1000 * median_seconds(lambda: source_gradient(*args).numpy(), FLAGS.repeats)
    return row


def profile_rows(size: int) -> dict:
    """Where the time goes, part by part, through the public API only."""
    image, src, dst = (tf.constant(a, tf.float32) for a in make_inputs(size, FLAGS.batch, FLAGS.landmarks, FLAGS.seed))
    bp = FLAGS.boundary

    def flow_of(s, d):
        return warp.sparse_image_warp(image[..., :1], s, d, 1, 0.0, bp)[1]

    flow = flow_of(src, dst)
    n = FLAGS.landmarks
    return {
        f"kernel matrix + solve ({n} points, evaluated at them)": timed_parts(
            lambda s, d: warp.interpolate_spline(d, d - s, d, 1, 0.0), src, dst, source=0),
        "spline on every pixel (solve + dense flow)": timed_parts(flow_of, src, dst, source=0),
        "bilinear resampling (dense_image_warp)": timed_parts(warp.dense_image_warp, image, flow),
        "whole warp (sparse_image_warp)": timed_parts(
            lambda im, s, d: warp.sparse_image_warp(im, s, d, 1, 0.0, bp)[0], image, src, dst, source=1),
    }


def main(argv):
    del argv
    n = FLAGS.landmarks + 4 * FLAGS.boundary
    print(f"batch {FLAGS.batch}, {n} control points ({FLAGS.landmarks} landmarks + {4 * FLAGS.boundary} boundary), "
          f"order 1, {os.cpu_count()} CPUs, {FLAGS.rounds} rounds x {FLAGS.repeats} calls\n", flush=True)
    speed_rows()
    if FLAGS.profile:
        size = max(int(s) for s in FLAGS.sizes)
        print(f"\nnormface profile at {size}x{size}:\n")
        print(markdown_table(profile_rows(size), "part", floatfmt=".0f"))


if __name__ == "__main__":
    app.run(main)
