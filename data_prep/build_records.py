"""Builds the training/validation/test TFRecords from an aligned, averaged face set.

Face set (written by the issue-4 binaries) in -> ``--output``: train records augmented with
random morphs (paper Sec. 5), validation and test records un-augmented, ``meta.json``, and a
contact sheet like the paper's Fig. 6. Resumable: re-run the same command after an interruption.

    python data_prep/build_records.py --faces=workspace/faces128/averaged \\
        --output=workspace/records128 --num_examples=100000 --shard_size=2000

(``--encoder=none`` stores no features: only for augmentation experiments, not for training.)
``--mirrored`` also stores the features of each flipped example (the mirror augmentation); an
existing folder gets them without a rebuild with
``--add_mirrored=workspace/records128 --output=workspace/records128m``.

All the work is in :func:`normface.data.build.build_records`. ``--runner=DirectRunner|DataflowRunner|...``
runs the same build as an Apache Beam pipeline (:mod:`normface.pipelines.records`; the beam extra):
the same records and meta.json for a given seed whatever the parallelism; flags this binary does
not know are Beam pipeline options. A bad flag (every numeric flag has a
range) exits 2 before the encoder loads.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from normface.utils import config_flags, paths
from normface.data import composite, morph  # noqa: E402
from normface.data import build
from normface.data import records

FLAGS = flags.FLAGS
flags.DEFINE_string("faces", None, "Face-set root (template.json, <split>/...), from data_prep.")
flags.DEFINE_string("output", None, "Records folder (local or tf.io.gfile URL). Default: <workspace>/records.")
flags.DEFINE_integer("morphs_per_face", 100, "Random morphs per training face; 0 = un-augmented records.",
                     lower_bound=0)
flags.DEFINE_integer("num_examples", 0, "If > 0: exact number of training examples (originals + morphs).",
                     lower_bound=0)
flags.DEFINE_integer("shard_size", build.DEFAULT_SHARD_SIZE, "Examples per TFRecord shard.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of neighbour picks, weights and shard order.", lower_bound=0)
flags.DEFINE_float("theta", None, "Landmark weight in the neighbour distance; unset = balanced on the data.",
                   lower_bound=0.0)
flags.DEFINE_integer("k", morph.DEFAULT_K, "Nearest neighbours to pick a morph partner from.", lower_bound=1)
flags.DEFINE_string("encoder", "dlib", "Frozen encoder whose features are stored (normface.encoders); 'none' stores none (ablation/debugging only).")
flags.DEFINE_bool("mirrored", False, "Also store the encoder's features of each left/right-flipped example "
                  "(the mirror augmentation of training, --mirror).")
flags.DEFINE_string("add_mirrored", None, "Instead of building: copy this finished records folder to --output "
                    "with the mirrored features added (no re-rendering).")
flags.DEFINE_list("splits", list(records.SPLITS), "Splits to write.")
flags.DEFINE_float("attachment_fraction", composite.DEFAULT_ATTACHMENT_FRACTION,
                   "Compositing colour attachment length / size (lambda = 1/(this*size)^2); > 0.", lower_bound=1e-9)
flags.DEFINE_float("blur_sigma_fraction", composite.DEFAULT_BLUR_SIGMA_FRACTION,
                   "Gaussian blur sigma of the compositing mask / size.", lower_bound=0.0)
flags.DEFINE_string("contact_sheet", "", "PNG path of the Fig. 6 contact sheet; default <output>/contact_sheet.png.")
flags.DEFINE_integer("contact_seeds", 8, "Seed faces on the contact sheet.", lower_bound=0)
config_flags.existing_folder("faces")
config_flags.define_runner_flag()
flags.register_validator("splits", lambda v: set(v) <= set(records.SPLITS),
                         message=f"--splits: choose from {', '.join(records.SPLITS)}")


def main(argv):
    del argv
    output = FLAGS.output or str(paths.workspace_dir() / "records")
    if FLAGS.add_mirrored:
        try:
            encode_fn = build.encode_fn_for(FLAGS.encoder)
            meta = build.add_mirrored_features(FLAGS.add_mirrored, output, encode_fn, log=logging.info)
        except (ValueError, FileNotFoundError) as err:
            raise config_flags.usage_error(f"--add_mirrored: {err}") from err
        print(f"wrote {output}/{records.META_FILE} (mirrored features: {meta.mirrored})")
        return
    if not FLAGS.faces:
        raise config_flags.usage_error("--faces is required (the face-set root written by data_prep)")
    try:
        config = build.BuildConfig(
            morphs_per_face=FLAGS.morphs_per_face,
            num_examples=FLAGS.num_examples,
            shard_size=FLAGS.shard_size,
            seed=FLAGS.seed,
            theta=FLAGS.theta,
            k=FLAGS.k,
            encoder=FLAGS.encoder,
            mirrored=FLAGS.mirrored,
            composite=composite.CompositeConfig(FLAGS.attachment_fraction, FLAGS.blur_sigma_fraction),
        )
    except ValueError as err:
        raise config_flags.usage_error(str(err)) from err
    try:
        encode_fn = build.encode_fn_for(FLAGS.encoder)  # fail before any long work
    except ValueError as err:
        raise config_flags.usage_error(f"--encoder: {err}") from err
    sheet = FLAGS.contact_sheet or os.path.join(output, "contact_sheet.png")
    if FLAGS.runner:
        from normface.pipelines import common, records as beam_records

        try:
            options = common.pipeline_options(FLAGS.runner, config_flags.BEAM_ARGS)
        except ImportError as err:
            raise config_flags.usage_error(f"--runner={FLAGS.runner}: {err}") from err
        meta = beam_records.build_records(FLAGS.faces, output, config, options, splits=FLAGS.splits, log=logging.info,
                                          contact_sheet=sheet, contact_seeds=FLAGS.contact_seeds)
    else:
        meta = build.build_records(FLAGS.faces, output, config, encode_fn, splits=FLAGS.splits, log=logging.info,
                                   contact_sheet=sheet, contact_seeds=FLAGS.contact_seeds)
    for split, info in meta.splits.items():
        print(f"{split}: {info['count']} examples ({info['morphed']} morphs) in {len(info['shards'])} shards")
    print(f"wrote {output}/{records.META_FILE}")


if __name__ == "__main__":
    app.run(main, flags_parser=config_flags.beam_flags_parser)
