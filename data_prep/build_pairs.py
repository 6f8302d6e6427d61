"""Data preparation III b: invariance-pair records (another photo's features -> the neutral face).

    python data_prep/build_pairs.py --size=128 --records=workspace/records128 \
        --output=workspace/pairs128

Reads ``<faces>/aligned`` (the photos), ``<faces>/screened`` (the neutral averages and
``invariance.json``, from data_prep/screen_faces.py) and the main records' meta.json (their mean
landmarks: the pairs' textures are registered to them). Writes a records folder with a ``train``
split that ``experiments/train.py --pairs_dir=... --pairs_ratio=...`` mixes in. Every pair is
checked (same person, training split, no photo near a validation or test photo):
:mod:`normface.data.pairs`. Resumable: rerun the same command.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from normface.data import build, pairs, records  # noqa: E402
from normface.utils import config_flags, paths  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("faces", None, "Faces folder of stages 1-2 (default <workspace>/faces<size>).")
flags.DEFINE_integer("size", 128, "Crop size, to find the default --faces folder.", lower_bound=16)
config_flags.existing_folder("faces")
flags.DEFINE_string("records", None, "The main records folder the pairs are mixed into (its mean landmarks).")
flags.DEFINE_string("output", None, "Output records folder (default <workspace>/pairs<size>).")
flags.DEFINE_string("encoder", "dlib", "Frozen encoder (must be the main records' encoder).")
flags.DEFINE_integer("seed", 0, "Seed of the shard order.", lower_bound=0)
flags.DEFINE_integer("shard_size", pairs.DEFAULT_SHARD_SIZE, "Examples per shard.", lower_bound=1)
flags.mark_flag_as_required("records")


def main(argv):
    del argv
    faces = paths.Path(FLAGS.faces) if FLAGS.faces else paths.workspace_dir() / f"faces{FLAGS.size}"
    output = FLAGS.output or str(paths.workspace_dir() / f"pairs{FLAGS.size}")
    try:
        main_meta = records.read_meta(FLAGS.records)
    except (FileNotFoundError, ValueError) as err:
        raise config_flags.usage_error(f"--records: {err}") from err
    if main_meta.raw.get("encoder") not in (FLAGS.encoder, None):
        raise config_flags.usage_error(f"--encoder={FLAGS.encoder}, but {FLAGS.records} was built with "
                                       f"{main_meta.raw.get('encoder')!r}")
    try:
        encode_fn = build.encode_fn_for(FLAGS.encoder)
    except ValueError as err:
        raise config_flags.usage_error(f"--encoder: {err}") from err
    meta = pairs.build_pair_records(faces, FLAGS.records, output, encode_fn, FLAGS.encoder, seed=FLAGS.seed,
                                    shard_size=FLAGS.shard_size,
                                    descriptor_fn=lambda images, marks: encode_fn(images, marks)[1],
                                    log=logging.info)
    print(json.dumps(meta.raw["pairs"], indent=1))
    print(f"wrote {output}/{records.META_FILE}")


if __name__ == "__main__":
    app.run(main, flags_parser=config_flags.flags_parser)
