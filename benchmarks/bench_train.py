"""Benchmark: training examples/second at several output sizes, with and without the identity loss.

    python benchmarks/bench_train.py [--sizes=64,128,224] [--batch_size=8] [--steps=3] [--encoder=fake]

Uses the paper-sized model (ModelConfig defaults) on synthetic in-memory data, so only the training
step is timed (no input pipeline). Without the identity loss a step is the warp-free decoder plus
landmark MSE and texture L1; with it, the full model (spline warp), the differentiable face chip
and the frozen encoder on the generated images. ``--encoder`` names a normface.encoders encoder
(e.g. dlib_face_resnet_v1, the real cost) or ``fake`` (a tiny conv net: times the warp only).
Prints one table row per setting and the device.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["64", "128", "224"], "Output sizes to time.")
flags.DEFINE_integer("batch_size", 8, "Global batch size.")
flags.DEFINE_integer("steps", 3, "Timed steps per setting (after 2 warm-up steps).")
flags.DEFINE_string("encoder", "fake", "fake, or a normface.encoders name for the identity loss.")
flags.DEFINE_list("identity", ["off", "on"], "Identity loss settings to time.")


def embed_fn_for(name: str):
    """``(embed_fn, description)``."""
    from normface.testing import synthetic

    if name == "fake":
        return synthetic.fake_embed_fn(), "fake (tiny conv net; warp cost only)"
    from normface import encoders

    return encoders.resolve(name).embed_fn(), name


def bench(size: int, identity: bool, embed_fn) -> float:
    from normface.models import ModelConfig
    from normface.testing import synthetic
    from normface.training.config import TrainConfig
    from normface.training.trainer import Trainer

    warmup, steps = 2, FLAGS.steps
    config = TrainConfig(steps=warmup + steps, batch_size=FLAGS.batch_size, identity_weight=1.0 if identity else 0.0,
                         log_every=steps, image_every=0, eval_every=0, checkpoint_every=0, checkpoint_input=False)
    data = synthetic.synthetic_dataset(2 * FLAGS.batch_size, size, FLAGS.batch_size)
    with tempfile.TemporaryDirectory() as model_dir:
        trainer = Trainer(ModelConfig(output_size=size), config, synthetic.mean_landmarks(size), model_dir,
                          embed_fn=embed_fn)
        trainer.fit(data, max_steps=warmup)  # tracing and first steps
        history = trainer.fit(data)
    return history["train/examples_per_second"]


def main(argv):
    del argv
    import tensorflow as tf

    logging.set_verbosity(logging.WARNING)
    embed_fn, encoder_name = embed_fn_for(FLAGS.encoder)
    gpus = tf.config.list_physical_devices("GPU")
    device = (tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus
              else f"CPU ({os.cpu_count()} cores visible)")
    print(f"device: {device}; batch {FLAGS.batch_size}; encoder for the identity loss: {encoder_name}")
    print("| size | identity loss | examples/s |")
    print("| --- | --- | --- |")
    for size in (int(s) for s in FLAGS.sizes):
        for setting in FLAGS.identity:
            rate = bench(size, setting == "on", embed_fn)
            print(f"| {size} | {setting} | {rate:.1f} |", flush=True)


if __name__ == "__main__":
    app.run(main)
