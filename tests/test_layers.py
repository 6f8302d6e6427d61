"""The package's layers hold: an import contract (import-linter, ``[importlinter]`` in setup.cfg)
and, end to end, the serving commands never load training or evaluation code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from normface.utils import paths

SAMPLE = paths.REPO_ROOT / "samples" / "london_012_03.jpg"


def test_import_contract_holds():
    from importlinter import cli

    assert cli.lint_imports(config_filename=str(paths.REPO_ROOT / "setup.cfg")) == 0


def test_import_contract_catches_an_upward_import(tmp_path):
    """The contract is not vacuous: a layers contract that puts serving above training fails,
    because training imports the export format from serving."""
    from importlinter import cli

    config = tmp_path / "contract.ini"
    config.write_text("[importlinter]\nroot_package = normface\n\n[importlinter:contract:x]\nname = upside down\n"
                      "type = layers\nlayers =\n    normface.serving\n    normface.training\n")
    assert cli.lint_imports(config_filename=str(config)) == 1


def test_judge_contract_catches_the_judge_in_training(tmp_path):
    """The judge rule is not vacuous: a copy of the package whose losses import the judge fails it."""
    import shutil

    copy = tmp_path / "src"
    shutil.copytree(paths.REPO_ROOT / "normface", copy / "normface",
                    ignore=shutil.ignore_patterns("pretrained", "static", "__pycache__"))
    losses = copy / "normface" / "training" / "losses.py"
    losses.write_text(losses.read_text() + "\nfrom normface.encoders import judge  # noqa\n")
    text = (paths.REPO_ROOT / "setup.cfg").read_text()
    (copy / "contract.ini").write_text(text[text.index("[importlinter]"):])
    lint = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())",
            "--config", "contract.ini", "--no-cache"]
    out = subprocess.run(lint, cwd=copy, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(copy)})
    assert out.returncode == 1, out.stdout[-2000:]
    assert "normface.training is not allowed to import normface.encoders.judge" in out.stdout


_PROBE = """
import json, sys
from normface import cli
rc = cli.main(sys.argv[1:])
print(json.dumps({"rc": rc, "modules": sorted(m for m in sys.modules if m.startswith("normface"))}))
"""


@pytest.mark.parametrize("command", ["normalize", "adjust"])
def test_serving_commands_never_import_training_or_evaluation(command, tmp_path):
    if not SAMPLE.is_file():
        pytest.skip(f"sample photo absent: {SAMPLE}")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", _PROBE, command, str(SAMPLE), "-o", str(tmp_path / "out")],
                         capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["rc"] == 0
    assert any(Path(tmp_path / "out").iterdir())
    loaded = report["modules"]
    assert "normface.serving.normalizer" in loaded  # the probe saw the real imports
    assert not [m for m in loaded if m.startswith(("normface.training", "normface.evaluation", "normface.testing"))]
