"""Tests of the ``normface`` command line and its warp demo."""

from __future__ import annotations

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
