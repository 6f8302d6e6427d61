"""Tests of the person split (normface.data.splits): studio people from file names, disjointness,
determinism, and that no test person can be trained on."""

from __future__ import annotations

from pathlib import Path

import pytest

from normface.data import splits


def _studio(root: Path) -> Path:
    for folder, names in {"london_neutral": ["001_03", "002_03", "003_03"],
                          "london_smiling": ["001_08", "003_08"],
                          "canada_neutral": ["003f", "010m"]}.items():
        (root / "studio" / folder).mkdir(parents=True)
        for name in names:
            (root / "studio" / folder / f"{name}.jpg").write_bytes(b"")
    return root


def test_studio_photos_read_people_from_file_names(tmp_path):
    root = _studio(tmp_path)
    photos = splits.studio_photos(root)
    assert [(p.person, p.path.name, p.smiling) for p in photos] == [
        ("london/001", "001_03.jpg", False), ("london/002", "002_03.jpg", False), ("london/003", "003_03.jpg", False),
        ("london/001", "001_08.jpg", True), ("london/003", "003_08.jpg", True),
        ("canada/003f", "003f.jpg", False), ("canada/010m", "010m.jpg", False)]
    assert [p.person for p in splits.studio_photos(root, ("canada",))] == ["canada/003f", "canada/010m"]
    assert splits.studio_people(root, "london_smiling") == ["001", "003"]
    assert splits.studio_people(root, "canada_neutral") == ["003f", "010m"]


def test_splits_are_disjoint_deterministic_and_hold_out_test_people(data_root):
    first = splits.make_splits(data_root)
    assert first == splits.make_splits(data_root)
    splits.check_disjoint(first)
    lfw_test = {splits.person_id("lfw", n) for n in splits.read_lfw_people(data_root / "lfw_peopleDevTest.txt")}
    assert lfw_test <= set(first["test"]) and not lfw_test & set(first["train"] + first["validation"])
    london = splits.studio_people(data_root, "london_neutral")
    london_train = [p for p in first["train"] if p.startswith("london/")]
    assert len(london_train) == splits.LONDON_TRAIN_PEOPLE
    assert len([p for p in first["test"] if p.startswith("london/")]) == len(london) - splits.LONDON_TRAIN_PEOPLE
    assert splits.make_splits(data_root, seed=1)["train"] != first["train"]


def test_overlapping_splits_are_refused(tmp_path):
    with pytest.raises(ValueError, match="lfw/A is in both"):
        splits.check_disjoint({"train": ["lfw/A"], "validation": [], "test": ["lfw/A"]})
    with pytest.raises(ValueError, match="lfw/A is in both"):
        splits.write_splits(tmp_path / "s.json", {"train": ["lfw/A"], "validation": ["lfw/A"], "test": []}, seed=0)
    assert not (tmp_path / "s.json").exists()
