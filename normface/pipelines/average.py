"""Stage 2 (filter by quality, morph-average each person) as an Apache Beam pipeline, with the
outputs of ``data_prep/average_faces.py``.

The launcher filters the manifest and lists the people (:func:`normface.data.average.plan_average`,
as the local path does); each person still without an average is one element, averaged by
:func:`normface.data.average.average_person` (the local loop's function) on some worker. A person
whose photos cannot be averaged is a tagged failure (``<averaged>/failures.jsonl``, counter
``normface/failed_<kind>``), never a failed pipeline. ``summary.json`` is written by the launcher
when the pipeline is done; a rerun skips the people already averaged. The contact sheets stay on
the launcher (``average.write_sheets``). Deduplication and leakage screening (stage 2b) are
:mod:`normface.pipelines.screen`.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from normface.data import average, faceset
from normface.faces import quality
from normface.pipelines import common


def _beam_classes():
    beam = common.require_beam()

    class AveragePersonFn(beam.DoFn):
        """Averages one (person, photos) element; yields a status record, failures tagged."""

        def __init__(self, aligned_root: str, out_root: str):
            self.aligned_root, self.out_root = aligned_root, out_root
            self.averaged = beam.metrics.Metrics.counter(common.NAMESPACE, "averaged")

        def process(self, element):
            person, recs = element
            try:
                average.average_person(Path(self.aligned_root), Path(self.out_root), person, recs)
                rec = {"person": person, "status": "averaged"}
            except Exception as err:  # one person's bad files must not stop the run: report them
                rec = {"person": person, "status": "failed", "reason": f"error: {err!r}",
                       "traceback": traceback.format_exc(limit=3)}
            yield from common.route([rec], "failed", self.averaged, keep_ok=False)

    return beam, AveragePersonFn


def average_all(aligned_root, out_root, thresholds: quality.QualityThresholds, options, min_photos: int = 1,
                max_photos: int = 32) -> dict:
    """:func:`normface.data.average.average_all` on Beam with ``options``; returns the summary plus
    ``beam_failure_counters`` and ``failure_report``."""
    beam, AveragePersonFn = _beam_classes()
    plan = average.plan_average(aligned_root, out_root, thresholds, min_photos, max_photos)
    todo = [(p, plan.photos_of[p]) for p in plan.people
            if not faceset.has_face(plan.out_root, plan.photos_of[p][0]["split"], p)]
    report = str(plan.out_root / common.REPORT_FILE)
    counters: dict[str, int] = {}
    if todo:
        pipeline = beam.Pipeline(options=options)
        results = common.fan_out(pipeline, todo, AveragePersonFn(str(plan.aligned_root), str(plan.out_root)), "Average")
        common.write_report(results[common.FAILED_TAG], report)
        result = pipeline.run()
        result.wait_until_finish()
        counters = common.failure_counters(result)
    return {**average.write_summary(plan), "beam_failure_counters": counters, "failure_report": report}
