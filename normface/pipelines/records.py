"""Stage 3 as an Apache Beam pipeline: averaged faces -> morphs, composites, encoder features ->
sharded TFRecords, with the schema, ``build.json`` and ``meta.json`` of ``data_prep/build_records.py``.

The launcher draws up the plan (:func:`normface.data.build.plan_build`: every shard's seeds,
neighbours and weights from ``--seed``), probes the encoder, checks or writes ``build.json`` and
makes one element per shard still missing. Each worker draws up the same plan again in
``DoFn.setup`` (deterministic: the same face set and seed) and loads the encoder once, then
writes its shards with :func:`normface.data.build.write_shard`, the local loop's function. A
shard's content depends only on the plan, never on which worker writes it or in which order, so
the records are the same for a given seed whatever the runner's parallelism. ``meta.json`` (and
the contact sheet) are written by the launcher when every shard exists; a rerun skips finished
shards. The face set and the output must be paths (or ``tf.io.gfile`` URLs) every worker sees.
"""

from __future__ import annotations

from typing import Callable, Iterable

from normface.data import build
from normface.data.records import SPLITS, RecordsMeta
from normface.pipelines import common


def _beam_classes():
    beam = common.require_beam()

    class WriteShardFn(beam.DoFn):
        """Writes one (split, index) shard; yields (split, index, examples written)."""

        def __init__(self, faceset_root: str, output_dir: str, config: build.BuildConfig, splits: list[str]):
            self.faceset_root, self.output_dir, self.config, self.splits = faceset_root, output_dir, config, splits
            self.timer = common.SetupTimer()
            self.examples = beam.metrics.Metrics.counter(common.NAMESPACE, "examples_written")

        def setup(self):
            self.timer.start()
            self.plan = build.plan_build(self.faceset_root, self.config, self.splits, log=lambda msg: None)
            self.encode_fn = build.encode_fn_for(self.config.encoder)
            self.morphers = {}
            self.timer.stop()

        def process(self, shard):
            self.timer.report()
            split, index = shard
            if split not in self.morphers:
                self.morphers[split] = self.plan.morpher(split)
            written = build.write_shard(self.output_dir, self.plan, split, index, self.morphers[split], self.encode_fn)
            self.examples.inc(written)
            yield split, index, written

    return beam, WriteShardFn


def build_records(faceset_root, output_dir: str, config: build.BuildConfig, options, splits: Iterable[str] = SPLITS,
                  log: Callable[[str], None] = print, contact_sheet: str | None = None,
                  contact_seeds: int = 8) -> RecordsMeta:
    """:func:`normface.data.build.build_records` on Beam with ``options``: the same arguments
    (the encoder is ``config.encoder``, resolved on each worker), the same records and meta."""
    beam, WriteShardFn = _beam_classes()
    plan = build.plan_build(faceset_root, config, splits, log)
    dims = build.probe_encoder(plan, build.encode_fn_for(config.encoder))
    build.prepare_output(output_dir, plan)
    import tensorflow as tf

    todo = [(split, i) for split in plan.splits for i in range(plan.shard_count(split))
            if not tf.io.gfile.exists(plan.shard_path(output_dir, split, i))]
    total = sum(plan.shard_count(s) for s in plan.splits)
    log(f"{total} shards, {total - len(todo)} already written")
    if todo:
        pipeline = beam.Pipeline(options=options)
        common.fan_out(pipeline, todo, WriteShardFn(str(faceset_root), str(output_dir), config, plan.splits), "Write")
        pipeline.run().wait_until_finish()
    return build.finish_build(output_dir, plan, dims, contact_sheet, contact_seeds, log)
