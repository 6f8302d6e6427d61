"""Stage 2 (filter, morph-average) on the Beam DirectRunner against the local path
(normface.data.average.average_all) on the stage-1 output of the small data folder: the same files,
pixel-identical averages, the same landmarks and summary; a person whose aligned face is corrupt
lands in the failure report and the pipeline succeeds."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from normface.data import average
from normface.faces import quality
from normface.utils import io_utils

THRESHOLDS = quality.QualityThresholds()


def files_of(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != "failures.jsonl")


@pytest.fixture(scope="module")
def local_averaged(local_aligned, tmp_path_factory):
    out = tmp_path_factory.mktemp("avg_local") / "averaged"
    summary = average.average_all(local_aligned[0], out, THRESHOLDS, progress=lambda msg: None)
    return out, summary


def test_beam_average_matches_the_local_path(local_aligned, local_averaged, tmp_path, direct_options):
    from normface.pipelines import average as beam_average

    local, local_summary = local_averaged
    out = tmp_path / "averaged"
    summary = beam_average.average_all(local_aligned[0], out, THRESHOLDS, direct_options(2))
    assert local_summary["people_averaged"] >= 2
    assert files_of(out) == files_of(local)
    assert (out / "summary.json").read_bytes() == (local / "summary.json").read_bytes()
    for name in files_of(out):
        if name.endswith(".png"):
            np.testing.assert_array_equal(io_utils.read_rgb(out / name), io_utils.read_rgb(local / name), err_msg=name)
        elif "/" in name:
            ours, theirs = json.loads((out / name).read_text()), json.loads((local / name).read_text())
            np.testing.assert_allclose(ours.pop("landmarks"), theirs.pop("landmarks"), atol=1e-3, err_msg=name)
            assert ours == theirs
    assert summary["beam_failure_counters"] == {}


def test_beam_average_reports_a_person_it_cannot_average(local_aligned, local_averaged, tmp_path, direct_options):
    from normface.pipelines import average as beam_average
    from normface.pipelines import common

    aligned = tmp_path / "aligned"
    shutil.copytree(local_aligned[0], aligned)
    # A UTKFace photo is its own person, aligned as <split>/<person>.png: break one that was averaged.
    person_json = sorted(local_averaged[0].glob("*/utkface/*.json"))[0]
    split, person = person_json.relative_to(local_averaged[0]).parts[0], f"utkface/{person_json.stem}"
    (aligned / split / f"{person}.png").write_bytes(b"not a png")
    summary = beam_average.average_all(aligned, tmp_path / "averaged", THRESHOLDS, direct_options(1))
    report = common.read_report(summary["failure_report"])
    assert [r["person"] for r in report] == [person] and report[0]["reason"].startswith("error")
    assert summary["beam_failure_counters"] == {"error": 1}
    written = {p.stem for p in (tmp_path / "averaged").glob("*/*/*.png")}
    assert len(written) == local_averaged[1]["people_averaged"] - 1  # every other person was averaged
