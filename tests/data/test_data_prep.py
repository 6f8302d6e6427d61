"""Tests of data preparation I (normface.data.align / average): bad input, resumption, outputs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from normface.data import splits
from normface.faces import quality
from normface.faces.alignment import AlignmentTemplate
from normface.data import align, average, faceset

FACES = ["Aaron_Eckhart/Aaron_Eckhart_0001", "Colin_Powell/Colin_Powell_0001", "Tony_Blair/Tony_Blair_0001"]


@pytest.fixture(scope="module")
def tiny_data(data_root, tmp_path_factory):
    """A data folder in LFW's layout: two good people and one of broken or unusual files."""
    root = tmp_path_factory.mktemp("data")
    (root / "morphable_model").symlink_to(data_root / "morphable_model")
    good = [Image.open(data_root / "lfw" / f"{k}.jpg").convert("RGB") for k in FACES]
    for person, images in {"Good_One": good[:2], "Good_Two": good[1:]}.items():
        (root / "lfw" / person).mkdir(parents=True)
        for i, im in enumerate(images, 1):
            im.save(root / "lfw" / person / f"{person}_{i:04d}.jpg")
    bad = root / "lfw" / "Odd_Files"
    bad.mkdir()
    (bad / "Odd_Files_0001.jpg").write_text("not an image at all")
    jpeg = (data_root / "lfw" / f"{FACES[0]}.jpg").read_bytes()
    (bad / "Odd_Files_0002.jpg").write_bytes(jpeg[: len(jpeg) // 3])  # truncated
    good[0].convert("CMYK").save(bad / "Odd_Files_0003.jpg", format="JPEG")
    good[1].convert("L").save(bad / "Odd_Files_0004.jpg", format="PNG")  # greyscale PNG
    grey16 = (np.asarray(good[2].convert("L"), np.uint16) * 257)
    Image.fromarray(grey16).save(bad / "Odd_Files_0005.jpg", format="PNG")  # 16-bit PNG
    good[2].convert("RGBA").save(bad / "Odd_Files_0006.jpg", format="PNG")  # alpha
    Image.new("RGB", (10, 10)).save(bad / "Odd_Files_0007.jpg")  # tiny
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(bad / "Odd_Files_0008.jpg")  # no face
    people = {"train": ["lfw/Good_One", "lfw/Odd_Files"], "validation": [], "test": ["lfw/Good_Two"]}
    return root, people


def run_align(tiny_data, out, **kwargs):
    root, people = tiny_data
    splits.write_splits(out / align.SPLITS_FILE, people, seed=0)
    return align.align_all(root, out, AlignmentTemplate.for_size(64), sources=["lfw"], shard_size=3,
                           workers=1, progress=kwargs.pop("progress", lambda msg: None), **kwargs)


def test_bad_input_is_recorded_and_the_run_continues(tiny_data, tmp_path):
    summary = run_align(tiny_data, tmp_path)
    records = {r["key"].split("/")[-1]: r for r in align.read_manifest(tmp_path)}
    assert len(records) == 12 and summary["photos"] == 12
    reasons = {k: r.get("reason", "") for k, r in records.items()}
    assert reasons["Odd_Files_0001"].startswith("unreadable")
    assert reasons["Odd_Files_0002"].startswith("unreadable")
    assert reasons["Odd_Files_0007"].startswith("too small")
    assert reasons["Odd_Files_0008"] == "no face found"
    for converted in ("Odd_Files_0003", "Odd_Files_0004", "Odd_Files_0005", "Odd_Files_0006"):
        assert records[converted]["status"] == "aligned", (converted, reasons[converted])
    assert summary["failed"] == 4 and summary["aligned"] == 8
    # The failures are counted by reason in the summary too.
    assert summary["failure_reasons"] == {"unreadable": 2, "too small": 1, "no face found": 1}
    entry = next(faceset.iter_faces(tmp_path, "test"))
    assert entry.person == "lfw/Good_Two"
    assert faceset.load_face_image(tmp_path, entry).shape == (64, 64, 3)
    # Greyscale inputs stay grey and are measured as monochrome.
    assert records["Odd_Files_0004"]["measures"]["saturation"] < 0.01


def test_killed_run_resumes_to_identical_outputs(tiny_data, tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    run_align(tiny_data, whole)

    class Killed(Exception):
        pass

    def kill_after_first_shard(msg):
        if msg.startswith("shard 0"):
            raise Killed

    with pytest.raises(Killed):
        run_align(tiny_data, resumed, progress=kill_after_first_shard)
    assert align.shard_path(resumed, 0).is_file() and not align.shard_path(resumed, 1).is_file()
    run_align(tiny_data, resumed)
    assert (whole / align.MANIFEST_FILE).read_text() == (resumed / align.MANIFEST_FILE).read_text()
    files = sorted(p.relative_to(whole) for p in whole.rglob("*.png"))
    assert files == sorted(p.relative_to(resumed) for p in resumed.rglob("*.png"))
    for rel in files:
        assert (whole / rel).read_bytes() == (resumed / rel).read_bytes()


def test_average_stage_filters_and_averages(tiny_data, tmp_path):
    run_align(tiny_data, tmp_path / "aligned")
    lenient = quality.QualityThresholds(max_yaw=90, max_pitch=90, max_roll=90, max_smile=1.0, min_saturation=0.0,
                                        max_light_asymmetry=10.0, max_light_gradient=10.0)
    summary = average.average_all(tmp_path / "aligned", tmp_path / "averaged", lenient, min_photos=2,
                                  progress=lambda msg: None)
    faces = {e.person: e for e in faceset.iter_faces(tmp_path / "averaged")}
    assert set(faces) == {"lfw/Good_One", "lfw/Good_Two", "lfw/Odd_Files"}
    assert len(faces["lfw/Good_One"].photos) == 2
    assert summary["people_averaged"] == 3 and summary["lfw_kept_all_filters"] == 8
    # A strict smile threshold rejects photos and the summary says by which filter.
    strict = quality.QualityThresholds(max_yaw=90, max_pitch=90, max_roll=90, max_smile=0.0, min_saturation=0.0,
                                       max_light_asymmetry=10.0, max_light_gradient=10.0)
    with pytest.raises(ValueError, match="thresholds differ"):  # would keep stale averages
        average.average_all(tmp_path / "aligned", tmp_path / "averaged", strict, progress=lambda msg: None)
    shutil.rmtree(tmp_path / "averaged")
    summary = average.average_all(tmp_path / "aligned", tmp_path / "averaged", strict, progress=lambda msg: None)
    assert summary["rejected_expression"] == 8 and summary["people_averaged"] == 0


def test_resume_with_other_settings_is_refused(tiny_data, tmp_path):
    run_align(tiny_data, tmp_path, limit=5)
    with pytest.raises(ValueError, match="limit"):
        run_align(tiny_data, tmp_path)


def test_missing_face_model_fails_at_start(tiny_data, tmp_path):
    root, people = tiny_data
    empty = tmp_path / "data"
    shutil.copytree(root / "lfw", empty / "lfw")
    with pytest.raises(FileNotFoundError, match="Surrey face model"):
        align.align_all(empty, tmp_path / "out", AlignmentTemplate.for_size(64), sources=["lfw"],
                        progress=lambda msg: None)
    assert not (tmp_path / "out" / align.MANIFEST_DIR).exists()


def test_existing_split_with_other_seed_is_refused(tiny_data, tmp_path):
    root, people = tiny_data
    splits.write_splits(tmp_path / align.SPLITS_FILE, people, seed=5)
    with pytest.raises(ValueError, match="seed 5"):
        align.align_all(root, tmp_path, AlignmentTemplate.for_size(64), sources=["lfw"], seed=0,
                        progress=lambda msg: None)
