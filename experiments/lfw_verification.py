"""LFW View 2 verification accuracy of an identity encoder (default: dlib's face ResNet in Keras).

Standard protocol on lfw_pairs.txt: 10 folds, threshold picked on 9, accuracy on the 10th; prints
mean +- std, the thresholds, and how many images the detector missed (those use a centred crop).
Descriptors are cached, so a rerun only redoes the k-fold evaluation.

    python experiments/lfw_verification.py [--chip_method=tf] [--cache_file=...]
"""

from __future__ import annotations

import time
from pathlib import Path

from absl import app, flags

from normface import paths
from normface.face import FACE_CHOICES
from normface.encoders import get_encoder
from normface.encoders.verification import CHIP_METHODS, DescriptorCache, read_lfw_pairs, verify_pairs

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Face-data root holding lfw/ and lfw_pairs.txt "
                    "(default: normface.paths.data_dir()).")
flags.DEFINE_string("encoder", "dlib_face_resnet_v1", "Registered encoder name.")
flags.DEFINE_enum("chip_method", "dlib", CHIP_METHODS,
                  "dlib: dlib.get_face_chip; tf: normface.face.extract_chips.")
flags.DEFINE_enum("choose", "center", FACE_CHOICES,
                  "Which detected face: nearest the image centre (LFW's labelled person) or largest.")
flags.DEFINE_string("cache_file", None, "Descriptor cache (.npz); default "
                    "<workspace>/cache/lfw_descriptors_<encoder>_<chip_method>_<choose>.npz.")


def main(argv):
    del argv
    start = time.time()
    root = Path(FLAGS.data_dir) if FLAGS.data_dir else paths.require_data_dir()
    cache_file = Path(FLAGS.cache_file) if FLAGS.cache_file else (
        paths.workspace_dir() / "cache" / f"lfw_descriptors_{FLAGS.encoder}_{FLAGS.chip_method}_{FLAGS.choose}.npz")
    pairs = read_lfw_pairs(root / "lfw_pairs.txt", root / "lfw")
    encoder = get_encoder(FLAGS.encoder)
    result = verify_pairs(pairs, encoder, DescriptorCache(cache_file, root / "lfw"),
                          FLAGS.chip_method, FLAGS.choose)
    print(f"LFW View 2 ({len(pairs)} pairs, {len(result.fold_accuracies)} folds), encoder "
          f"{encoder.name}, chips {FLAGS.chip_method}, face {FLAGS.choose}:")
    print("  fold accuracies: " + " ".join(f"{a:.4f}" for a in result.fold_accuracies))
    print("  thresholds:      " + " ".join(f"{t:.3f}" for t in result.thresholds))
    print(f"  accuracy: {100 * result.mean:.2f}% +- {100 * result.std:.2f}%")
    print(f"  images: {result.num_images}, detector misses (centred-crop fallback): "
          f"{result.detector_misses}")
    for name in result.missed_images[:20]:
        print(f"    missed: {name}")
    print(f"  descriptor cache: {cache_file}")
    print(f"  wall time: {time.time() - start:.1f} s")


if __name__ == "__main__":
    app.run(main)
