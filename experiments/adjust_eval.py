"""White balance / exposure evaluation (paper Sec. 7.4, Fig. 14) on LFW test people.

Takes the first photo of the first ``--num`` LFW View 1 *test* people, finds their 68 landmarks
(dlib; photos without a face are skipped), degrades each with a known random exposure gain
(x0.5..x2) and colour cast, corrects it by the Appendix C colour shift toward a reference face
colour and by the grey-world and white-patch baselines, and prints the mean CIELAB Delta E of the
face region against the untouched photo (normface.apps.evaluate_adjustment). Until the trained
model exists the reference is the oracle (each untouched photo's own face colour), i.e. the best
the method can do with a perfect normalized face; writes a Fig. 14-style grid to --output.

    python experiments/adjust_eval.py [--num=50] [--output=DIR]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from normface import apps, face, io_utils, paths, splits  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("num", 50, "How many LFW test people (one photo each).")
flags.DEFINE_integer("seed", 0, "Seed of the random degradations.")
flags.DEFINE_string("output", None, "Output folder for the grid (default <workspace>/adjust_eval).")
flags.DEFINE_string("data_root", None, "Face data folder (default $NORMFACE_DATA or ../shared/data).")


def main(argv):
    del argv
    root = paths.Path(FLAGS.data_root) if FLAGS.data_root else paths.require_data_dir()
    out_dir = paths.Path(FLAGS.output) if FLAGS.output else paths.workspace_dir() / "adjust_eval"
    photos, landmarks, names = [], [], []
    for name in sorted(splits.read_lfw_people(root / "lfw_peopleDevTest.txt")):
        if len(photos) >= FLAGS.num:
            break
        path = root / "lfw" / name / f"{name}_0001.jpg"
        image = io_utils.read_rgb(path)
        faces = face.detect_faces68(image)
        if faces:
            photos.append(image)
            landmarks.append(faces[0].landmarks)
            names.append(name)
    report = apps.evaluate_adjustment(photos, landmarks, apps.oracle_reference(photos, landmarks),
                                      apps.DegradeConfig(seed=FLAGS.seed))
    print(f"{len(photos)} LFW test photos, seed {FLAGS.seed}: mean face Delta E (CIE76) vs the original")
    print(report.table(reference_name="face shift (oracle reference)"))
    grid_path = out_dir / "adjust_grid.png"
    io_utils.save_image_atomic(grid_path, report.grid())
    print(f"wrote {grid_path}")


if __name__ == "__main__":
    app.run(main)
