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


def test_a_report_is_its_markdown_and_its_numbers(tmp_path):
    import json

    io_utils.write_report(tmp_path / "out", "grid", "# Title\n", {"rows": {"a": 1.5}})
    assert (tmp_path / "out" / "grid.md").read_text() == "# Title\n"
    assert json.loads((tmp_path / "out" / "grid.json").read_text()) == {"rows": {"a": 1.5}}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["grid.json", "grid.md"]


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


def test_stale_temporary_files_of_dead_writers_are_removed(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / "sub").mkdir()
    stale = tmp_path / "sub" / f".a.png{io_utils.TEMP_MARK}{pid}.abcdefgh.png"
    mine = tmp_path / f".b.png{io_utils.TEMP_MARK}{__import__('os').getpid()}.abcdefgh.png"
    other = tmp_path / ".c.png.abcdefgh.png"  # not ours: never touched
    for p in (stale, mine, other):
        p.write_bytes(b"")
    assert io_utils.remove_stale_temps(tmp_path) == [stale]
    assert not stale.exists() and mine.exists() and other.exists()
    # A temporary file is removed when the writer unwinds (what SIGTERM's handler does).
    with pytest.raises(SystemExit):
        with io_utils.atomic_path(tmp_path / "d.png"):
            raise SystemExit(143)
    assert not list(tmp_path.glob(f".d.png{io_utils.TEMP_MARK}*"))


def test_unwritable_reasons_come_from_the_path(tmp_path):
    (tmp_path / "file").write_text("x")
    assert "is a file" in io_utils.unwritable_reason(tmp_path / "file" / "out.png")
    assert "not a folder" in io_utils.unwritable_reason(tmp_path / "file", folder=True)
    assert "is a folder" in io_utils.unwritable_reason(tmp_path, folder=False)
    assert io_utils.unwritable_reason(tmp_path / "new" / "deeper", folder=True) is None


def test_photos_are_read_upright_in_srgb_and_written_back_with_their_metadata(tmp_path):
    from PIL import ExifTags

    from normface.testing import synthetic

    from normface.utils import paths

    # A photo's colours (8-bit noise's extreme colours round-trip through a wide gamut less exactly).
    upright = Image.open(paths.REPO_ROOT / "samples" / "london_011_08.jpg").convert("RGB").resize((40, 24))
    synthetic.save_with_orientation(upright, tmp_path / "o6.png", 6)
    photo = io_utils.read_image(tmp_path / "o6.png")
    np.testing.assert_array_equal(photo.pixels, np.asarray(upright))
    exif = Image.Exif()
    exif.load(photo.exif)
    assert exif[ExifTags.Base.Orientation] == 1 and exif[ExifTags.Base.Make] == "normface-test"
    profile = synthetic.wide_gamut_profile()
    encoded = synthetic.to_profile(np.asarray(upright), profile)
    Image.fromarray(encoded).save(tmp_path / "wide.png", icc_profile=profile)
    wide = io_utils.read_image(tmp_path / "wide.png")
    assert wide.converted_from_icc and wide.icc_profile == profile
    assert np.abs(wide.pixels.astype(int) - np.asarray(upright)).max() <= 2
    io_utils.save_photo_atomic(tmp_path / "back.png", wide.pixels, like=wide)
    with Image.open(tmp_path / "back.png") as back:
        assert back.info["icc_profile"] == profile
        assert np.abs(np.asarray(back).astype(int) - encoded).max() <= 2  # back in the profile's numbers
    # An unusable profile: the pixels are taken as sRGB, as without one.
    Image.fromarray(encoded).save(tmp_path / "bad_icc.png", icc_profile=b"not a profile")
    bad = io_utils.read_image(tmp_path / "bad_icc.png")
    assert not bad.converted_from_icc and np.array_equal(bad.pixels, encoded)


def test_pngs_are_lossless_at_the_fast_level(tmp_path):
    """The PNGs normface writes and serves use PNG_COMPRESS_LEVEL (1: ~3x faster than Pillow's
    default for a face, files ~16% larger) and give back their pixels."""
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(128, 40, (64, 64, 3)), 0, 255).astype(np.uint8)
    data = io_utils.png_bytes(image)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), image)
    at_level = io.BytesIO()
    Image.fromarray(image).save(at_level, format="PNG", compress_level=io_utils.PNG_COMPRESS_LEVEL)
    assert io_utils.PNG_COMPRESS_LEVEL == 1 and data == at_level.getvalue()
    io_utils.save_image_atomic(tmp_path / "a.png", image)
    assert (tmp_path / "a.png").read_bytes() == data
