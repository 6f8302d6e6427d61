"""experiments/train.py with a Trainer that records what each replica reads (not a test module).

    python tests/training/train_recorder.py --record_dir=DIR <train.py flags>

Runs the binary's ``run()`` unchanged, with :class:`normface.training.trainer.Trainer` replaced
by a subclass that, in every training step, appends ``<worker> <step> <replica> <person ids>``
to ``DIR/reads_<worker>.txt`` (tf.print, inside the distributed step), and at the end writes
``DIR/<worker>.json`` (strategy class, ``num_replicas_in_sync``, chief or not) and
``DIR/<worker>_weights.npz`` (the final model weights). ``<worker>`` is ``worker<index>`` from
TF_CONFIG, else ``local``. tests/training/test_training.py's distribution tests read these.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))

import train  # noqa: E402  (experiments/train.py: defines the flags)
from absl import app, flags  # noqa: E402

from normface.training import trainer as trainer_lib  # noqa: E402

flags.DEFINE_string("record_dir", None, "Where the recordings go.")
FLAGS = flags.FLAGS


def worker_name() -> str:
    config = os.environ.get("TF_CONFIG")
    return f"worker{json.loads(config)['task']['index']}" if config else "local"


class RecordingTrainer(trainer_lib.Trainer):
    instances: list["RecordingTrainer"] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        RecordingTrainer.instances.append(self)

    def _replica_train_step(self, batch):
        import tensorflow as tf

        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        path = Path(FLAGS.record_dir) / f"reads_{worker_name()}.txt"
        tf.print(worker_name(), self.step, replica, batch["person"], summarize=-1,
                 output_stream=f"file://{path}")
        return super()._replica_train_step(batch)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    import numpy as np

    out = Path(FLAGS.record_dir)
    out.mkdir(parents=True, exist_ok=True)
    trainer_lib.Trainer = RecordingTrainer  # what train.run() imports
    train.run()
    (trainer,) = RecordingTrainer.instances
    name = worker_name()
    np.savez(out / f"{name}_weights.npz", *[v.numpy() for v in trainer.net.model.weights])
    info = {"strategy": type(trainer.strategy).__name__,
            "num_replicas_in_sync": int(trainer.strategy.num_replicas_in_sync), "chief": bool(trainer.chief),
            "step": int(trainer.step.numpy())}
    (out / f"{name}.json").write_text(json.dumps(info))


if __name__ == "__main__":
    flags.mark_flag_as_required("record_dir")
    app.run(main)
