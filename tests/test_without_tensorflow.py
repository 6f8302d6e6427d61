"""``pip install normface`` has no TensorFlow (issue 31: it is the train extra's): normalize, adjust,
portrait and serve's applications run on LiteRT without it, and every path that needs it says in
one line which extra installs it. TensorFlow is hidden in a subprocess (an import hook that finds
neither it nor Keras, as if they were not installed); the real install without it is checked by
hand (docs/testing.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from normface import TRAIN_EXTRA_HINT
from normface.serving import litert_backend
from normface.serving.normalizer import DEFAULT_MODEL, PRETRAINED_DIR
from normface.utils import paths

SAMPLES = paths.REPO_ROOT / "samples"
EXTRA = "pip install 'normface[train]'"
HIDE = """
import sys


class NotInstalled:  # first on the import path: TensorFlow and Keras are not found
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, NotInstalled())
"""
pytestmark = pytest.mark.skipif(not litert_backend.has_tflite(PRETRAINED_DIR / DEFAULT_MODEL),
                                reason="the shipped model has no LiteRT files")

def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(paths.REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


_PROBE = HIDE + """
import contextlib, io, json
from normface import cli
from normface.cli import serve

calls = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    calls.append({"argv": argv, "rc": rc, "stderr": err.getvalue()})
apps = serve.applications(False)
print(json.dumps({"calls": calls, "adjust": apps.adjust is not None, "avatar": apps.avatar is not None,
                  "avatar_missing": apps.avatar_missing,
                  "imported": sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))}))
"""


def test_inference_runs_and_the_rest_names_the_train_extra(tmp_path):
    a, b = str(SAMPLES / "london_005_08.jpg"), str(SAMPLES / "london_011_08.jpg")
    export = str(paths.REPO_ROOT / "tests" / "fixtures" / "export_095725b")
    argvs = [["normalize", a, b, "-o", str(tmp_path / "out")], ["adjust", a, "-o", str(tmp_path / "fixed.jpg")],
             ["portrait", a, b, "-o", str(tmp_path / "portrait.png")],
             ["warp-demo", "-o", str(tmp_path / "warp")], ["avatar", a, "-o", str(tmp_path / "a.obj")],
             ["normalize", a, "-o", str(tmp_path / "gpu"), "--device", "gpu"],
             ["normalize", a, "-o", str(tmp_path / "export"), "--model", export]]
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argvs)], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["imported"] == []
    ran, refused = report["calls"][:3], report["calls"][3:]
    assert [c["rc"] for c in ran] == [0, 0, 0], ran
    assert (tmp_path / "out" / "london_011_08_face0.png").is_file() and (tmp_path / "portrait.png").is_file()
    assert (tmp_path / "fixed.jpg").is_file()
    for call, why in zip(refused, ("warp-demo", "avatar", "--device gpu", "no LiteRT files")):
        lines = call["stderr"].splitlines()
        assert call["rc"] == 1 and len(lines) == 1 and why in lines[0] and EXTRA in lines[0], call
    assert not (tmp_path / "gpu").exists() and not (tmp_path / "export").exists()
    assert report["adjust"] and not report["avatar"] and EXTRA in report["avatar_missing"]


def test_a_program_that_needs_tensorflow_names_the_train_extra(tmp_path):
    """The training, data and evaluation binaries import normface first: an uncaught import error
    of TensorFlow ends with one line naming the extra."""
    train = str(paths.REPO_ROOT / "experiments" / "train.py")
    code = HIDE + f"import runpy; sys.argv = [{train!r}]; runpy.run_path({train!r}, run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=_env())
    assert done.returncode == 1 and "ModuleNotFoundError" in done.stderr, done.stderr[-2000:]
    assert done.stderr.splitlines()[-1] == TRAIN_EXTRA_HINT and EXTRA in TRAIN_EXTRA_HINT
