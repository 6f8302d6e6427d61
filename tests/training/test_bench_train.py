"""The training benchmark's real-records mode and its side-by-side reference run, on a tiny
record set (32x32, batch 2, one timed step): it must run and print a rate for every setting."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from normface.data import build
from normface.testing import synthetic
from normface.utils import paths

BENCH = paths.REPO_ROOT / "benchmarks" / "bench_train.py"


@pytest.fixture(scope="module")
def tiny_records(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    synthetic.write_synthetic_faceset(root, 32, {"train": 4, "validation": 2, "test": 2}, seed=1)
    out = tmp_path_factory.mktemp("records")
    build.build_records(root, str(out), build.BuildConfig(morphs_per_face=1, shard_size=4, encoder="fake"),
                        synthetic.fake_record_encoder, log=lambda _: None)
    return out


def test_real_records_mode_and_reference_run_print_every_row(tiny_records):
    args = [sys.executable, str(BENCH), "--sizes=32", "--batch_size=2", "--steps=1", "--encoder=fake",
            "--identity=off,on", f"--records={tiny_records}", f"--reference={paths.REPO_ROOT}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=paths.REPO_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "through the input pipeline" in done.stdout
    rows = [line for line in done.stdout.splitlines() if re.match(r"^\| 32 \| (on|off) \|", line)]
    assert len(rows) == 2, done.stdout
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[4]) > 0 and float(cells[5]) > 0 and cells[6].endswith("x")
