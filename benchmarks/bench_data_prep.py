"""Benchmark of data preparation I: photos/second for detect + landmarks + measures + alignment,
and for morph averaging, on this machine's cores.

    python benchmarks/bench_data_prep.py --photos=200 --size=128

Stage 1 runs the real ``align_all`` on the first --photos LFW photos into a temporary folder with
1 and 2 worker processes; averaging warps and averages groups of --group aligned photos.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from normface.data import splits
from normface.utils import paths
from normface.faces.alignment import AlignmentTemplate  # noqa: E402
from normface.data.average import average_faces  # noqa: E402
from normface.data import align, faceset  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("photos", 200, "LFW photos to align per setting.")
flags.DEFINE_integer("size", 128, "Aligned crop size.")
flags.DEFINE_list("workers", ["1", "2"], "Worker-process counts to time.")
flags.DEFINE_integer("group", 4, "Photos per person in the averaging benchmark.")


def main(argv):
    del argv
    data_root = paths.require_data_dir()
    template = AlignmentTemplate.for_size(FLAGS.size)
    people = splits.make_splits(data_root)
    print(f"{os.cpu_count()} CPUs, {FLAGS.photos} LFW photos, {FLAGS.size}x{FLAGS.size}")
    print(f"{'stage':<34} {'workers':>7} {'photos/s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (int(w) for w in FLAGS.workers):
            out = Path(tmp) / f"w{workers}"
            splits.write_splits(out / align.SPLITS_FILE, people, seed=splits.DEFAULT_SEED)
            start = time.perf_counter()
            align.align_all(data_root, out, template, sources=["lfw"], workers=workers, limit=FLAGS.photos,
                            shard_size=max(1, FLAGS.photos // (4 * workers)), progress=lambda msg: None)
            rate = FLAGS.photos / (time.perf_counter() - start)
            print(f"{'detect+landmarks+measure+align':<34} {workers:>7} {rate:>9.1f}", flush=True)
        entries = list(faceset.iter_faces(out))
        images = np.stack([faceset.load_face_image(out, e) for e in entries])
        lms = np.stack([e.landmarks_array for e in entries])
        groups = len(entries) // FLAGS.group
        average_faces(images[: FLAGS.group], lms[: FLAGS.group])  # warm-up (tracing, XLA compile)
        start = time.perf_counter()
        for g in range(groups):
            sl = slice(g * FLAGS.group, (g + 1) * FLAGS.group)
            average_faces(images[sl], lms[sl])
        rate = groups * FLAGS.group / (time.perf_counter() - start)
        print(f"{'morph averaging (groups of ' + str(FLAGS.group) + ')':<34} {1:>7} {rate:>9.1f}")


if __name__ == "__main__":
    app.run(main)
