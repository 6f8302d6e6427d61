"""The ablation runner on a tiny synthetic config: every variant trains and lands in the summary."""

from __future__ import annotations

import json
import subprocess
import sys

from normface.utils import paths


def test_ablation_runner_synthetic(tmp_path):
    out = tmp_path / "abl"
    variants = "cnn (default),fc texture decoder,plain cnn (no decoupling)"
    cmd = [sys.executable, str(paths.REPO_ROOT / "experiments" / "ablations.py"), "--synthetic", "--steps=2",
           "--batch_size=2", "--output_size=32", f"--output={out}", f"--variants={variants}"]
    subprocess.run(cmd, check=True, timeout=400, capture_output=True)
    summary = json.loads((out / "ablations.json").read_text())
    assert set(summary["rows"]) == set(variants.split(","))
    for row in summary["rows"].values():
        assert row["step"] in (1, 2) and row["validation/total"] > 0  # best of the evaluations
    table = (out / "ablations.md").read_text()
    assert "fc texture decoder" in table and "plain cnn" in table
    # Rerunning skips finished variants (their exports exist) and rewrites the same summary.
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)
    assert json.loads((out / "ablations.json").read_text())["rows"] == summary["rows"]
