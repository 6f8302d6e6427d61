"""Fits the smile/neutral expression filter of data preparation on training people only.

The filter is a logistic model over landmark expression features (normface.faces.quality). It is fit on
the London set's *training* people (neutral and smiling photo of each) plus the Canada set
(neutral), so the held-out London people stay an honest test (tests/faces/test_quality.py), and written
to normface/faces/assets/expression_filter.json, which ships with the package and lists the ids of
those people (``fitted_people``, checked against the splits by the tests).

    python experiments/fit_expression_filter.py [--output=normface/faces/assets/expression_filter.json]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from normface.data import splits
from normface.faces import quality
from normface.utils import io_utils
from normface.utils import paths
from normface.data import studio  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("data_root", None, "Face data folder (default $NORMFACE_DATA or ../shared/data).")
flags.DEFINE_string("output", str(quality.EXPRESSION_MODEL_FILE), "Where to write the model JSON.")
flags.DEFINE_integer("seed", splits.DEFAULT_SEED, "Person-split seed (must match data preparation).")
flags.DEFINE_float("l2", 0.01, "L2 regularization of the logistic regression.")


def main(argv):
    del argv
    root = paths.require_data_dir() if not FLAGS.data_root else paths.Path(FLAGS.data_root)
    people = splits.make_splits(root, seed=FLAGS.seed)
    train = set(people["train"])
    feats, labels, counts = studio.expression_examples(root, train)
    # The people whose studio photos those are (expression_examples keeps exactly these).
    fitted_people = sorted({person for person, _, _ in studio.studio_photos(root) if person in train})
    model = quality.fit_expression_model(
        feats, labels, l2=FLAGS.l2,
        fitted_on=f"{counts['neutral']} neutral + {counts['smiling']} smiling studio photos of training people (seed {FLAGS.seed})",
        fitted_people=tuple(fitted_people),
    )
    io_utils.write_bytes_atomic(FLAGS.output, model.to_json().encode())
    train_acc = sum((model.smile_probability(f) >= 0.5) == y for f, y in zip(feats, labels)) / len(labels)
    print(f"fit on {len(labels)} photos of {len(fitted_people)} people ({counts}); training accuracy "
          f"{train_acc:.3f}; wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
