"""Tests of normface.utils.pictures: labels as the contact sheets write them."""

from __future__ import annotations

import numpy as np
import pytest

from normface.utils import pictures


def test_spread_label_reads_across_a_row_of_tiles():
    name = "7. stride_lattice+originals+bicubic+detail100+calm+perceptual2+identity+seed1"
    pieces = pictures.spread_label(name, 6, 128)
    assert len(pieces) == 6
    assert all(len(p) <= pictures.label_chars(128) for p in pieces)
    assert "".join(pieces) == name[: 6 * pictures.label_chars(128)]
    assert "".join(pictures.spread_label("short", 3, 128)) == "short"
    with pytest.raises(ValueError, match="cols must be >= 1"):
        pictures.spread_label(name, 0, 128)


def test_image_grid_writes_each_piece_under_its_own_tile():
    tiles = [np.full((128, 128, 3), 255, np.uint8)] * 2
    blank = pictures.image_grid(tiles, cols=2, labels=["", ""])
    one = pictures.image_grid(tiles, cols=2, labels=pictures.spread_label("x" * pictures.label_chars(128), 2, 128))
    label_rows = slice(130, 130 + 14)
    inked = (one != blank).any(-1)[label_rows]
    assert inked[:, :130].any() and not inked[:, 131:].any()  # the text fits one tile, the second piece is empty
    two = pictures.image_grid(tiles, cols=2, labels=pictures.spread_label("x" * 30, 2, 128))
    assert (two != blank).any(-1)[label_rows][:, 131:].any()


def test_grid_tiles_gives_back_the_tiles_image_grid_laid_out():
    rng = np.random.default_rng(0)
    tiles = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(5)]
    sheet = pictures.image_grid(tiles, cols=3, labels=[str(i) for i in range(5)])
    back = pictures.grid_tiles(sheet, cols=3, tile=16)
    assert len(back) == 6  # two rows of three; the last place is empty
    for a, b in zip(tiles, back):
        np.testing.assert_array_equal(a, b)
    assert (back[5] == 255).all()
    plain = pictures.image_grid(tiles, cols=5)
    np.testing.assert_array_equal(np.stack(pictures.grid_tiles(plain, cols=5, tile=16, labelled=False)), np.stack(tiles))
    with pytest.raises(ValueError, match="not a grid of 4 columns"):
        pictures.grid_tiles(sheet, cols=4, tile=16)
