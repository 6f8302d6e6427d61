"""Plots a training run's TensorBoard curves into one PNG (no TensorBoard needed).

    python experiments/plot_curves.py --model_dir=workspace/runs/r128 --output=experiments/results/r128_curves.png

Reads the event files under <model_dir>/logs/{train,validation} with TensorFlow's own summary
iterator and draws the training losses, the validation losses and the validation identity metric
(share of outputs within 0.6 of their target descriptor, and the median distance: of their own
input, or with train.py --identity_faces of another photo of the same person).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from normface.utils import io_utils

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Training folder (with logs/).", required=True)
flags.DEFINE_string("output", None, "PNG path (default <model_dir>/curves.png).")


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] from every event file under ``log_dir``."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.HasField("tensor") and value.tensor.dtype in (tf.float32.as_datatype_enum,
                                                                       tf.float64.as_datatype_enum):
                    arr = tf.make_ndarray(value.tensor)
                    if arr.size == 1:
                        series[value.tag].append((event.step, float(arr.reshape(()))))
                elif value.HasField("simple_value"):
                    series[value.tag].append((event.step, float(value.simple_value)))
    return {k: sorted(v) for k, v in series.items()}


def main(argv):
    del argv
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model_dir = Path(FLAGS.model_dir)
    train = read_scalars(model_dir / "logs" / "train")
    val = read_scalars(model_dir / "logs" / "validation")
    if not train:
        raise app.UsageError(f"no training scalars under {model_dir / 'logs' / 'train'}")
    panels = [
        ("training losses", train, [t for t in ("loss/total", "loss/texture", "loss/landmark", "loss/identity") if t in train]),
        ("validation losses", val, [t for t in ("loss/total", "loss/texture", "loss/landmark") if t in val]),
        ("validation identity", val, [t for t in ("identity/within", "identity/median") if t in val]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), dpi=100)
    for ax, (title, data, tags) in zip(axes, panels):
        for tag in tags:
            steps, values = zip(*data[tag])
            ax.plot(steps, values, marker="." if len(steps) < 30 else None, label=tag)
        ax.set_title(title)
        ax.set_xlabel("step")
        if title != "validation identity":
            ax.set_yscale("log")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(FLAGS.output or model_dir / "curves.png")
    with io_utils.atomic_path(out) as tmp:
        fig.savefig(tmp)
    print(f"wrote {out}")


if __name__ == "__main__":
    app.run(main)
