"""A new user's first run: ``normface normalize <one photo> -o <folder>``, wall time and peak RSS
of the whole process, the LiteRT path and the TensorFlow path side by side (issue 31).

    python benchmarks/bench_start.py --rounds=3 [--photo=samples/london_005_08.jpg]

Each round runs the command once per backend (``NORMFACE_BACKEND``, alternating, so a shared
machine's load falls on both), each in a fresh process into a fresh folder; prints the median
wall seconds and peak resident memory (the process's own ``ru_maxrss``, from ``wait4``).
Only an idle machine gives numbers worth quoting.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS
flags.DEFINE_string("photo", str(REPO / "samples" / "london_005_08.jpg"), "The one photo to normalize.")
flags.DEFINE_integer("rounds", 3, "Runs per backend (the median is printed).", lower_bound=1)
flags.DEFINE_list("backends", ["litert", "tensorflow"], "NORMFACE_BACKEND values to compare.")
flags.DEFINE_string("normface", None, "The normface command (default: this Python's `-m normface.cli`).")


def run_once(backend: str, photo: str, out: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one ``normface normalize`` process."""
    command = FLAGS.normface.split() if FLAGS.normface else [sys.executable, "-m", "normface.cli"]
    env = {**os.environ, "NORMFACE_BACKEND": backend}
    start = time.perf_counter()
    proc = subprocess.Popen(command + ["normalize", photo, "-o", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"bench_start.py: error: {backend}: exit {proc.returncode}: {err[-500:]}")
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def main(argv):
    del argv
    if not Path(FLAGS.photo).is_file():
        raise SystemExit(f"bench_start.py: error: --photo: no such file: {FLAGS.photo}")
    runs: dict[str, list[tuple[float, float]]] = {b: [] for b in FLAGS.backends}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(FLAGS.rounds):
            for backend in FLAGS.backends:
                runs[backend].append(run_once(backend, FLAGS.photo, Path(tmp) / f"{backend}{r}"))
    load = os.getloadavg()[0]
    print(f"normface normalize {Path(FLAGS.photo).name} -o out/: median of {FLAGS.rounds}, {os.cpu_count()} CPUs, "
          f"load average {load:.2f} at the end")
    print(f"{'backend':<12} {'wall s':>8} {'peak RSS MB':>12}   all runs (s)")
    for backend, values in runs.items():
        walls = [w for w, _ in values]
        print(f"{backend:<12} {statistics.median(walls):>8.2f} {statistics.median(m for _, m in values):>12.0f}   "
              + " ".join(f"{w:.2f}" for w in walls))


if __name__ == "__main__":
    app.run(main)
