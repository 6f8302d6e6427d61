"""What every normface Beam pipeline shares: importing Beam with a clear error, pipeline options,
the failure report and the per-kind failure counters.

Why here: the entry points (``data_prep/*.py --runner=...``, ``normface.pipelines.normalize``)
and the tests need the same option handling and the same report format.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

NAMESPACE = "normface"
FAILED_TAG = "failed"
REPORT_FILE = "failures.jsonl"
INSTALL_HINT = 'the Beam pipelines need the beam extra: pip install -e ".[beam]" -c constraints-beam.txt'


def require_beam():
    """Imports ``apache_beam``; ImportError saying how to install it when it is absent."""
    try:
        import apache_beam as beam
    except ImportError as err:
        raise ImportError(f"apache_beam is not installed ({err}); {INSTALL_HINT}") from err
    return beam


def pipeline_options(runner: str, args: Iterable[str] = (), **overrides: Any):
    """Beam ``PipelineOptions`` for ``runner`` (DirectRunner, DataflowRunner, FlinkRunner,
    SparkRunner...) from the command line's remaining ``--flag=value`` arguments. The main session
    is not pickled (the DoFns import what they need), and every worker gets normface through the
    runner's ``--setup_file``/``--requirements_file``/``--sdk_container_image`` (docs/beam.md)."""
    require_beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(["--runner", runner, *args], **overrides)


def failure_kind(reason: str) -> str:
    """A failure reason's kind, the name of its counter: the text before the first colon, as
    ``align.merge_manifest`` counts them ("unreadable", "no face found", ...), in snake case."""
    kind = reason.split(":")[0].strip().lower()
    return re.sub(r"[^a-z0-9]+", "_", kind).strip("_") or "unknown"


def count_failure(reason: str) -> None:
    """Increments the Beam counter ``normface/failed_<kind>`` (call inside a DoFn)."""
    from apache_beam.metrics import Metrics

    Metrics.counter(NAMESPACE, f"failed_{failure_kind(reason)}").inc()


def route(records: Iterable[dict], failed_status: str, ok_counter, keep_ok: bool):
    """Inside a DoFn's ``process``: yields each record whose ``status`` is ``failed_status`` as the
    tagged output :data:`FAILED_TAG` (counting it by kind), and the others (when ``keep_ok``) as
    the main output, counting them with ``ok_counter``."""
    from apache_beam import pvalue

    for rec in records:
        if rec["status"] == failed_status:
            count_failure(rec["reason"])
            yield pvalue.TaggedOutput(FAILED_TAG, rec)
        else:
            ok_counter.inc()
            if keep_ok:
                yield rec


class SetupTimer:
    """Reports a DoFn's ``setup`` time (model loads) as the distribution ``normface/setup_ms``.
    Metrics only count inside a bundle, so ``setup`` measures and the first ``process`` reports."""

    def __init__(self):
        from apache_beam.metrics import Metrics

        self.metric = Metrics.distribution(NAMESPACE, "setup_ms")
        self.pending_ms: int | None = None

    def start(self) -> None:
        import time

        self._start = time.perf_counter()

    def stop(self) -> None:
        import time

        self.pending_ms = int(1000 * (time.perf_counter() - self._start))

    def report(self) -> None:
        if self.pending_ms is not None:
            self.metric.update(self.pending_ms)
            self.pending_ms = None


def fan_out(pipeline, elements: list, dofn, name: str, batch_size: int = 0):
    """The shape every normface pipeline shares: ``elements`` (made on the launcher) spread over
    the workers (``Reshuffle``, so a runner does not fuse them onto one), optionally grouped into
    lists of ``batch_size``, into ``dofn``. Returns its outputs: ``.done`` (the main one) and
    ``[FAILED_TAG]``."""
    beam = require_beam()
    items = (pipeline
             | f"{name}Items" >> beam.Create(elements, reshuffle=False)
             | f"{name}Spread" >> beam.Reshuffle())
    if batch_size:
        items = items | f"{name}Batches" >> beam.BatchElements(min_batch_size=batch_size, max_batch_size=batch_size)
    return items | name >> beam.ParDo(dofn).with_outputs(FAILED_TAG, main="done")


def write_report(failures, path: str):
    """Writes the failure records (dicts) of a PCollection as one JSON-lines file at ``path``
    (any Beam filesystem; Beam writes to a temporary name and renames it when done)."""
    beam = require_beam()
    return (failures
            | "FailuresToJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True))
            | "WriteFailureReport" >> beam.io.WriteToText(path, num_shards=1, shard_name_template=""))


def failure_counters(result) -> dict[str, int]:
    """The ``failed_<kind>`` counters of a finished pipeline: kind -> count."""
    from apache_beam.metrics.metric import MetricsFilter

    out: dict[str, int] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        name = counter.key.metric.name
        if name.startswith("failed_"):
            out[name[len("failed_"):]] = out.get(name[len("failed_"):], 0) + int(counter.committed or counter.attempted)
    return out


def counter_values(result) -> dict[str, int]:
    """Every normface counter of a finished pipeline: name -> count."""
    from apache_beam.metrics.metric import MetricsFilter

    out: dict[str, int] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        out[counter.key.metric.name] = out.get(counter.key.metric.name, 0) + int(counter.committed or counter.attempted)
    return out


def read_report(path: str) -> list[dict]:
    """The records of a failure report (empty when the file is absent: nothing failed)."""
    import os

    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
