"""Benchmark of the spline warp, side by side with tensorflow-addons: speed and float32 accuracy.

The workload (``benchmarks/warp_workload.py``) is the model's: batch 32, 68 landmarks plus 16
zero-flow boundary points, ``sparse_image_warp`` of order 1, forward and forward + backward
(gradients w.r.t. the image and both point sets), under ``tf.function``. Prints a table: median ms
per batch, the float32 flow's largest deviation from a float64 run of the same inputs, and the
speed-up of normface over the reference.

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
from warp_workload import make_inputs, median_seconds, workload  # noqa: E402

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


def speed_rows() -> dict:
    rows = {}
    for size in (int(s) for s in FLAGS.sizes):
        fwd, fwd_bwd = workload(warp.sparse_image_warp, size, FLAGS.batch, FLAGS.landmarks, FLAGS.boundary, FLAGS.seed)
        ours, theirs = [], []
        for _ in range(FLAGS.rounds):
            if FLAGS.reference:
                theirs.append(reference_round(size))
            ours.append({"fwd_s": median_seconds(fwd, FLAGS.repeats), "fwd_bwd_s": median_seconds(fwd_bwd, FLAGS.repeats)})
        nf = {k: float(np.median([r[k] for r in ours])) for k in ("fwd_s", "fwd_bwd_s")}
        rows[f"{size} normface (TF {tf.__version__})"] = {
            "fwd ms": 1000 * nf["fwd_s"], "fwd+bwd ms": 1000 * nf["fwd_bwd_s"],
            "f32 flow err px": f"{flow_error(size):.1e}", "fwd+bwd speed-up": "",
        }
        if theirs:
            ref = {k: float(np.median([r[k] for r in theirs])) for k in ("fwd_s", "fwd_bwd_s")}
            label = f"TF {theirs[0]['tensorflow']}, tfa {theirs[0]['tensorflow_addons']}"
            rows[f"{size} tensorflow-addons ({label})"] = {
                "fwd ms": 1000 * ref["fwd_s"], "fwd+bwd ms": 1000 * ref["fwd_bwd_s"], "f32 flow err px": "",
                "fwd+bwd speed-up": "",
            }
            rows[f"{size} normface (TF {tf.__version__})"]["fwd+bwd speed-up"] = f"{ref['fwd_bwd_s'] / nf['fwd_bwd_s']:.2f}x"
        print(markdown_table({k: v for k, v in rows.items() if k.startswith(str(size))}, "size, implementation",
                             floatfmt=".0f"), flush=True)
    return rows


def timed_pair(fn, *args):
    """(forward ms, forward+backward ms) of ``fn(*args) -> tensor``, gradients w.r.t. all args."""
    forward = tf.function(fn)

    @tf.function
    def forward_backward(*xs):
        with tf.GradientTape() as tape:
            tape.watch(xs)
            loss = tf.reduce_sum(tf.square(fn(*xs)))
        return tape.gradient(loss, xs)

    fwd = median_seconds(lambda: forward(*args).numpy(), FLAGS.repeats)
    bwd = median_seconds(lambda: [g.numpy() for g in forward_backward(*args)], FLAGS.repeats)
    return {"fwd ms": 1000 * fwd, "fwd+bwd ms": 1000 * bwd}


def profile_rows(size: int) -> dict:
    """Where the time goes, part by part, through the public API only."""
    image, src, dst = (tf.constant(a, tf.float32) for a in make_inputs(size, FLAGS.batch, FLAGS.landmarks, FLAGS.seed))
    bp = FLAGS.boundary

    def flow_of(s, d):
        return warp.sparse_image_warp(image[..., :1], s, d, 1, 0.0, bp)[1]

    flow = flow_of(src, dst)
    n = FLAGS.landmarks
    return {
        f"kernel matrix + solve ({n} points, evaluated at them)": timed_pair(
            lambda s, d: warp.interpolate_spline(d, d - s, d, 1, 0.0), src, dst),
        "spline on every pixel (solve + dense flow)": timed_pair(flow_of, src, dst),
        "bilinear resampling (dense_image_warp)": timed_pair(warp.dense_image_warp, image, flow),
        "whole warp (sparse_image_warp)": timed_pair(
            lambda im, s, d: warp.sparse_image_warp(im, s, d, 1, 0.0, bp)[0], image, src, dst),
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
