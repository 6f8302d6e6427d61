"""Benchmark of stage 1 on Apache Beam's DirectRunner (multi-process) against the local pool.

    python benchmarks/bench_beam.py --photos=2000 --workers=2 --output=/work/beam_bench

Runs the real stage 1 (detect, 68 landmarks, measures, align) on the first --photos LFW photos,
once with ``normface.data.align.align_all`` (``--workers`` spawned processes) and once with
``normface.pipelines.align.align_all`` on the DirectRunner (``--direct_num_workers=--workers``,
multi_processing), each into its own folder under --output (removed first; never the repo).
For each it prints the overall photos/s (launch to summary), the start-up (launch to the first
aligned face written: worker launch, imports, model load) and the steady rate (aligned faces per
second between the first and the last face written, from the files' modification times, the same
clock for both paths). Beam's model-load time in ``DoFn.setup`` is printed from its metric. The
load average before each run is printed too: the cores may be shared. Needs the beam extra.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from normface.data import align, faceset  # noqa: E402
from normface.faces.alignment import AlignmentTemplate  # noqa: E402
from normface.utils import paths  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("photos", 2000, "LFW photos to align per path.", lower_bound=10)
flags.DEFINE_integer("size", 128, "Aligned crop size.", lower_bound=16)
flags.DEFINE_integer("workers", 2, "Local processes and DirectRunner workers.", lower_bound=1)
flags.DEFINE_integer("shard_size", 50, "Photos per shard (both paths).", lower_bound=1)
flags.DEFINE_string("output", "/work/beam_bench", "Scratch folder (emptied first; not inside the repo).")
flags.DEFINE_list("paths", ["local", "beam"], "Which paths to time, in order.")


def timing(out: Path, launch: float, end: float, photos: int) -> dict:
    """Overall, start-up and steady rates of one run from its aligned faces' modification times."""
    stamps = sorted(p.stat().st_mtime for p in faceset.aligned_dir(out).glob("*/**/*.png"))
    if len(stamps) < 2:
        raise ValueError(f"{out}: fewer than 2 aligned faces written; nothing to time")
    return {"photos": photos, "aligned": len(stamps), "wall_s": end - launch, "overall": photos / (end - launch),
            "startup_s": stamps[0] - launch, "steady": (len(stamps) - 1) / (stamps[-1] - stamps[0])}


def run_local(data_root: Path, out: Path, template: AlignmentTemplate) -> dict:
    launch = time.time()
    align.align_all(data_root, faceset.aligned_dir(out), template, workers=FLAGS.workers, sources=["lfw"],
                    limit=FLAGS.photos, shard_size=FLAGS.shard_size, progress=lambda msg: None)
    return timing(out, launch, time.time(), FLAGS.photos)


def run_beam(data_root: Path, out: Path, template: AlignmentTemplate) -> dict:
    from apache_beam.metrics.metric import MetricsFilter

    from normface.pipelines import align as beam_align
    from normface.pipelines import common

    options = common.pipeline_options("DirectRunner", [f"--direct_num_workers={FLAGS.workers}",
                                                       "--direct_running_mode=multi_processing"])
    launch = time.time()
    plan = align.plan_alignment(data_root, faceset.aligned_dir(out), template, sources=["lfw"], limit=FLAGS.photos,
                                shard_size=FLAGS.shard_size, progress=lambda msg: None)
    beam = common.require_beam()
    pipeline = beam.Pipeline(options=options)
    beam_align.build_pipeline(pipeline, plan, str(faceset.aligned_dir(out) / common.REPORT_FILE))
    result = pipeline.run()
    result.wait_until_finish()
    align.merge_manifest(plan.out_root, len(plan.shards), plan.source_checks)
    row = timing(out, launch, time.time(), FLAGS.photos)
    dists = result.metrics().query(MetricsFilter().with_name("setup_ms"))["distributions"]
    setups = [d.committed or d.attempted for d in dists]
    if setups:
        row["setup_ms"] = {"count": sum(s.count for s in setups), "max": max(s.max for s in setups),
                           "mean": sum(s.sum for s in setups) / max(1, sum(s.count for s in setups))}
    return row


def main(argv):
    del argv
    data_root = paths.require_data_dir()
    scratch = Path(FLAGS.output).resolve()
    if Path(__file__).resolve().parents[1] in [scratch, *scratch.parents]:
        raise app.UsageError(f"--output {scratch}: inside the repository; choose a scratch folder")
    template = AlignmentTemplate.for_size(FLAGS.size)
    print(f"{os.cpu_count()} CPUs, {FLAGS.photos} LFW photos, {FLAGS.size}x{FLAGS.size}, {FLAGS.workers} workers, "
          f"shards of {FLAGS.shard_size}")
    rows = {}
    for name in FLAGS.paths:
        out = scratch / name
        shutil.rmtree(out, ignore_errors=True)
        load = os.getloadavg()[0]
        rows[name] = (run_local if name == "local" else run_beam)(data_root, out, template)
        r = rows[name]
        print(f"{name:<6} load before {load:4.1f}: {r['photos']} photos ({r['aligned']} aligned) in {r['wall_s']:.1f} s "
              f"= {r['overall']:.1f} photos/s overall; start-up {r['startup_s']:.1f} s; steady "
              f"{r['steady']:.1f} aligned faces/s" + (f"; DoFn.setup (model load) {r['setup_ms']}" if 'setup_ms' in r
                                                     else ""), flush=True)
    if {"local", "beam"} <= set(rows):
        print(f"beam/local steady ratio {rows['beam']['steady'] / rows['local']['steady']:.2f}, overall "
              f"{rows['beam']['overall'] / rows['local']['overall']:.2f}")


if __name__ == "__main__":
    app.run(main)
