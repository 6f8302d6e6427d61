"""Batch normalization as an Apache Beam pipeline: photos -> normalized PNG (+ JSON) and a report.

``normface normalize PHOTOS -o OUT --runner=DirectRunner|DataflowRunner|... [pipeline options]``
runs this instead of the local loop. The inputs are expanded on the launching machine exactly as
the local path does (:func:`normface.serving.batch_files.discover`: the same output names); each
input whose outputs already exist is skipped (resumption), the rest are grouped into batches of
``--batch-size`` photos and normalized by :func:`normface.serving.batch_files.run_batch` (the local
path's function, which batches the faces through the networks), with the model loaded once per
worker in ``DoFn.setup``. Each input's report line (``ok`` or ``error``) is an element; errors are
a tagged output written to ``<output>/failures.jsonl`` and counted as ``normface/failed_<kind>``;
with ``--report`` every line is also written there. A failed photo never fails the pipeline.
Photos are read through Beam's filesystems; the output folder must be a path every worker sees.
"""

from __future__ import annotations

import os
from pathlib import Path

from normface.pipelines import common
from normface.serving import batch_files


def is_done(item: batch_files.InputFile, options: batch_files.BatchOptions) -> bool:
    """Whether an earlier run wrote this input's outputs: its first face's image (and JSON with
    ``write_json``). Outputs are written atomically, so a present file is complete; with
    ``all_faces`` the later faces of an input cut off mid-way are not checked."""
    wanted = [batch_files.output_path(options.output, item, 0, options.fmt)]
    if options.write_json:
        wanted.append(batch_files.output_path(options.output, item, 0, "json"))
    return all(p.is_file() for p in wanted)


def _read_with_beam(item: batch_files.InputFile):
    from apache_beam.io.filesystems import FileSystems

    from normface.utils import io_utils

    with FileSystems.open(str(item.path), compression_type="uncompressed") as f:
        return io_utils.read_rgb(item.path, f.read())


def _beam_classes():
    beam = common.require_beam()

    class NormalizeBatchFn(beam.DoFn):
        """Normalizes one batch of inputs; yields their report lines, errors tagged."""

        def __init__(self, model: str | None, options: batch_files.BatchOptions, choose: str):
            self.model, self.options, self.choose = model, options, choose
            self.timer = common.SetupTimer()
            self.normalized = beam.metrics.Metrics.counter(common.NAMESPACE, "normalized")

        def setup(self):
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            from normface.serving.normalizer import FaceNormalizer

            self.timer.start()
            self.normalizer = FaceNormalizer.from_pretrained(self.model, choose=self.choose)
            self.timer.stop()

        def process(self, batch):
            self.timer.report()
            lines: list[dict] = []
            batch_files.run_batch(self.normalizer, list(batch), self.options, report=lines.append,
                                  read=_read_with_beam)
            yield from common.route(lines, "error", self.normalized, keep_ok=True)

    return beam, NormalizeBatchFn


def normalize_files(files: list[batch_files.InputFile], options: batch_files.BatchOptions, beam_options,
                    model: str | None = None, report_path: str | None = None, choose: str = "largest",
                    overwrite: bool = False) -> dict:
    """Normalizes ``files`` on Beam with ``beam_options``; returns {"inputs", "skipped",
    "failure_counters" (kind -> count), "counters", "failure_report"}. ``report_path``: also write
    every input's report line (ok, error, skipped) there as JSON lines. ``overwrite``: redo the
    inputs whose outputs exist too."""
    import json

    beam, NormalizeBatchFn = _beam_classes()
    if options.fmt not in batch_files.FORMATS:
        raise ValueError(f"--format must be one of {batch_files.FORMATS}, got {options.fmt!r}")
    done = [not overwrite and is_done(f, options) for f in files]
    todo = [f for f, d in zip(files, done) if not d]
    skipped = [f for f, d in zip(files, done) if d]
    failure_report = str(Path(options.output) / common.REPORT_FILE)
    Path(options.output).mkdir(parents=True, exist_ok=True)
    counters: dict[str, int] = {}
    failures: dict[str, int] = {}
    if todo:
        pipeline = beam.Pipeline(options=beam_options)
        results = common.fan_out(pipeline, todo, NormalizeBatchFn(model, options, choose), "Normalize",
                                 batch_size=options.batch_size)
        common.write_report(results[common.FAILED_TAG], failure_report)
        if report_path:
            skipped_lines = [{"input": str(f.path), "status": "skipped", "reason": "outputs exist from an earlier run"}
                             for f in skipped]
            ((results.done, results[common.FAILED_TAG], pipeline | "Skipped" >> beam.Create(skipped_lines))
             | "AllLines" >> beam.Flatten()
             | "LinesToJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True))
             | "WriteReport" >> beam.io.WriteToText(report_path, num_shards=1, shard_name_template=""))
        result = pipeline.run()
        result.wait_until_finish()
        counters = common.counter_values(result)
        failures = common.failure_counters(result)
    return {"inputs": len(files), "skipped": len(skipped), "failure_counters": failures, "counters": counters,
            "failure_report": failure_report}
