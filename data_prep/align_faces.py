"""Data preparation I, stage 1: detect, landmark, measure and align every photo.

    python data_prep/align_faces.py --size=128 --output=workspace/faces128
    python data_prep/align_faces.py --size=128 \
        --sources=lfw,london,canada,fairface=/data/fairface,scut=/data/SCUT-FBP5500_v2,utkface=/data/UTKFace

Writes, under <output>/aligned: template.json, splits.json (the person split every later stage
reads), run.json (the settings; a rerun with others is refused), <split>/<key>.png|json for each
photo with a face, manifest/shard-*.jsonl and the merged manifest.jsonl (one line per input photo:
measures, or the failure reason), summary.json.
Resumable: rerun the same command after an interruption.

Past one machine, the same stage as an Apache Beam pipeline (``pip install -e ".[beam]"
-c constraints-beam.txt``; docs/beam.md): ``--runner=DirectRunner --direct_num_workers=2
--direct_running_mode=multi_processing``, or ``--runner=DataflowRunner --project=... --region=...
--temp_location=gs://... --setup_file=./setup.py``; flags this binary does not know are Beam
pipeline options. The same outputs, plus aligned/failures.jsonl (this run's failed photos). Exit code 0 even when some photos fail
(they are in the manifest and the summary); 1 when nothing could be aligned; 2 for a bad flag
(every numeric flag has a range, checked before any work).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from normface.data import public_sets, splits
from normface.utils import config_flags, paths
from normface.faces.alignment import DEFAULT_EYE_HEIGHT, AlignmentTemplate  # noqa: E402
from normface.data import align, faceset  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("data_root", None, "Face data folder (default $NORMFACE_DATA or ../shared/data).")
flags.DEFINE_string("output", None, "Output folder (default <workspace>/faces<size>).")
flags.DEFINE_integer("size", 128, "Aligned crop size; the template scales with it (224 -> 55 px between the eyes).",
                     lower_bound=16)
flags.DEFINE_float("eye_height", DEFAULT_EYE_HEIGHT, "Eye line height as a fraction of the crop (0.1-0.9).",
                   lower_bound=0.1, upper_bound=0.9)
flags.DEFINE_list(
    "sources", ["lfw", "london", "canada"],
    "Which photo sets to process, comma-separated: lfw, london, canada (read from --data_root) and the "
    "public sets fairface, scut, utkface, each as NAME (its sample under <data_root>/extra/) or NAME=PATH "
    "(a copy in the set's own layout: FairFace's folder with fairface_label_{train,val}.csv, "
    "SCUT-FBP5500_v2/, the UTKFace aligned&cropped folder). E.g. "
    "--sources=lfw,london,canada,fairface=/data/fairface,scut=/data/SCUT-FBP5500_v2,utkface=/data/UTKFace")
flags.DEFINE_integer("shard_size", 200, "Photos per shard (the unit of resumption).", lower_bound=1)
flags.DEFINE_integer("workers", 2, "Parallel processes.", lower_bound=1)
flags.DEFINE_integer("seed", splits.DEFAULT_SEED, "Person-split seed.", lower_bound=0)
flags.DEFINE_integer("limit", 0, "Process only the first N photos (0 = all), for quick runs.", lower_bound=0)
config_flags.existing_folder("data_root")
config_flags.define_runner_flag()


def _sources_ok(items) -> bool:
    try:
        public_sets.parse_sources(items, align.BUILTIN_SOURCES)
    except ValueError as err:
        raise flags.ValidationError(str(err)) from err
    return True


flags.register_validator("sources", _sources_ok, message="--sources: unknown or repeated source")


def main(argv):
    del argv
    try:
        data_root = paths.Path(FLAGS.data_root) if FLAGS.data_root else paths.require_data_dir()
    except FileNotFoundError as err:
        raise config_flags.usage_error(f"--data_root: {err}") from err
    output = paths.Path(FLAGS.output) if FLAGS.output else paths.workspace_dir() / f"faces{FLAGS.size}"
    template = AlignmentTemplate.for_size(FLAGS.size, eye_height=FLAGS.eye_height)
    if FLAGS.runner:
        from normface.pipelines import align as beam_align, common

        try:
            options = common.pipeline_options(FLAGS.runner, config_flags.BEAM_ARGS)
        except ImportError as err:
            raise config_flags.usage_error(f"--runner={FLAGS.runner}: {err}") from err
        summary = beam_align.align_all(
            data_root, faceset.aligned_dir(output), template, options, sources=FLAGS.sources,
            shard_size=FLAGS.shard_size, seed=FLAGS.seed, limit=FLAGS.limit or None)
        print(f"failure report: {summary['failure_report']}; Beam counters {summary['beam_failure_counters']}")
    else:
        summary = align.align_all(
            data_root, faceset.aligned_dir(output), template, sources=FLAGS.sources, shard_size=FLAGS.shard_size,
            workers=FLAGS.workers, seed=FLAGS.seed, limit=FLAGS.limit or None,
        )
    print(f"{summary['photos']} photos: {summary['aligned']} aligned, {summary['failed']} failed "
          f"{summary['failure_reasons']}; {summary['several_faces']} with several faces. Output: {faceset.aligned_dir(output)}")
    return 0 if summary["aligned"] else 1


if __name__ == "__main__":
    sys.exit(app.run(main, flags_parser=config_flags.beam_flags_parser))
