"""Generates the evaluation report for a trained model.

    python experiments/evaluate.py --model=workspace/runs/r128/export --faces=workspace/faces128 \
        --output=workspace/eval/r128 [--quick]

Writes report.md, results.json, identity_histogram.png, people_grid.png and the applications'
figures (adjust_grid.png, avatar_views.png, from the --samples photos) under --output.
--quick evaluates a seeded subset of 25 test people (minutes). --publish=DIR copies the report
without the figures that show LFW faces (for the repository).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from normface.utils import paths
from normface.evaluation import report  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Export folder of the model (default: the shipped model).")
flags.DEFINE_string("faces", None, "Face-set folder of data_prep (default <workspace>/faces<size>).")
flags.DEFINE_integer("size", 128, "Face-set size, for the default --faces.")
flags.DEFINE_string("output", None, "Report folder (default <workspace>/eval/report).")
flags.DEFINE_bool("quick", False, "Evaluate a seeded subset of test people.")
flags.DEFINE_integer("seed", 0, "Seed of the --quick subset.")
flags.DEFINE_string("ablations", None, "Folder written by experiments/ablations.py, to include.")
flags.DEFINE_multi_string("compare", [], "name=export_dir of another model to compare (e.g. without identity loss).")
flags.DEFINE_string("publish", None, "Also copy the report here without the figures that show LFW faces "
                    "(e.g. experiments/results/eval_r128_id).")
flags.DEFINE_list("samples", None, "Publishable photos (never LFW) for the applications' figures (default: the "
                  "repository's samples/*.jpg, London Set, CC BY); '' for none.")
flags.DEFINE_string("records", None, "Records folder (data_prep/build_records.py): every model's texture L1 "
                    "on its validation faces.")
flags.DEFINE_string("samples_credit", "", "Attribution of --samples, printed under the figures.")
flags.DEFINE_string("judge", "default", "The independent identity judge (MobileFaceNet .tflite): a path, 'default' "
                    "($NORMFACE_JUDGE, else ../shared/judges/mobilefacenet/MobileFaceNet.tflite; left out with a notice "
                    "when absent) or 'none'.")

SAMPLES_CREDIT = ("held-out people of the Face Research Lab London Set (CC BY 4.0; DeBruine, L. & Jones, B. "
                  "(2017), doi:10.6084/m9.figshare.5047666), from `samples/`. LFW photos are not published.")


def load_judge_flag(value: str):
    """The judge named by --judge; the default file only when present."""
    from normface.encoders import judge as judge_lib

    try:
        return judge_lib.judge_from_flag(value)
    except FileNotFoundError as err:
        if value != judge_lib.DEFAULT:
            raise app.UsageError(f"--judge={value}: {err}") from err
        print(f"evaluate.py: no independent judge, its tables are left out ({err})")
        return None
    except ValueError as err:
        raise app.UsageError(f"--judge={value}: {err}") from err


def main(argv):
    del argv
    try:
        import matplotlib  # noqa: F401  (figures; fail now, not after the compute)
    except ImportError as err:
        raise app.UsageError('the report needs matplotlib: pip install -e ".[eval]"') from err
    faces = FLAGS.faces or str(paths.workspace_dir() / f"faces{FLAGS.size}")
    output = FLAGS.output or str(paths.workspace_dir() / "eval" / "report")
    if FLAGS.samples is None:
        samples, credit = sorted(map(str, (paths.REPO_ROOT / "samples").glob("*.jpg"))), SAMPLES_CREDIT
    else:
        samples, credit = [s for s in FLAGS.samples if s], FLAGS.samples_credit
    judge = load_judge_flag(FLAGS.judge)
    results = report.build_report(FLAGS.model, faces, output, quick=FLAGS.quick, seed=FLAGS.seed,
                                  ablations=FLAGS.ablations,
                                  compare=dict(c.split("=", 1) for c in FLAGS.compare),
                                  samples=samples, samples_credit=credit, records=FLAGS.records, judge=judge)
    print(f"wrote {output}/report.md in {results['seconds']} s")
    if FLAGS.publish:
        for path in report.publish_report(output, FLAGS.publish):
            print(f"published {path}")


if __name__ == "__main__":
    app.run(main)
