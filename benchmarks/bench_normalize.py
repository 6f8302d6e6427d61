"""End-to-end speed of ``normface normalize`` on CPU, per stage, TensorFlow and LiteRT side by side.

    python benchmarks/bench_normalize.py --photos=200

On the first --photos LFW photos (sorted; ``--photos_dir`` for another folder), for each backend
(``--backends``; default the old TensorFlow path and the LiteRT one, issue 31) in one run: reading,
detection + 68 landmarks + alignment, the networks (chip + encoder + decoder + warp + encoding the
output for the confidence), the decoder + warp alone on stored features, and writing the PNGs,
each stage alone; their sum (the stages one after another, as the CLI ran them before issue 31);
and ``normface normalize`` itself on the same photos with the model already loaded (its stages
overlapped: detection on one core while the networks run on the other, PNGs written meanwhile;
the run manifest's hashing included). Prints faces/second for each row and the speed-ups over the
old path (TensorFlow, stages one after another).

    python benchmarks/bench_normalize.py --photos=200 --reference=<checkout of 8f432e6>

``--reference``: a checkout of normface from before issue 31 (``git worktree add``): its own
bench_normalize.py runs first, on the same photos, in its own process with its own code (the
old path as issue 31 measured it: TensorFlow, stages one after another, each stage's first call
included); its output is printed, and its end-to-end faces/s is the reference of the ratios.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from normface.utils import io_utils  # noqa: E402
from normface.utils import paths  # noqa: E402
from normface.serving.normalizer import FaceNormalizer  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("photos", 200, "LFW photos to normalize.", lower_bound=1)
flags.DEFINE_integer("batch_size", 16, "Faces per network batch.", lower_bound=1)
flags.DEFINE_string("model", None, "Model (default: the shipped one).")
flags.DEFINE_string("photos_dir", None, "Read the photos from this folder (*.jpg, sorted) instead of LFW.")
flags.DEFINE_list("backends", ["tensorflow", "litert"], "Backends to time, in this order.")
flags.DEFINE_string("reference", None, "A checkout of normface from before issue 31: its bench_normalize.py runs "
                    "first on the same photos, and its end-to-end faces/s is printed beside and divides these.")

STAGES = ("read", "detect + landmarks + align", "chip + encoder + decoder + warp + confidence", "write PNG")
DECODER_ROW = "decoder + warp alone"
SEQUENTIAL_ROW = "end to end, the stages one after another"
OVERLAPPED_ROW = "end to end, overlapped (normface normalize)"


def warm_up_sizes(n: int, bs: int) -> list[int]:
    """The batch sizes a run of ``n`` faces in batches of ``bs`` uses (TensorFlow traces each once:
    a trace inside a timed loop would count against it)."""
    return sorted({min(bs, n)} | ({n % bs} if n % bs else set()))


def decoder_alone(normalizer, features: np.ndarray, bs: int) -> float:
    """Seconds for the decoder + warp on stored features (the backend's own way)."""
    if normalizer.backend is not None:
        backend = normalizer.backend

        def run(f):
            with backend.networks() as nets:
                landmarks, texture = nets.decode(f)
            return backend.warp(texture, landmarks)
    else:
        import tensorflow as tf

        decode = tf.function(lambda f: normalizer.model(f, training=False))

        def run(f):
            return decode(tf.constant(f))["image"].numpy()
    for size in warm_up_sizes(len(features), bs):
        run(features[:size])
    start = time.perf_counter()
    for i in range(0, len(features), bs):
        run(features[i:i + bs])
    return time.perf_counter() - start


def time_backend(backend: str, files: list[Path], bs: int) -> tuple[dict[str, float], int]:
    normalizer = FaceNormalizer.from_pretrained(FLAGS.model, backend=backend)
    times = {}
    start = time.perf_counter()
    photos = [io_utils.read_rgb(f) for f in files]
    times["read"] = time.perf_counter() - start
    normalizer.align(photos[0])  # warm-up: dlib's detector and landmark files load on first use
    start = time.perf_counter()
    prepared = [normalizer.align(p) for p in photos]
    times["detect + landmarks + align"] = time.perf_counter() - start
    faces = [p[0] for p in prepared if p]
    if not faces:
        raise SystemExit("bench_normalize.py: error: no faces found in the photos")
    aligned = np.stack([f[0] for f in faces])
    landmarks = np.stack([f[1] for f in faces])
    for size in warm_up_sizes(len(faces), bs):  # warm-up (tracing, interpreter allocation)
        normalizer.normalize_aligned(aligned[:size], landmarks[:size])
    start = time.perf_counter()
    outs = [normalizer.normalize_aligned(aligned[i:i + bs], landmarks[i:i + bs]) for i in range(0, len(faces), bs)]
    times["chip + encoder + decoder + warp + confidence"] = time.perf_counter() - start
    times[DECODER_ROW] = decoder_alone(normalizer, np.concatenate([o["features"] for o in outs]), bs)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for i, img in enumerate(np.concatenate([o["image"] for o in outs])):
            io_utils.save_image_atomic(Path(tmp) / f"{i}.png", img)
        times["write PNG"] = time.perf_counter() - start
    times[SEQUENTIAL_ROW] = sum(times[s] for s in STAGES)
    times[OVERLAPPED_ROW] = time_cli(normalizer, files, bs, len(faces))
    return times, len(faces)


def time_cli(normalizer, files: list[Path], bs: int, faces: int) -> float:
    """Seconds of ``normface normalize FILES -o TMP --batch-size BS`` in this process with
    ``normalizer`` (loaded and warmed up: the model's load is bench_start.py's business)."""
    import normface.cli

    loader = normface.cli._load_normalizer
    normface.cli._load_normalizer = lambda args, choose="largest": normalizer
    try:
        with tempfile.TemporaryDirectory() as tmp:
            argv = ["normalize", *map(str, files), "-o", tmp, "--batch-size", str(bs)]
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
                start = time.perf_counter()
                code = normface.cli.main(argv)
                seconds = time.perf_counter() - start
            made = len(list(Path(tmp).glob("*_face0.png")))
    finally:
        normface.cli._load_normalizer = loader
    if code != 0 or made != faces:
        raise SystemExit(f"bench_normalize.py: error: normface normalize exited {code} with {made} of {faces} faces:"
                         f"\n{err.getvalue()[-2000:]}")
    return seconds


def reference_faces_per_second(checkout: Path, photos: int, batch_size: int) -> float:
    """Runs ``checkout``'s own ``benchmarks/bench_normalize.py`` (its code on the path, nothing
    else running) and returns its end-to-end faces/s: the last number of its first line that
    starts with "end to end". Its output is printed as it came."""
    # Its data: the LFW photos this run reads (a checkout elsewhere would look beside itself).
    env = {**os.environ, "PYTHONPATH": str(checkout), "NORMFACE_DATA": str(paths.require_data_dir())}
    args = [sys.executable, "benchmarks/bench_normalize.py", f"--photos={photos}", f"--batch_size={batch_size}"]
    result = subprocess.run(args, cwd=checkout, env=env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"bench_normalize.py: error: --reference={checkout}: its benchmark exited "
                         f"{result.returncode}:\n{result.stderr[-2000:]}")
    print(f"== reference {checkout}:\n{result.stdout.rstrip()}\n")
    line = next((l for l in result.stdout.splitlines() if l.startswith("end to end")), None)
    numbers = re.findall(r"\d+\.\d+", line or "")
    if not numbers:
        raise SystemExit(f"bench_normalize.py: error: --reference={checkout}: no 'end to end' line in its output")
    return float(numbers[-1])


def main(argv):
    del argv
    root = Path(FLAGS.photos_dir) if FLAGS.photos_dir else paths.require_data_dir() / "lfw"
    files = sorted(root.glob("*.jpg" if FLAGS.photos_dir else "*/*.jpg"))[: FLAGS.photos]
    if not files:
        raise SystemExit(f"bench_normalize.py: error: --photos_dir: no *.jpg in {root}")
    bs = FLAGS.batch_size
    if FLAGS.reference and FLAGS.photos_dir:
        raise SystemExit("bench_normalize.py: error: --reference runs on LFW photos only (not with --photos_dir)")
    reference = (reference_faces_per_second(Path(FLAGS.reference).resolve(), FLAGS.photos, bs)
                 if FLAGS.reference else None)
    results = {b: time_backend(b, files, bs) for b in FLAGS.backends}
    n = next(iter(results.values()))[1]
    print(f"{len(files)} photos ({root}), {n} faces, batch {bs}, {os.cpu_count()} CPUs; faces/s (seconds)")
    print(f"{'stage':<46} " + " ".join(f"{b:>20}" for b in results))
    for stage in STAGES + (DECODER_ROW, SEQUENTIAL_ROW, OVERLAPPED_ROW):
        cells = [f"{n / t[stage]:>9.1f} ({t[stage]:>7.2f}s)" for t, _ in results.values()]
        print(f"{stage:<46} " + " ".join(f"{c:>20}" for c in cells))
    if "tensorflow" in results:
        old = results["tensorflow"][0][SEQUENTIAL_ROW]  # the old path: TensorFlow, one stage after another
        for b, (t, _) in results.items():
            print(f"{b}, overlapped / the old path (TensorFlow, stages one after another): "
                  f"{old / t[OVERLAPPED_ROW]:.2f}x")
    if reference is not None:
        for b, (t, _) in results.items():
            print(f"{b}, overlapped / the reference checkout's end to end ({reference:.1f} faces/s): "
                  f"{n / t[OVERLAPPED_ROW] / reference:.2f}x")


if __name__ == "__main__":
    app.run(main)
