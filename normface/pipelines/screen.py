"""Stage 2b (leakage screening and deduplication) as an Apache Beam pipeline, with the outputs of
``data_prep/screen_faces.py``.

The launcher draws up the plan (:func:`normface.data.screen.plan_screening`: the training pool and
the held-out photos; it refuses a folder screened with other thresholds) and reads the descriptor
cache, as the local path does; the faces still without a descriptor become the same chunks
(:func:`normface.data.screen.missing_chunks`, ``CHUNK`` faces each, numbered as the local path
numbers them). Each chunk is one element: one batch through the encoder, loaded once per worker in
``DoFn.setup``, written as the same cache file (:func:`normface.data.screen.encode_chunk`,
:func:`~normface.data.screen.write_chunk`, the local loop's functions). A face whose image cannot
be read is a tagged failure (``<screened>/failures.jsonl``, counter ``normface/failed_<kind>``),
never a failed pipeline: it is left out of the screening (a pool face is not in the screened set;
when no training face is left, the launcher raises ValueError after the report is written).

The comparisons need every descriptor at once: this run's chunks are gathered as a side input
(``AsList``) of one last step, which adds the cache's earlier chunks and runs
:func:`normface.data.screen.finish_screening` (the local path's function: nearest held-out photo,
duplicate groups, the screened face set, ``removed.jsonl``, ``invariance.json``,
``screening.json``) on one worker. So the outputs are the local path's for the same faces; a rerun
encodes nothing already cached. The face set must be a path every worker sees.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Union

from normface.data import screen
from normface.pipelines import common

# An encoder name (normface.encoders, resolved on each worker) or a picklable DescriptorFn.
Descriptor = Union[str, screen.DescriptorFn]


def _failure(chunk: screen.DescriptorChunk, entry, reason: str) -> dict:
    return {"key": entry.key, "split": entry.split, "set": chunk.name, "status": "failed", "reason": reason}


def _beam_classes():
    beam = common.require_beam()

    class EncodeChunkFn(beam.DoFn):
        """Encodes one chunk and writes its cache file; yields (name, keys, descriptors), failures tagged."""

        def __init__(self, cache: str, descriptor: Descriptor):
            self.cache, self.descriptor = cache, descriptor
            self.timer = common.SetupTimer()
            self.described = beam.metrics.Metrics.counter(common.NAMESPACE, "described")

        def setup(self):
            self.timer.start()
            self.descriptor_fn = (screen.descriptor_fn_for(self.descriptor) if isinstance(self.descriptor, str)
                                  else self.descriptor)
            self.timer.stop()

        def process(self, chunk: screen.DescriptorChunk):
            self.timer.report()
            failed: list[dict] = []
            try:
                keys, desc = screen.encode_chunk(chunk, self.descriptor_fn, unreadable=lambda entry, err: failed.append(
                    _failure(chunk, entry, f"unreadable: {err!r}")))
            except Exception as err:  # the encoder failed on the batch: report its faces, go on
                reason = f"encoder error: {err!r}"
                failed = [{**_failure(chunk, e, reason), "traceback": traceback.format_exc(limit=3)}
                          for e in chunk.entries]
                keys = []
            records = [{"key": k, "status": "described"} for k in keys] + failed
            yield from common.route(records, "failed", self.described, keep_ok=False)
            if len(keys):
                screen.write_chunk(Path(self.cache), chunk, keys, desc)
                yield chunk.name, keys.tolist(), desc

    class ScreenFn(beam.DoFn):
        """The comparisons and the outputs, on one worker: :func:`screen.finish_screening` of the
        faces with a descriptor (the cache's earlier chunks and this run's, the side input)."""

        def __init__(self, plan: screen.ScreenPlan):
            self.plan = plan
            self.screened = beam.metrics.Metrics.counter(common.NAMESPACE, "screened")

        def process(self, _, new_chunks):
            plan = self.plan
            known = {name: screen.read_cache(plan.cache, name)[0] for name, _, _ in plan.described()}
            for name, keys, desc in new_chunks:
                known[name].update(zip(keys, desc))
            pool = [e for e in plan.pool if screen.cache_key(e) in known["pool"]]
            held_out = [e for e in plan.held_out if screen.cache_key(e) in known["heldout"]]
            not_described = [e for e in plan.pool if screen.cache_key(e) not in known["pool"]]
            if not pool:  # every training face failed: nothing to screen (the launcher says so)
                return
            self.screened.inc()
            yield screen.finish_screening(plan, pool, screen.stack_descriptors(known["pool"], pool), held_out,
                                          screen.stack_descriptors(known["heldout"], held_out), not_described)

    return beam, EncodeChunkFn, ScreenFn


def screen_faces(faces_root, descriptor: Descriptor, config: screen.ScreenConfig, options,
                 progress=print) -> dict:
    """:func:`normface.data.screen.screen_faces` on Beam with ``options``: ``descriptor`` is an
    encoder name (``--encoder``, loaded on each worker) or a picklable ``DescriptorFn``. Returns
    the report (``screening.json``) plus ``beam_failure_counters`` (kind -> count, this run) and
    ``failure_report`` (its path)."""
    beam, EncodeChunkFn, ScreenFn = _beam_classes()
    if isinstance(descriptor, str):
        from normface import encoders

        encoders.check_name(descriptor)
    plan = screen.plan_screening(faces_root, config)
    chunks = []
    for name, root, entries in plan.described():
        known, next_index = screen.read_cache(plan.cache, name)
        chunks += screen.missing_chunks(name, root, entries, known, next_index)
    progress(f"{sum(len(c.entries) for c in chunks)} faces to encode in {len(chunks)} chunk(s)")
    report = str(plan.out_root / common.REPORT_FILE)
    pipeline = beam.Pipeline(options=options)
    encoded = common.fan_out(pipeline, chunks, EncodeChunkFn(str(plan.cache), descriptor), "Encode")
    common.write_report(encoded[common.FAILED_TAG], report)
    (pipeline
     | "ScreenStart" >> beam.Create([None])
     | "Screen" >> beam.ParDo(ScreenFn(plan), beam.pvalue.AsList(encoded.done)))
    result = pipeline.run()
    result.wait_until_finish()
    if not common.counter_values(result).get("screened"):
        raise ValueError(f"{plan.averaged_root}: no training face could be described (see {report})")
    return {**screen.read_report(plan.faces_root), "beam_failure_counters": common.failure_counters(result),
            "failure_report": report}
