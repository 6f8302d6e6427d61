"""The recipe scorer's cross-photo pairs (normface.evaluation.recipe) on constructed photos."""

from __future__ import annotations

import numpy as np
import pytest

from normface.data import schema
from normface.evaluation import protocol, recipe
from normface.utils import paths


def _held_out(people: list[str], size: int = 8) -> recipe.HeldOut:
    n = len(people)
    images = np.stack([np.full((size, size, 3), 10 * i, np.uint8) for i in range(n)])
    marks = np.tile(np.linspace(1, size - 2, 136).reshape(1, 68, 2), (n, 1, 1))
    photos = protocol.TestPhotos([f"k{i}" for i in range(n)], np.array(people), images, marks)
    # Row i of features and descriptors is i everywhere, so each pair's photos can be read back.
    feats = np.repeat(np.arange(n, dtype=np.float32)[:, None], 4, 1)
    return recipe.HeldOut(photos, feats, np.repeat(feats[:, :1], 3, 1) + 100)


def test_cross_photo_examples_pair_two_photos_of_one_person():
    held = _held_out(["a", "a", "a", "b", "c", "c"])  # b has one photo: no pair
    pairs = recipe.cross_photo_examples(held, size=4)
    a = pairs[schema.FEATURES][:, 0].astype(int)
    b = pairs[schema.DESCRIPTOR][:, 0].astype(int) - 100
    assert sorted(a.tolist()) == [0, 1, 2, 4, 5]
    assert all(i != j and held.photos.people[i] == held.photos.people[j] for i, j in zip(a, b))
    assert pairs[schema.IMAGE].shape == (5, 4, 4, 3) and pairs[schema.IMAGE].dtype == np.float32
    # Photo B's image (constant 10 * index), resampled to 4 px and scaled to [0, 1].
    np.testing.assert_allclose(pairs[schema.IMAGE][:, 0, 0, 0], 10 * b / 255.0, atol=1e-6)
    assert pairs[schema.LANDMARKS].max() < 4  # landmarks follow the resampling
    assert len(recipe.cross_photo_examples(held, size=4, max_pairs=2)[schema.FEATURES]) == 2
    with pytest.raises(ValueError, match="at least two photos"):
        recipe.cross_photo_examples(_held_out(["a", "b"]), size=4)


def test_score_model_gives_the_judge_and_picture_columns():
    from normface.encoders.judge import FaceJudge
    from normface.models import build_normalizer
    from normface.testing import synthetic

    size, feat = 32, 16
    rng = np.random.default_rng(0)
    people = np.repeat(np.array(["a", "b", "c"]), 2)
    marks = np.tile(synthetic.mean_landmarks(size)[None], (6, 1, 1))
    photos = protocol.TestPhotos([f"k{i}" for i in range(6)], people,
                                 rng.integers(0, 256, (6, size, size, 3), dtype=np.uint8), marks)
    held = recipe.HeldOut(photos, rng.normal(size=(6, feat)).astype(np.float32), rng.normal(size=(6, 4)).astype(np.float32))
    projection = rng.normal(size=(14 * 14 * 3, 8))
    judge = FaceJudge(lambda chips: chips[:, ::8, ::8, :].reshape(len(chips), -1) @ projection, "fake")
    model = build_normalizer(synthetic.tiny_model_config(size, feat), synthetic.mean_landmarks(size)).model

    def encode(images, landmarks):
        flat = images.reshape(len(images), -1)[:, :4].astype(np.float32)
        return flat, flat

    row = recipe.score_model(model, recipe.with_judge(held, judge), encode, judge=judge)
    for key in ("judge_cross_TAR@FAR0.1%_balanced", "judge_rank1", "judge_distinctiveness", "sharpness_ratio",
                "hair_band_sharpness_ratio", "grid_ratio_p16", "grid_ratio_max", "cross_TAR@FAR0.1%",
                "grid_ratio_geometry_p16", "grid_ratio_geometry_max"):
        assert key in row, key
    assert row["grid_ratio_max"] == max(row[f"grid_ratio_p{p}"] for p in (8, 16, 32))
    assert "judge_own_mean_cosine" in row and "judge_cross_TAR@FAR0.1%_balanced_of_ceiling" not in row


