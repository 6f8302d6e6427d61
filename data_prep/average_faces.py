"""Data preparation I, stage 2: filter aligned photos by quality and morph-average each person.

    python data_prep/average_faces.py --size=128        # reads workspace/faces128/aligned

Writes, under <faces>/averaged: template.json, <split>/<person>.png|json (average + mean
landmarks), summary.json (photos in, kept per filter, people averaged), contact_sheet.png (64
averaged training faces) and filter_examples.png (kept / rejected LFW photos per filter).
Resumable per person. Every threshold is a flag. ``--runner=DirectRunner|DataflowRunner|...``
averages the people as an Apache Beam pipeline (:mod:`normface.pipelines.average`; the beam
extra): the same outputs plus averaged/failures.jsonl; unknown flags are Beam pipeline options. A face set without LFW photos (e.g. stage 1 with
--sources=london,canada) works: the contact sheet then shows its other faces. Exit code 1 when no
person could be averaged, 2 for a bad flag (every numeric flag has a range, checked before any work).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from normface.faces import quality
from normface.utils import config_flags, paths
from normface.data import align, average, faceset  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("faces", None, "Face-set folder of stage 1 (default <workspace>/faces<size>).")
flags.DEFINE_integer("size", 128, "Crop size, to find the default --faces folder.", lower_bound=16)
flags.DEFINE_integer("min_photos", 1, "Average LFW people with at least this many kept photos (the paper used 3; "
                     "1 lets single-photo LFW training people in).", lower_bound=1)
flags.DEFINE_integer("max_photos", 32, "Use at most this many photos per person (first by name).", lower_bound=1)
config_flags.existing_folder("faces")
config_flags.define_runner_flag()
THRESHOLD_HELP = {
    "max_yaw": "Largest |yaw| in degrees (head turned).",
    "max_pitch": "Largest |pitch - frontal| in degrees (head tilted up/down).",
    "max_roll": "Largest |roll| in degrees (in the photo).",
    "max_smile": "Largest smile probability of the expression model.",
    "min_sharpness": "Smallest sharpness (variance of the Laplacian in the aligned face).",
    "min_saturation": "Smallest colour saturation (rejects monochrome photos).",
    "min_eye_distance": "Smallest distance between the eyes in the photo, pixels.",
    "max_light_asymmetry": "Largest |left/right luminance asymmetry| of the face (even light).",
    "max_light_gradient": "Largest luminance gradient across the face, per interocular distance (even light).",
}
config_flags.define_flags(quality.QualityThresholds, THRESHOLD_HELP, bounds={
    name: (low, None if high == float("inf") else high) for name, (low, high) in quality.THRESHOLD_BOUNDS.items()})


def main(argv):
    del argv
    faces = paths.Path(FLAGS.faces) if FLAGS.faces else paths.workspace_dir() / f"faces{FLAGS.size}"
    thresholds = config_flags.from_flags(quality.QualityThresholds)
    aligned_root, out_root = faceset.aligned_dir(faces), faceset.averaged_dir(faces)
    if not (aligned_root / faceset.TEMPLATE_FILE).is_file() or not (aligned_root / align.MANIFEST_FILE).is_file():
        raise config_flags.usage_error(f"--faces {faces}: no stage-1 face set in {aligned_root} "
                                       "(run data_prep/align_faces.py first)")
    if FLAGS.runner:
        from normface.pipelines import average as beam_average, common

        try:
            options = common.pipeline_options(FLAGS.runner, config_flags.BEAM_ARGS)
        except ImportError as err:
            raise config_flags.usage_error(f"--runner={FLAGS.runner}: {err}") from err
        summary = beam_average.average_all(aligned_root, out_root, thresholds, options, FLAGS.min_photos,
                                           FLAGS.max_photos)
    else:
        summary = average.average_all(aligned_root, out_root, thresholds, FLAGS.min_photos, FLAGS.max_photos)
    for path in average.write_sheets(aligned_root, out_root, thresholds):
        print(f"wrote {path}")
    for key, value in summary.items():
        print(f"{key}: {value}")
    return 0 if summary["people_averaged"] else 1


if __name__ == "__main__":
    sys.exit(app.run(main, flags_parser=config_flags.beam_flags_parser))
