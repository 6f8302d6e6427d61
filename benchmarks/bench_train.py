"""Benchmark: training examples/second at several output sizes, with and without the identity loss.

    python benchmarks/bench_train.py [--sizes=64,128,224] [--batch_size=8] [--steps=3] [--encoder=fake] \
        [--records=workspace/records128] [--encoder_dtype=float32,bfloat16] [--mixed_precision=,mixed_bfloat16] \
        [--reference=/path/to/an/older/checkout]

Uses the paper-sized model (ModelConfig defaults). By default the data is synthetic and in memory,
so only the training step is timed; ``--records`` reads real records through the input pipeline
(``normface.data.pipeline.make_dataset``, read at each size), so pipeline gains and losses show.
Without the identity loss a step is the warp-free decoder plus landmark MSE and texture L1; with
it, the full model (spline warp), the differentiable face chip and the frozen encoder on the
generated images. ``--encoder`` names a normface.encoders encoder (e.g. dlib_face_resnet_v1, the
real cost) or ``fake`` (a tiny conv net: times the warp only). ``--encoder_dtype`` and
``--mixed_precision`` list the settings to time (the encoder's compute dtype in the losses; the
decoder's Keras policy).

``--reference=TREE`` also runs ``TREE/benchmarks/bench_train.py`` (another checkout, e.g. a
``git worktree`` of an older commit) in a subprocess on the same machine, in the same run, with
the flags both understand, and prints its rows beside this tree's with the ratio.
Prints one table row per setting and the device.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["64", "128", "224"], "Output sizes to time.")
flags.DEFINE_integer("batch_size", 8, "Global batch size.")
flags.DEFINE_integer("steps", 3, "Timed steps per setting (after 2 warm-up steps).")
flags.DEFINE_string("encoder", "fake", "fake, or a normface.encoders name for the identity loss.")
flags.DEFINE_list("identity", ["off", "on"], "Identity loss settings to time.")
flags.DEFINE_string("records", None, "Time real records through the input pipeline instead of in-memory data.")
flags.DEFINE_list("encoder_dtype", ["float32"], "Encoder compute dtypes to time (identity loss on).")
flags.DEFINE_list("mixed_precision", [""], "Decoder dtype policies to time ('' = float32).")
flags.DEFINE_string("reference", None, "Another checkout whose bench_train.py runs beside this one.")

ROW = re.compile(r"^\| (\d+) \| (on|off) \| (.*) \|$")


def embed_fn_for(name: str, dtype: str = "float32"):
    """``(embed_fn, description)``."""
    from normface.testing import synthetic

    if name == "fake":
        return synthetic.fake_embed_fn(), "fake (tiny conv net; warp cost only)"
    from normface import encoders

    return encoders.resolve(name).embed_fn(dtype), name


def training_data(size: int):
    """The batched training dataset of one size: real records (``--records``) or synthetic."""
    from normface.data import pipeline
    from normface.testing import synthetic

    if FLAGS.records:
        return pipeline.make_dataset(FLAGS.records, "train", FLAGS.batch_size, repeat=True, seed=0,
                                     drop_remainder=True, output_size=size)
    return synthetic.synthetic_dataset(2 * FLAGS.batch_size, size, FLAGS.batch_size)


def mean_landmarks(size: int):
    from normface.data import pipeline
    from normface.testing import synthetic

    return pipeline.mean_landmarks(FLAGS.records, size) if FLAGS.records else synthetic.mean_landmarks(size)


def bench(size: int, identity: bool, embed_fn, mixed_precision: str = "") -> float:
    from normface.models import ModelConfig
    from normface.training.config import TrainConfig
    from normface.training.trainer import Trainer

    warmup, steps = 2, FLAGS.steps
    config = TrainConfig(steps=warmup + steps, batch_size=FLAGS.batch_size, identity_weight=1.0 if identity else 0.0,
                         log_every=steps, image_every=0, eval_every=0, checkpoint_every=0, checkpoint_input=False,
                         mixed_precision=mixed_precision)
    data = training_data(size)
    with tempfile.TemporaryDirectory() as model_dir:
        feature_dim = int(data.element_spec["features"].shape[-1])
        trainer = Trainer(ModelConfig(output_size=size, feature_dim=feature_dim), config, mean_landmarks(size),
                          model_dir, embed_fn=embed_fn)
        trainer.fit(data, max_steps=warmup)  # tracing and first steps
        history = trainer.fit(data)
    return history["train/examples_per_second"]


def reference_rows(tree: str) -> dict[tuple[int, str], float]:
    """Runs the other checkout's benchmark (flags both trees know); ``{(size, identity): rate}``."""
    script = os.path.join(tree, "benchmarks", "bench_train.py")
    if not os.path.isfile(script):
        raise app.UsageError(f"--reference={tree}: no benchmarks/bench_train.py there")
    args = [sys.executable, script, f"--sizes={','.join(FLAGS.sizes)}", f"--batch_size={FLAGS.batch_size}",
            f"--steps={FLAGS.steps}", f"--encoder={FLAGS.encoder}", f"--identity={','.join(FLAGS.identity)}"]
    env = dict(os.environ, PYTHONPATH=tree)
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tree, check=False)
    if done.returncode:
        raise RuntimeError(f"reference benchmark failed ({done.returncode}): {done.stderr[-2000:]}")
    rows = {}
    for line in done.stdout.splitlines():
        match = ROW.match(line.strip())
        if not match:
            continue
        rest = [c.strip() for c in match.group(3).split("|")]
        # Older trees print "size | identity | rate"; this one adds the two dtypes (float32 rows only).
        if len(rest) == 1 or rest[:2] == ["float32", "float32"]:
            rows[(int(match.group(1)), match.group(2))] = float(rest[-1])
    return rows


def reference_commit(tree: str) -> str:
    done = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def main(argv):
    del argv
    import tensorflow as tf

    logging.set_verbosity(logging.WARNING)
    gpus = tf.config.list_physical_devices("GPU")
    device = (tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus
              else f"CPU ({os.cpu_count()} cores visible)")
    reference = reference_rows(FLAGS.reference) if FLAGS.reference else {}
    data = f"records {FLAGS.records} through the input pipeline" if FLAGS.records else "synthetic in-memory data"
    print(f"device: {device}; batch {FLAGS.batch_size}; {FLAGS.steps} timed steps; {data}; "
          f"encoder for the identity loss: {FLAGS.encoder}")
    if FLAGS.reference:
        print(f"reference: {FLAGS.reference} at {reference_commit(FLAGS.reference)} (synthetic data, float32), "
              "run in the same invocation just before")
        print("| size | identity loss | encoder dtype | decoder policy | examples/s | reference examples/s | ratio |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
    else:
        print("| size | identity loss | encoder dtype | decoder policy | examples/s |")
        print("| --- | --- | --- | --- | --- |")
    for size in (int(s) for s in FLAGS.sizes):
        for setting in FLAGS.identity:
            dtypes = FLAGS.encoder_dtype if setting == "on" else ["float32"]
            for dtype in dtypes:
                embed_fn, _ = embed_fn_for(FLAGS.encoder, dtype)
                for policy in FLAGS.mixed_precision:
                    rate = bench(size, setting == "on", embed_fn, policy)
                    cells = [str(size), setting, dtype, policy or "float32", f"{rate:.1f}"]
                    if FLAGS.reference:
                        ref = reference.get((size, setting))
                        cells += [f"{ref:.1f}" if ref else "-", f"{rate / ref:.2f}x" if ref else "-"]
                    print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    app.run(main)
