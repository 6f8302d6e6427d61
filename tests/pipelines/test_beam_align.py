"""Stage 1 on the Beam DirectRunner against the local path (normface.data.align.align_all): the same
files, pixel-identical aligned faces, the same landmarks and manifest, a failure report and counters
for a corrupt photo, and resumption."""

from __future__ import annotations

import json

import numpy as np
import pytest

from normface.data import align, faceset
from normface.utils import io_utils

SOURCES = ["lfw", "utkface"]  # as conftest.STAGE1_SOURCES


def files_of(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def local_run(local_aligned):
    return local_aligned


@pytest.fixture(scope="module")
def TEMPLATE(stage1_template):
    return stage1_template


@pytest.mark.parametrize("workers", [1, 2])
def test_beam_stage1_matches_the_local_path(small_data, local_run, tmp_path, workers, direct_options,
                                            corrupt_photo, TEMPLATE):
    from normface.pipelines import align as beam_align
    from normface.pipelines import common

    local, local_summary = local_run
    out = tmp_path / "aligned"
    summary = beam_align.align_all(small_data, out, TEMPLATE, direct_options(workers), sources=SOURCES,
                                   shard_size=4, progress=lambda msg: None)
    assert local_summary["aligned"] >= 20 and local_summary["failed"] >= 1
    beam_files = [f for f in files_of(out) if f != common.REPORT_FILE]
    assert beam_files == files_of(local)
    for name in (align.SPLITS_FILE, align.RUN_FILE, faceset.TEMPLATE_FILE, "summary.json"):
        assert (out / name).read_bytes() == (local / name).read_bytes(), name
    for name in beam_files:
        if name.endswith(".png"):
            np.testing.assert_array_equal(io_utils.read_rgb(out / name), io_utils.read_rgb(local / name), err_msg=name)
        elif name.endswith(".json") and "/" in name:
            ours, theirs = json.loads((out / name).read_text()), json.loads((local / name).read_text())
            np.testing.assert_allclose(ours.pop("landmarks"), theirs.pop("landmarks"), atol=1e-3, err_msg=name)
            assert ours == theirs, name
    ours, theirs = align.read_manifest(out), align.read_manifest(local)
    assert [r["key"] for r in ours] == [r["key"] for r in theirs]
    for a, b in zip(ours, theirs):
        assert a.keys() == b.keys() and a["status"] == b["status"] and a.get("reason") == b.get("reason")
        if a["status"] == "aligned":
            for name, value in b["measures"].items():
                assert a["measures"][name] == pytest.approx(value, abs=1e-6), (a["key"], name)
    # The corrupt photo is in the failure report and in the counters; the pipeline succeeded.
    report = common.read_report(summary["failure_report"])
    assert [r["photo"] for r in report] == [corrupt_photo]
    assert report[0]["reason"].startswith("unreadable")
    assert summary["beam_failure_counters"] == {"unreadable": 1}
    assert summary["aligned"] == local_summary["aligned"] and summary["failed"] == local_summary["failed"]


def test_beam_stage1_rerun_skips_finished_shards(small_data, tmp_path, direct_options, TEMPLATE):
    from normface.pipelines import align as beam_align

    out = tmp_path / "aligned"
    beam_align.align_all(small_data, out, TEMPLATE, direct_options(1), sources=SOURCES, shard_size=4,
                         progress=lambda msg: None)
    shard = align.shard_path(out, 0)
    shards = len(list((out / align.MANIFEST_DIR).glob("shard-*.jsonl")))
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    shard.unlink()  # as if the run had been killed before shard 0 was finished
    messages = []
    beam_align.align_all(small_data, out, TEMPLATE, direct_options(1), sources=SOURCES, shard_size=4,
                         progress=messages.append)
    assert shards >= 2 and any(f"{shards - 1} already done" in m for m in messages), messages
    assert shard.is_file()
    redone = {p for p, t in before.items() if p.stat().st_mtime_ns != t}
    keys = {json.loads(line)["key"].split("/")[-1] for line in shard.read_text().splitlines()}
    assert redone and {p.stem for p in redone} <= keys  # only shard 0's photos were written again
