"""The evaluation report's --quick mode end to end, on a tiny face set and a tiny model."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from normface.data import splits
from normface.utils import paths
from normface.faces.alignment import AlignmentTemplate
from normface.data import align
from normface.data import faceset
from normface.evaluation import protocol, report

TEST_PEOPLE = ["Colin_Powell", "Tony_Blair", "Serena_Williams"]
TEST_LFW = [f"lfw/{name}" for name in TEST_PEOPLE]


@pytest.fixture(scope="module")
def tiny_faces(data_root, tmp_path_factory):
    """Three LFW people (3 photos each) and three London people, aligned at 32x32, all 'test'."""
    root = tmp_path_factory.mktemp("data")
    (root / "morphable_model").symlink_to(data_root / "morphable_model")
    for name in TEST_PEOPLE:
        (root / "lfw" / name).mkdir(parents=True)
        for i in range(1, 4):
            src = data_root / "lfw" / name / f"{name}_{i:04d}.jpg"
            (root / "lfw" / name / src.name).symlink_to(src)
    for folder, suffix in (("london_neutral", "_03"), ("london_smiling", "_08")):
        (root / "studio" / folder).mkdir(parents=True)
        for person in ("001", "002", "003"):
            src = data_root / "studio" / folder / f"{person}{suffix}.jpg"
            (root / "studio" / folder / src.name).symlink_to(src)
    people = {"train": [], "validation": [],
              "test": [f"lfw/{n}" for n in TEST_PEOPLE] + ["london/001", "london/002", "london/003"]}
    faces = tmp_path_factory.mktemp("faces")
    splits.write_splits(faces / "aligned" / align.SPLITS_FILE, people, seed=0)
    align.align_all(root, faces / "aligned", AlignmentTemplate.for_size(32), sources=["lfw", "london"],
                    workers=1, progress=lambda msg: None)
    return faces


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    from normface.testing import synthetic

    return synthetic.tiny_export(tmp_path_factory.mktemp("export") / "tiny", size=32)


def pixel_judge():
    """A stand-in judge for the report's plumbing: a fixed random projection of the chip's pixels
    (a photo's own pixels are closer to themselves than to other people's)."""
    from normface.encoders.judge import FaceJudge

    projection = np.random.default_rng(0).normal(size=(112 * 112 * 3 // 64, 32))

    def network(chips):
        small = chips[:, ::8, ::8, :].reshape(len(chips), -1)
        return (small - small.mean(1, keepdims=True)) @ projection

    return FaceJudge(network, "pixels", identity="random pixel projection")


def test_quick_report(tiny_faces, export_dir, tmp_path, data_root):
    sample = paths.REPO_ROOT / "samples" / "london_012_03.jpg"
    results = report.build_report(export_dir, tiny_faces, tmp_path / "report", quick=True, log=lambda m: None,
                                  data_root=data_root, samples=[sample], samples_credit="London Set, CC BY",
                                  compare={"same model": export_dir}, judge=pixel_judge())
    assert results["test_people"] == 3 and results["test_photos"] == 9 and results["test_photos_missing"] == 0
    ident = results["identity"]
    assert set(ident) == {report.CEILING, "normalized (model)", "frontalized (baseline)", "same model"}
    # A compared model goes through every per-model table; the same export gives the same rows.
    assert ident["same model"] == ident["normalized (model)"]
    assert results["expression"]["same model"] == results["expression"]["normalized smiling photo (model)"]
    # dlib's ceiling (photo A vs photo B): most real pairs of a person are within 0.6 even at 32 px
    # (measured: 16 of 18 pairs), far above the untrained decoder's 0.
    ceiling = ident[report.CEILING]
    assert ceiling["cross_within_0.6"] > 0.75 and ceiling["cross_within_0.6"] > ident["normalized (model)"]["cross_within_0.6"]
    assert ceiling["own_median"] is None and ceiling["own_within_0.6"] is None
    pictures = results["pictures"]
    assert pictures["same model"] == pytest.approx(pictures["normalized (model)"], nan_ok=True)
    assert pictures[report.CEILING_PICTURES]["sharpness_ratio"] == 1.0
    assert pictures["normalized (model)"]["sharpness_ratio"] < 0.5  # the untrained decoder's near-flat faces
    assert pictures["normalized (model)"]["grid_ratio_max"] == max(
        pictures["normalized (model)"][f"grid_ratio_p{p}"] for p in (8, 16, 32))
    # The judge's table: the ceiling first, every model, the baseline, each with its share.
    judged = results["judge"]
    assert judged["judge"] == "random pixel projection"
    rows = judged["rows"]
    assert list(rows) == [report.CEILING, "normalized (model)", "same model", "frontalized (baseline)"]
    assert rows["same model"] == rows["normalized (model)"] and rows[report.CEILING]["own_mean_cosine"] is None
    assert rows[report.CEILING]["genuine_pairs"] == 18  # 3 people x 3 photos x 2 other photos
    base = rows["frontalized (baseline)"]
    assert base["cross_TAR@FAR0.1%_of_ceiling"] == pytest.approx(
        base["cross_TAR@FAR0.1%"] / rows[report.CEILING]["cross_TAR@FAR0.1%"])
    assert pictures["normalized (model)"]["distinctiveness"] == rows["normalized (model)"]["distinctiveness"]
    assert results["groups"] == {} and results["records"] is None  # no FairFace photos, no records
    # Known answers (measured so): a warp of the photo itself stays its person (9 of 9 within 0.6
    # of their photo, both other photos of each person identified), the untrained decoder's
    # near-flat output is nobody (0 of 9, and 0 cross-photo pairs).
    base, model = ident["frontalized (baseline)"], ident["normalized (model)"]
    assert base["own_within_0.6"] == 1.0 and base["rank1"] == 1.0
    assert model["own_within_0.6"] == 0.0 and model["cross_within_0.6"] == 0.0
    assert base["own_median"] < model["own_median"]
    # The aligned photos' invariance row, recomputed here from the face set's images.
    photos = protocol.load_test_photos(faceset.aligned_dir(tiny_faces), "lfw/")
    images = photos.images.astype(np.float64)
    spreads = [np.abs(images[photos.people == p] - images[photos.people == p].mean(0)).mean() for p in TEST_LFW]
    aligned_row = results["invariance"]["aligned input photos"]
    assert aligned_row["people"] == 3 and aligned_row["pixel_l1"] == pytest.approx(np.mean(spreads), rel=1e-9)
    assert results["expression"]["aligned smiling photo (baseline)"]["people"] == 3
    # Applications: both adjustment sets (3 LFW people's first photos, 3 London neutral photos),
    # with every corrector scored; avatars fitted to both landmark sources.
    adjustment = results["applications"]["adjustment"]
    assert {name: block["photos"] for name, block in adjustment.items()} == {"LFW test": 3, "London held-out (studio)": 3}
    for block in adjustment.values():
        assert set(block["rows"]) == {"degraded", "normalized face", "oracle colour", "grey world", "white patch"}
        assert block["rows"]["oracle colour"]["mean_delta_e"] < block["rows"]["degraded"]["mean_delta_e"]
        assert block["rows"]["normalized face"]["failures"] == 0
        assert block["input_shift"] > 0 and block["reference_shift"] >= 0 and block["luma_std_photos"] > 0
    avatars = results["applications"]["avatar"]["rows"]
    assert avatars["aligned input photo"]["faces"] == 3 and avatars["normalized face (model)"]["faces"] == 3
    # dlib landmarks of real photos are fitted to within a tenth of the eye distance.
    assert avatars["aligned input photo"]["mean_error_iod"] < 0.1
    assert results["applications"]["figures"] == {"adjust": "adjust_grid.png", "avatar": "avatar_views.png"}
    for name in ("report.md", "results.json", "identity_histogram.png", "people_grid.png", "adjust_grid.png",
                 "avatar_views.png"):
        assert (tmp_path / "report" / name).is_file()
    assert json.loads((tmp_path / "report" / "results.json").read_text())["quick"] is True
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Identity by dlib" in text and "Automatic white balance" in text and "3-D avatar" in text
    assert "Identity by the independent judge" in text and "What a person sees" in text
    assert "Pictures: London Set, CC BY" in text

    (tmp_path / "report" / "scratch.png").write_bytes(b"")  # anything unknown stays behind
    published = report.publish_report(tmp_path / "report", tmp_path / "published")
    names = {p.name for p in published}
    assert {"report.md", "results.json", "adjust_grid.png", "avatar_views.png"} <= names
    assert not names & set(report.LFW_FIGURES) and "scratch.png" not in names
    text = (tmp_path / "published" / "report.md").read_text()
    assert "](people_grid.png)" not in text and "`people_grid.png`, shows LFW faces" in text


def test_records_table_known_answer(tmp_path):
    """A model whose texture and landmarks are all zero scores the records' own mean texture and
    mean landmark norm, read here from the raw records."""
    import keras
    import tensorflow as tf

    from normface.data import build, pipeline, schema
    from normface.testing import synthetic

    synthetic.write_synthetic_faceset(tmp_path / "faces", 32, {"train": 2, "validation": 3, "test": 1}, seed=1)
    config = build.BuildConfig(morphs_per_face=1, shard_size=5, seed=0, k=1, encoder="fake")
    build.build_records(tmp_path / "faces", str(tmp_path / "records"), config, synthetic.fake_record_encoder,
                        log=lambda _: None)
    features = keras.Input((8,))
    zero = keras.layers.Lambda(lambda f: tf.zeros_like(f[:, :1]))(features)
    texture = keras.layers.Lambda(lambda z: tf.zeros((tf.shape(z)[0], 32, 32, 3)))(zero)
    marks = keras.layers.Lambda(lambda z: tf.zeros((tf.shape(z)[0], 68, 2)))(zero)
    model = types.SimpleNamespace(model=keras.Model(features, {"texture": texture, "landmarks": marks}),
                                  output_size=32)
    rows = report.records_table({"zero": model}, tmp_path / "records", "validation", batch_size=2)
    truth = list(pipeline.make_dataset(tmp_path / "records", "validation", 3, shuffle=False))[0]
    assert rows["zero"]["faces"] == 3
    assert rows["zero"]["texture_l1"] == pytest.approx(float(np.mean(truth[schema.TEXTURE])), rel=1e-5)
    norms = np.linalg.norm(truth[schema.LANDMARKS].numpy(), axis=-1).mean()
    assert rows["zero"]["landmark_px"] == pytest.approx(float(norms), rel=1e-5)


def test_lfw_photos_are_refused_as_figure_samples(tiny_faces, export_dir, tmp_path, data_root):
    lfw_photo = data_root / "lfw" / TEST_PEOPLE[0] / f"{TEST_PEOPLE[0]}_0001.jpg"
    with pytest.raises(ValueError, match="LFW photo cannot be a figure sample"):
        report.build_report(export_dir, tiny_faces, tmp_path / "report", quick=True, log=lambda m: None,
                            data_root=data_root, samples=[lfw_photo])
