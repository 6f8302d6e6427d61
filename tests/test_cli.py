"""Tests of the ``normface`` command line and its warp demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from normface import cli
from normface.apps import warp_demo
from normface.utils import io_utils


def _synthetic_face(path, size=96):
    rng = np.random.default_rng(0)
    image = (rng.uniform(0, 255, (size, size, 3))).astype(np.uint8)
    Image.fromarray(image).save(path)
    return image


def test_warp_demo_moves_only_the_mouth(tmp_path, capsys):
    image = _synthetic_face(tmp_path / "face.png")
    out = tmp_path / "result"
    assert cli.main(["warp-demo", "-o", str(out), "--photo", str(tmp_path / "face.png")]) == 0
    written = out / "warp_demo.png"
    assert str(written) in capsys.readouterr().out
    panel = io_utils.read_rgb(written)
    assert panel.shape == (96, 192, 3)
    warped = panel[:, 96:].astype(int)
    diff = np.abs(warped - image.astype(int)).sum(-1)
    src, _ = warp_demo.demo_points(96, 96)
    mouth_x, mouth_y = src[0].astype(int)
    assert diff[mouth_y - 3 : mouth_y + 4, mouth_x - 3 : mouth_x + 4].mean() > 10
    # Corners are pinned by the boundary points, so they keep their pixels.
    for y, x in ((0, 0), (0, 95), (95, 0), (95, 95)):
        assert diff[y, x] == 0


def test_warp_demo_on_the_studio_photo(data_root, tmp_path):
    path = warp_demo.run_warp_demo(tmp_path / "demo.png")
    assert path == tmp_path / "demo.png" and path.is_file()
    assert io_utils.read_rgb(path).shape == (512, 1024, 3)


def test_missing_photo_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["warp-demo", "-o", str(tmp_path), "--photo", str(tmp_path / "nope.jpg")]) == 1
    assert "nope.jpg" in capsys.readouterr().err


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["no-such-command"])
    assert exit_info.value.code == 2


TF_LOG_MARKERS = ("oneDNN", "cuda", "cuInit", "cpu_feature_guard", "absl::InitializeLog", "I0000 ", "E0000 ", "W0000 ",
                  "tensorflow/")


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a new user's shell
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "normface.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_normalize_prints_no_tensorflow_log_lines_unless_debug(tmp_path):
    photo = Path(__file__).resolve().parents[1] / "samples" / "london_005_08.jpg"
    quiet = _run_cli("normalize", str(photo), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "", quiet.stderr  # not one TensorFlow line (nor anything else)
    assert "normalized 1 face(s) from 1 of 1 file(s)" in quiet.stdout
    assert (tmp_path / "out" / "london_005_08_face0.png").is_file()
    # The shipped model runs on LiteRT, without TensorFlow: --device gpu takes the TensorFlow path.
    loud = _run_cli("normalize", "--debug", "--overwrite", "--device", "gpu", str(photo), "-o", str(tmp_path / "out"),
                    cwd=tmp_path)
    assert loud.returncode == 0
    assert any(marker in loud.stderr for marker in TF_LOG_MARKERS), loud.stderr[:2000]


def test_serve_usage_errors_exit_2(capsys):
    for argv in (["serve", "--port", "70000"], ["serve", "--timeout", "0"], ["serve", "--max-files", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
        assert argv[1] in capsys.readouterr().err
    assert cli.main(["serve", "--model", "/no/such/model"]) == 2
    assert "--model /no/such/model: no such file" in capsys.readouterr().err


def test_progress_bar_shows_rate_and_time_left():
    import io

    from normface.serving.batch_files import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    bar = ProgressBar(stream)
    for n in range(1, 6):
        bar(n, 5)
    text = stream.getvalue()
    assert "5/5" in text and "photo/s" in text and "<" in text  # count, rate, elapsed<remaining
