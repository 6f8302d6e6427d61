"""Data preparation II: leakage screening and deduplication of the training pool (with its report).

    python data_prep/screen_faces.py --size=128       # reads workspace/faces128/{aligned,averaged}

Writes workspace/faces<size>/screened (the face set the records are built from: the averaged
faces less the removed training faces, hard-linked), screened/screening.json (the report),
screened/removed.jsonl, and the descriptor cache workspace/faces<size>/screening/. Resumable:
rerun the same command; other thresholds in the same folder are refused. A bad flag (every numeric
flag has a range) exits 2 before any work. ``--runner=DirectRunner|DataflowRunner|...`` encodes the
descriptors as an Apache Beam pipeline (:mod:`normface.pipelines.screen`; the beam extra), the
encoder loaded once per worker, and compares them in its last step on one worker: the same outputs
plus screened/failures.jsonl (faces whose image could not be read, left out); unknown flags are Beam
pipeline options.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from normface.data import screen  # noqa: E402
from normface.utils import config_flags, paths  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("faces", None, "Faces folder of stages 1-2 (default <workspace>/faces<size>).")
flags.DEFINE_integer("size", 128, "Crop size, to find the default --faces folder.", lower_bound=16)
config_flags.existing_folder("faces")
flags.DEFINE_string("encoder", "dlib", "Frozen encoder whose descriptors are compared (normface.encoders).")
config_flags.define_flags(screen.ScreenConfig, {
    "leak_threshold": "Remove a public-set face within this descriptor distance of any held-out photo.",
    "dup_threshold": "Training faces within this descriptor distance of each other collapse to one.",
    "min_age": "Remove public-set faces labelled younger than this (0 keeps children).",
}, bounds={"leak_threshold": (1e-9, None), "dup_threshold": (1e-9, None), "min_age": (0, None)})
config_flags.define_runner_flag()


def main(argv):
    del argv
    faces = paths.Path(FLAGS.faces) if FLAGS.faces else paths.workspace_dir() / f"faces{FLAGS.size}"
    try:
        config = config_flags.from_flags(screen.ScreenConfig)
    except ValueError as err:
        raise config_flags.usage_error(str(err)) from err
    if FLAGS.runner:
        from normface.pipelines import common, screen as beam_screen

        try:
            options = common.pipeline_options(FLAGS.runner, config_flags.BEAM_ARGS)
        except ImportError as err:
            raise config_flags.usage_error(f"--runner={FLAGS.runner}: {err}") from err
        report = beam_screen.screen_faces(faces, FLAGS.encoder, config, options)
    else:
        report = screen.screen_faces(faces, screen.descriptor_fn_for(FLAGS.encoder), config)
    keys = ("pool_faces", "held_out_photos", "training_faces_kept", "removed", "estimated_miss_rate")
    print(json.dumps({k: report[k] for k in keys + ("beam_failure_counters", "failure_report") if k in report},
                     indent=1))
    print(f"report: {screen.screened_dir(faces) / screen.REPORT_FILE}")
    return 0 if report["training_faces_kept"] else 1


if __name__ == "__main__":
    sys.exit(app.run(main, flags_parser=config_flags.beam_flags_parser))
