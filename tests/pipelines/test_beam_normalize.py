"""Batch normalization on the Beam DirectRunner (``normface normalize --runner=DirectRunner``)
against the local ``normface normalize``: the same output names, pixel-identical PNGs, the same
landmarks; a corrupt photo lands in the failure report and the run still succeeds; a rerun skips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from normface import cli
from normface.utils import io_utils

WORKER_ARGS = {1: ["--direct_num_workers=1"],
               2: ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]}


def outputs(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not p.name.startswith(".") and p.name != "failures.jsonl")


@pytest.fixture(scope="module")
def local_outputs(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("norm_local") / "out"
    assert cli.main(["normalize", str(small_data / "lfw"), "-o", str(out), "--json", "--batch-size=2"]) == 0
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_beam_normalize_matches_the_local_path(small_data, local_outputs, tmp_path, workers, corrupt_photo, capsys):
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    code = cli.main(["normalize", str(small_data / "lfw"), "-o", str(out), "--json", "--batch-size=2",
                     "--runner=DirectRunner", f"--report={report}", *WORKER_ARGS[workers]])
    assert code == 0, capsys.readouterr().err
    names = outputs(out)
    assert names == outputs(local_outputs) and len(names) == 8  # 4 faces: PNG + JSON each
    for name in names:
        if name.endswith(".png"):
            np.testing.assert_array_equal(io_utils.read_rgb(out / name), io_utils.read_rgb(local_outputs / name),
                                          err_msg=name)
        else:
            ours, theirs = json.loads((out / name).read_text()), json.loads((local_outputs / name).read_text())
            np.testing.assert_allclose(ours["landmarks"], theirs["landmarks"], atol=1e-3, err_msg=name)
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["input"] for f in failures] == [str(small_data / corrupt_photo)]
    assert "not a readable image" in failures[0]["reason"]
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert sorted(line["status"] for line in lines) == ["error", "ok", "ok", "ok", "ok"]
    assert "1 problem(s): {'not_a_readable_image" in capsys.readouterr().out


def test_beam_normalize_rerun_skips_inputs_with_outputs(small_data, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["normalize", str(small_data / "lfw" / "Colin_Powell"), "-o", str(out), "--runner=DirectRunner"]
    assert cli.main(args) == 0
    first = sorted(out.rglob("*.png"))
    stamps = [p.stat().st_mtime_ns for p in first]
    first[0].unlink()
    capsys.readouterr()
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "normalized 1 of 1 file(s)" in printed and "1 already done" in printed, printed
    assert [p.stat().st_mtime_ns for p in first[1:]] == stamps[1:] and first[0].is_file()


def test_unknown_flags_need_a_runner(small_data, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["normalize", str(small_data / "lfw"), "-o", str(tmp_path / "o"), "--direct_num_workers=2"])
    assert exit_info.value.code == 2
