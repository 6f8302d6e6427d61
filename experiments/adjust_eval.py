"""White balance / exposure evaluation (paper Sec. 7.4, Fig. 14) on LFW test people, standalone.

Takes the first photo of the first ``--num`` LFW View 1 *test* people (photos without a face are
skipped), degrades each with a known random exposure gain (x0.5..x2) and colour cast, and
corrects it by the Appendix C colour shift with the normalized face of the degraded photo as the
reference (what ``normface adjust`` does), with the oracle reference (the untouched photo's own
face colour: the method's upper bound), optionally toward the training faces' mean colour
(``--faces``), and by the grey-world and white-patch baselines. Prints the mean CIELAB Delta E of
the face region against the untouched photo. The same numbers are part of the evaluation report
(experiments/evaluate.py); this script needs only the raw data and a model, no face set.

    python experiments/adjust_eval.py [--model=EXPORT] [--num=100] [--faces=workspace/faces128]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from normface.data import splits
from normface.utils import paths
from normface.evaluation import adjustment, applications  # noqa: E402
from normface.serving.normalizer import FaceNormalizer  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Model export or packed model (default: the shipped model).")
flags.DEFINE_integer("num", 100, "How many LFW test people (one photo each).")
flags.DEFINE_integer("seed", 0, "Seed of the random degradations.")
flags.DEFINE_string("faces", None, "Face set of data_prep, for the training-mean-colour control (optional).")
flags.DEFINE_string("data_root", None, "Face data folder (default $NORMFACE_DATA or ../shared/data).")


def main(argv):
    del argv
    root = paths.Path(FLAGS.data_root) if FLAGS.data_root else paths.require_data_dir()
    people = sorted(splits.read_lfw_people(root / "lfw_peopleDevTest.txt"))[: FLAGS.num]
    # LFW photos are centred on their person (as stage 1 aligns them).
    photo_set = applications.PhotoSet([f"lfw/{n}/{n}_0001.jpg" for n in people], choose="center")
    photos, landmarks, _ = applications.load_raw_photos(root, photo_set)
    normalizer = FaceNormalizer.from_pretrained(FLAGS.model, choose="center")
    train_color = applications.training_mean_color(FLAGS.faces, normalizer.template) if FLAGS.faces else None
    result = applications.adjustment_experiment(normalizer, photos, landmarks, train_color, FLAGS.seed)
    print(f"{len(photos)} LFW test photos, seed {FLAGS.seed}: mean face Delta E (CIE76) vs the original")
    print(adjustment.rows_table(result["rows"]))
    print({k: v for k, v in result.items() if k != "rows"})


if __name__ == "__main__":
    app.run(main)
