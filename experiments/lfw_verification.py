"""LFW View 2 verification accuracy of an identity encoder (default: dlib's face ResNet in Keras).

Standard protocol on lfw_pairs.txt: 10 folds, threshold picked on 9, accuracy on the 10th; prints
mean +- std, the thresholds, and how many faces each detector found / the detectors missed
(those use a centred crop). Descriptors are cached, so a rerun only redoes the evaluation.

The default is dlib's published protocol: jittered descriptors (each face's descriptor is the
mean over ``--jitter`` ``dlib.jitter_image`` copies of its chip, as dlib's
``compute_face_descriptor(..., num_jitters=N)``; dlib used N=100, the default here is 10 to keep
a CPU run near 15 minutes: 99.17% +- 0.24%). ``--jitter=0`` gives the plain network's figure
(98.88% +- 0.31%).

    python experiments/lfw_verification.py [--jitter=N] [--detectors=hog] [--flip_average]
        [--chip_method=tf] [--output_json=PATH]

Writes the result (protocol, per-fold accuracies and thresholds, detector counts and misses, git
commit, date, wall time) to ``--output_json``, by default
``experiments/results/lfw_view2_<options tag>.json``; the committed
``experiments/results/lfw_view2_dlib_center_hog+cnn_jitter10.json`` is the README's figure.
``--jitter=0`` is the cheap mode (no jittered copies: about a tenth of the encoder work).
"""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

from absl import app, flags

from normface.utils import paths
from normface.encoders import get_encoder
from normface.encoders.verification import (
    CHIP_METHODS,
    ChipOptions,
    DescriptorCache,
    read_lfw_pairs,
    result_record,
    verify_pairs,
)
from normface.utils.io_utils import write_bytes_atomic
from normface.utils.provenance import git_commit
from normface.faces.detection import DETECTORS, FACE_CHOICES

FLAGS = flags.FLAGS
DEFAULT_JITTER = 10  # dlib's published protocol jitters (with 100); 10 copies fit a CPU run
flags.DEFINE_string("data_dir", None, "Face-data root holding lfw/ and lfw_pairs.txt "
                    "(default: normface.utils.paths.data_dir()).")
flags.DEFINE_string("encoder", "dlib_face_resnet_v1", "Registered encoder name.")
flags.DEFINE_enum("chip_method", "dlib", CHIP_METHODS,
                  "dlib: dlib.get_face_chip; tf: normface.faces.chips.extract_chips.")
flags.DEFINE_enum("choose", "center", FACE_CHOICES,
                  "Which detected face: nearest the image centre (LFW's labelled person) or largest.")
flags.DEFINE_list("detectors", ["hog", "cnn"], "Detectors tried in order until one finds a face, "
                  f"from {sorted(DETECTORS)} (cnn only runs on HOG misses).")
flags.DEFINE_bool("flip_average", False, "Average the descriptors of the chip and its mirror.")
flags.DEFINE_integer("jitter", DEFAULT_JITTER, "dlib's num_jitters: a face's descriptor is the "
                     "mean over this many dlib.jitter_image copies of its chip (0 or 1 = off).",
                     lower_bound=0)
flags.DEFINE_string("cache_file", None, "Descriptor cache (.npz); default "
                    "<workspace>/cache/lfw_descriptors_<encoder>_<options>.npz.")
flags.DEFINE_string("output_json", None, "Where the result goes (JSON); default "
                    "experiments/results/lfw_view2_<options>.json ('' = none).")


def main(argv):
    del argv
    start = time.time()
    for name in FLAGS.detectors:
        if name not in DETECTORS:
            raise app.UsageError(f"--detectors: unknown {name!r}; choose from {sorted(DETECTORS)}")
    options = ChipOptions(FLAGS.chip_method, FLAGS.choose, tuple(FLAGS.detectors),
                          FLAGS.flip_average, FLAGS.jitter)
    root = Path(FLAGS.data_dir) if FLAGS.data_dir else paths.require_data_dir()
    cache_file = Path(FLAGS.cache_file) if FLAGS.cache_file else (
        paths.workspace_dir() / "cache" / f"lfw_descriptors_{FLAGS.encoder}_{options.tag()}.npz")
    pairs = read_lfw_pairs(root / "lfw_pairs.txt", root / "lfw")
    encoder = get_encoder(FLAGS.encoder)
    cache = DescriptorCache(cache_file, root / "lfw")
    cached_before = len(cache.entries)  # > 0: part of the descriptors came from an earlier run
    result = verify_pairs(pairs, encoder, cache, options)
    print(f"LFW View 2 ({len(pairs)} pairs, {len(result.fold_accuracies)} folds), encoder "
          f"{encoder.name}, options {options.tag()}:")
    print("  fold accuracies: " + " ".join(f"{a:.4f}" for a in result.fold_accuracies))
    print("  thresholds:      " + " ".join(f"{t:.3f}" for t in result.thresholds))
    print(f"  accuracy: {100 * result.mean:.2f}% +- {100 * result.std:.2f}%")
    counts = ", ".join(f"{name}: {n}" for name, n in result.detector_counts.items())
    print(f"  images: {result.num_images} (face found by {counts}); detector misses "
          f"(centred-crop fallback): {len(result.missed_images)}")
    for name in result.missed_images[:20]:
        print(f"    missed: {name}")
    print(f"  descriptor cache: {cache_file}")
    seconds = time.time() - start
    print(f"  wall time: {seconds:.1f} s")
    output = FLAGS.output_json
    if output is None:
        output = str(paths.REPO_ROOT / "experiments" / "results" / f"lfw_view2_{options.tag()}.json")
    if output:
        record = result_record(result, pairs, FLAGS.encoder, options, commit=git_commit(),
                               date=datetime.date.today().isoformat(), wall_seconds=round(seconds, 1),
                               descriptors_cached_before=cached_before)
        write_bytes_atomic(output, (json.dumps(record, indent=1) + "\n").encode())
        print(f"  result: {output}")


if __name__ == "__main__":
    app.run(main)
