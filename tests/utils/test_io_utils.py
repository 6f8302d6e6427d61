"""Tests of normface.io_utils: atomic writes and tolerant image reading."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from normface.utils import io_utils


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "a.bin"
    io_utils.write_bytes_atomic(target, b"old")
    with pytest.raises(RuntimeError):
        with io_utils.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
    # Readable by others like any normally written file (mkstemp alone would give 0600).
    assert target.stat().st_mode & 0o044 == 0o044


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "I;16"])
def test_read_rgb_converts_modes(tmp_path, mode):
    path = tmp_path / ("x.tif" if mode in ("CMYK", "I;16") else "x.png")
    if mode == "I;16":
        Image.fromarray(np.full((5, 6), 65535, np.uint16)).save(path)
    else:
        Image.new(mode, (6, 5)).save(path)
    image = io_utils.read_rgb(path)
    assert image.shape == (5, 6, 3) and image.dtype == np.uint8
    if mode == "I;16":
        assert image.max() == 255


def test_read_rgb_names_the_bad_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        io_utils.read_rgb(bad)
