"""Stage 1 as an Apache Beam pipeline: photos -> detection, 68 landmarks, quality measures, aligned
face + JSON, and the manifest, in the layout and with the person split of ``data_prep/align_faces.py``.

The plan (photo list, person split, fixed shards, run.json) is drawn up on the launching machine by
:func:`normface.data.align.plan_alignment`, exactly as the local path does; each shard still to do
becomes one element, spread over the workers (``Reshuffle``), and is aligned by
:func:`normface.data.align.run_shard` (the local pool's function), with the expression model loaded
once per worker in ``DoFn.setup``. Shards whose manifest part exists are skipped, so a rerun
resumes. Failed photos are a tagged output, written as ``failures.jsonl`` (this run's failures)
and counted as ``normface/failed_<kind>`` metrics; the manifest and ``summary.json`` (all photos)
are merged on the launching machine when the pipeline is done. Photos are read through Beam's
filesystems; the data root and the output folder must be paths the launcher and every worker
see (local here; on Dataflow a mounted bucket or Filestore share).
"""

from __future__ import annotations

from pathlib import Path

from normface.data import align
from normface.faces.alignment import AlignmentTemplate
from normface.pipelines import common


def read_with_beam(data_root: str):
    """A ``read(path)`` for :func:`align.process_photo` that opens ``data_root/path`` through
    Beam's filesystems (local, gs://, s3://...) and decodes it as the local path does."""
    from apache_beam.io.filesystems import FileSystems

    from normface.utils import io_utils

    def read(rel: str):
        path = rel if Path(rel).is_absolute() or "://" in rel else FileSystems.join(str(data_root), rel)
        with FileSystems.open(path, compression_type="uncompressed") as f:
            data = f.read()
        return io_utils.read_rgb(path, data)

    return read


def _beam_classes():
    beam = common.require_beam()

    class AlignShardFn(beam.DoFn):
        """Aligns one shard (index, photos, person -> split); yields the index, failures tagged."""

        def __init__(self, data_root: str, out_root: str, template: dict, model_path: str | None):
            self.data_root, self.out_root, self.template, self.model_path = data_root, out_root, template, model_path
            self.timer = common.SetupTimer()
            self.aligned = beam.metrics.Metrics.counter(common.NAMESPACE, "aligned")

        def setup(self):
            from normface.faces import quality

            self.timer.start()
            self.model = quality.ExpressionModel.load(self.model_path)
            self._template = AlignmentTemplate.from_dict(self.template)
            self._read = read_with_beam(self.data_root)
            self.timer.stop()

        def process(self, shard):
            self.timer.report()
            index, photos, split_of = shard
            records = align.run_shard(index, photos, Path(self.data_root), Path(self.out_root), split_of,
                                      self._template, self.model, read=self._read)
            yield from common.route(records, "failed", self.aligned, keep_ok=False)
            yield index

    return beam, AlignShardFn


def build_pipeline(pipeline, plan: align.AlignmentPlan, report_path: str):
    """Adds stage 1's steps for ``plan``'s shards still to do to ``pipeline``; returns the
    PCollection of finished shard indices."""
    _, AlignShardFn = _beam_classes()
    elements = [(i, plan.shards[i], {p.person: plan.split_of[p.person] for p in plan.shards[i]}) for i in plan.todo]
    dofn = AlignShardFn(str(plan.data_root), str(plan.out_root), plan.template.to_dict(), plan.expression_model_path)
    results = common.fan_out(pipeline, elements, dofn, "Align")
    common.write_report(results[common.FAILED_TAG], report_path)
    return results.done


def align_all(data_root: str | Path, out_root: str | Path, template: AlignmentTemplate, options, progress=print,
              **plan_args) -> dict:
    """Runs stage 1 as a Beam pipeline with ``options`` (:func:`common.pipeline_options`); the
    same arguments (``plan_args``: :func:`normface.data.align.plan_alignment`), outputs and
    resumption as :func:`normface.data.align.align_all`. Returns the summary (``summary.json``)
    plus ``beam_failure_counters`` (kind -> count, this run) and ``failure_report`` (its path)."""
    beam = common.require_beam()
    plan = align.plan_alignment(data_root, out_root, template, progress=progress, **plan_args)
    report = str(Path(plan.out_root) / common.REPORT_FILE)
    counters: dict[str, int] = {}
    if plan.todo:
        pipeline = beam.Pipeline(options=options)
        build_pipeline(pipeline, plan, report)
        result = pipeline.run()
        result.wait_until_finish()
        counters = common.failure_counters(result)
    summary = align.merge_manifest(plan.out_root, len(plan.shards), plan.source_checks)
    return {**summary, "beam_failure_counters": counters, "failure_report": report}