def test_photos_at_geometry_moves_each_photo_onto_its_outputs_landmarks():
    from normface.testing import synthetic

    size = 64
    rng = np.random.default_rng(1)
    photos = rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    marks = np.tile(synthetic.mean_landmarks(size)[None], (2, 1, 1)).astype(np.float32)
    # On its own landmarks a photo stays itself (a bicubic warp that moves nothing).
    np.testing.assert_allclose(recipe.photos_at_geometry(photos, marks, marks).astype(int), photos, atol=1)
    # Landmarks 4 px lower: the photo moves down 4 px (away from the frame's edges, where the warp's
    # boundary points hold it); the second photo stays, each on its own output's landmarks.
    lower = marks + np.array([[[0.0, 4.0]]], np.float32) * np.array([1.0, 0.0])[:, None, None]
    placed = recipe.photos_at_geometry(photos, marks, lower).astype(int)
    centre = slice(size // 2 - 6, size // 2 + 6)
    np.testing.assert_allclose(placed[0, 34:42, centre], photos[0, 30:38, centre], atol=2)
    np.testing.assert_allclose(placed[1], photos[1], atol=1)
    assert placed.dtype != np.float32 and recipe.photos_at_geometry(photos, marks, lower).dtype == np.uint8


def test_ceiling_row_puts_each_photo_in_place_of_its_output():
    from normface.encoders.judge import FaceJudge

    rng = np.random.default_rng(1)
    people = np.repeat(np.array(["a", "b", "c", "d"]), 3)
    centre = {p: rng.normal(size=6) for p in "abcd"}
    desc = np.stack([centre[p] + 0.01 * rng.normal(size=6) for p in people]).astype(np.float32)
    images = np.stack([np.full((8, 8, 3), 20 * i, np.uint8) for i in range(len(people))])
    marks = np.tile(np.linspace(1, 6, 136).reshape(1, 68, 2), (len(people), 1, 1))
    photos = protocol.TestPhotos([f"k{i}" for i in range(len(people))], people, images, marks)
    held = recipe.HeldOut(photos, desc, desc)
    # The judge sees each photo's descriptor (found by its grey level): its people are as separable as dlib's.
    judge = FaceJudge(lambda chips: chips, "fake")
    judge.embed = lambda ims, lms: desc[ims[:, 0, 0, 0].astype(int) // 20]
    row = recipe.ceiling_row(held, judge)
    # Tight clusters, far apart: every photo B is accepted at 0.1% FAR and found first.
    assert row["cross_TAR@FAR0.1%"] == 1.0 and row["rank1"] == 1.0
    assert row["judge_cross_TAR@FAR0.1%_balanced"] == 1.0 and row["judge_rank1"] == 1.0
    assert "judge_own_mean_cosine" not in row and not any(k.startswith("own_") for k in row)
    assert "sharpness_ratio" not in row
    assert set(recipe.ceiling_row(held)) == {k for k in row if not k.startswith("judge_")}


def test_picture_ablation_rows_are_train_flags():
    import re
    import subprocess
    import sys

    from normface.utils import paths

    experiments = paths.REPO_ROOT / "experiments"
    text = (experiments / "picture_ablation.py").read_text()
    wanted = set(re.findall(r'"--([a-z_]+)=?', text[text.index("RECIPE = "):text.index("SHOWN = ")]))
    helped = subprocess.run([sys.executable, str(experiments / "train.py"), "--helpfull"], capture_output=True,
                            text=True, timeout=300).stdout
    defined = set(re.findall(r"^\s+--(?:\[no\])?([a-z_]+)", helped, re.M))
    assert wanted and wanted <= defined, sorted(wanted - defined)


def test_merge_earlier_rows_keeps_rows_not_rerun_when_the_ceiling_agrees():
    ceiling = {"judge_cross_TAR@FAR0.1%_balanced": 0.995, "validation_photos": 400}
    earlier = {"a": {"x": 1.0}, "b": {"x": 2.0}, "gone": {"x": 9.0}}
    now = {"b": {"x": 3.0}, "c": {"x": 4.0}}
    merged = recipe.merge_earlier_rows(["a", "b", "c", "d"], now, earlier, ceiling, dict(ceiling))
    assert merged == {"a": {"x": 1.0}, "b": {"x": 3.0}, "c": {"x": 4.0}}  # in order; rerun rows win
    assert list(merged) == ["a", "b", "c"]
    moved = dict(ceiling, **{"judge_cross_TAR@FAR0.1%_balanced": 0.99})
    with pytest.raises(ValueError, match="judge_cross_TAR@FAR0.1%_balanced was 0.99 .* not comparable"):
        recipe.merge_earlier_rows(["a", "b"], now, earlier, ceiling, moved)
    with pytest.raises(ValueError, match="no ceiling row"):
        recipe.merge_earlier_rows(["a"], now, earlier, ceiling, None)
    # Nothing kept: nothing to check.
    assert recipe.merge_earlier_rows(["b"], now, earlier, ceiling, None) == {"b": {"x": 3.0}}


def test_load_model_reads_a_packed_model_and_names_a_missing_run(tmp_path):
    model = recipe.load_model(paths.REPO_ROOT / "normface" / "serving" / "pretrained" / "normface128")
    out = model(np.zeros((1, 256), np.float32), training=False)
    assert tuple(out["image"].shape) == (1, 128, 128, 3)
    with pytest.raises((FileNotFoundError, OSError, ValueError)):
        recipe.load_model(tmp_path / "no_run")


PICTURE_STRIPS_SCRIPT = r'''
import json, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, sys.argv[1])
import picture_ablation as pa

dest = Path(sys.argv[2])
rng = np.random.default_rng(0)
rows = {"a": {"x": 1}, "b+c": {"x": 2}, pa.CEILING: {"x": 3}}
(dest / "picture.json").write_text(json.dumps({"rows": rows}))
tiles = {n: [rng.integers(0, 256, (pa.SHEET_TILE, pa.SHEET_TILE, 3), dtype=np.uint8) for _ in range(3)]
         for n in ("a", "b+c")}
for n, t in tiles.items():
    pa.write_strip(dest, n, t, "1. a label far longer than one tile can show")
kept, read = pa.earlier_table(dest, 3)
assert kept == rows and set(read) == {"a", "b+c"}
assert all(np.array_equal(x, y) for n in tiles for x, y in zip(tiles[n], read[n]))
first = pa.strip_path(dest, "a").read_bytes()
pa.write_strip(dest, "a", tiles["a"], "1. a label far longer than one tile can show")
assert pa.strip_path(dest, "a").read_bytes() == first  # unchanged tiles, the same bytes
pa.strip_path(dest, "b+c").unlink()
try:
    pa.earlier_table(dest, 3)
except ValueError as e:
    print("ERROR", e)
'''


def test_picture_ablation_reads_back_each_rows_strip(tmp_path):
    """Each row's London tiles round-trip through its own strip (rows/<row>.png), a rewrite of the
    same tiles gives the same bytes, and a row of the table without its strip is named."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", PICTURE_STRIPS_SCRIPT, str(paths.REPO_ROOT / "experiments"),
                             str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"ERROR {tmp_path}/rows/b_c.png: missing or unreadable" in result.stdout
    assert "'b+c'" in result.stdout
