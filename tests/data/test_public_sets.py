"""Tests of the public face-set loaders (normface.data.public_sets) on their samples under
``<data>/extra/``, the ``name=path`` source syntax, stage 1 on a few photos of each set, the
person split's public-set and validation rules, and the even-light measures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from normface.data import splits
from normface.faces import quality
from normface.utils import paths
from normface.faces.alignment import AlignmentTemplate
from normface.data import align, public_sets as ps


@pytest.fixture(scope="module")
def extra() -> Path:
    root = paths.data_dir() / "extra"
    if not root.is_dir():
        pytest.skip(f"public face-set samples absent: {root} (set {paths.DATA_ENV})")
    return root


# --- FairFace -------------------------------------------------------------------------------------


def test_fairface_ages_are_unmangled():
    assert ps.normalize_fairface_age("03-Sep") == "3-9"
    assert ps.normalize_fairface_age("Oct-19") == "10-19"
    assert ps.normalize_fairface_age("more than 70") == "70+"
    for group in ps.FAIRFACE_AGE_GROUPS:
        assert ps.normalize_fairface_age(group) == group
    with pytest.raises(ValueError, match="unknown FairFace age group '12-Dec'"):
        ps.normalize_fairface_age("12-Dec")


def test_fairface_sample(extra):
    root = extra / "fairface"
    photos = ps.load_fairface(root)
    assert len(photos) == 30 and all(p.path.is_file() for p in photos)
    by_name = {p.name: p for p in photos}
    assert sum(p.labels["subset"] == "train" for p in photos) == 24
    assert by_name["train_1"].labels == {"subset": "train", "age_group": "50-59", "gender": "male",
                                         "race": "East Asian", "service_test": True}
    assert by_name["train_3"].labels["age_group"] == "3-9"      # "03-Sep" in the CSV
    assert by_name["val_1"].labels["age_group"] == "3-9"
    raw = {}
    for csv_name in ps.FAIRFACE_CSVS.values():
        for line in (root / csv_name).read_text().splitlines()[1:]:
            file, age = line.split(",")[:2]
            raw[file.replace("/", "_").removesuffix(".jpg")] = age
    assert "Oct-19" in raw.values() and "03-Sep" in raw.values()
    for name, age in raw.items():
        assert by_name[name].labels["age_group"] == ps.normalize_fairface_age(age)
        assert "-Sep" not in by_name[name].labels["age_group"] and "Oct" not in by_name[name].labels["age_group"]
    check = ps.count_check(ps.FAIRFACE, photos)
    assert not check["complete"] and "24 train + 6 val" in check["note"] and "40,000 train" in check["note"]


def test_fairface_github_layout_and_errors(extra, tmp_path):
    root = tmp_path / "ff"
    (root / "fair_face").mkdir(parents=True)
    for sub in ("train", "val"):
        shutil.copytree(extra / "fairface" / sub, root / "fair_face" / sub)
    for csv_name in ps.FAIRFACE_CSVS.values():
        shutil.copy(extra / "fairface" / csv_name, root / csv_name)
    photos = ps.load_fairface(root)
    assert ps.fairface_image_root(root) == root / "fair_face"
    assert len(photos) == 30 and all(p.path.is_file() and "fair_face" in p.path.parts for p in photos)

    (root / "fairface_label_val.csv").unlink()
    with pytest.raises(FileNotFoundError, match="fairface_label_val.csv"):
        ps.load_fairface(root)
    bad = (extra / "fairface" / "fairface_label_val.csv").read_text().replace("50-59", "fifty")
    (root / "fairface_label_val.csv").write_text(bad)
    with pytest.raises(ValueError, match=r"fairface_label_val.csv:3: unknown FairFace age group 'fifty'"):
        ps.load_fairface(root)
    shutil.rmtree(root / "fair_face")
    with pytest.raises(FileNotFoundError, match="FairFace images not found"):
        ps.load_fairface(root)
    with pytest.raises(FileNotFoundError, match="FairFace folder not found"):
        ps.load_fairface(tmp_path / "nowhere")


# --- SCUT-FBP5500 ---------------------------------------------------------------------------------


def test_scut_sample_and_landmarks(extra):
    from PIL import Image

    root = extra / "scut_fbp5500"
    photos = ps.load_scut(root)
    assert len(photos) == 24 and all(p.path.is_file() for p in photos)
    assert [p.name for p in photos[:3]] == ["AF1", "AF2", "AF3"]
    assert {p.labels["subset"] for p in photos} == {"AF", "AM", "CF", "CM"}
    cm = next(p for p in photos if p.name == "CM5")
    assert cm.labels == {"subset": "CM", "ethnicity": "caucasian", "gender": "male", "beauty": 2.666667}
    assert all(1.0 <= p.labels["beauty"] <= 5.0 and not p.problem for p in photos)
    for p in photos:
        lm = ps.read_scut_landmarks(ps.scut_landmark_path(root, p.name))
        width, height = Image.open(p.path).size
        assert lm.shape == (86, 2) and lm.dtype == np.float32
        assert (lm >= 0).all() and (lm[:, 0] < width).all() and (lm[:, 1] < height).all()
        assert np.ptp(lm[:, 0]) > 0.25 * width  # a face, not a point


def test_scut_errors_name_the_file(extra, tmp_path):
    root = tmp_path / "SCUT-FBP5500_v2"
    shutil.copytree(extra / "scut_fbp5500", root)
    pts = ps.scut_landmark_path(root, "AF1")
    pts.chmod(0o644)
    pts.write_bytes(pts.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"AF1\.pts: 687 bytes, expected 692 for 86 points \(truncated\)"):
        ps.read_scut_landmarks(pts)
    pts.write_bytes(b"\x01")
    with pytest.raises(ValueError, match=r"AF1\.pts: truncated"):
        ps.read_scut_landmarks(pts)
    pts.write_bytes(np.int32(68).tobytes() + np.zeros(136, np.float32).tobytes())
    with pytest.raises(ValueError, match=r"AF1\.pts: header says 68 points"):
        ps.read_scut_landmarks(pts)
    with pytest.raises(FileNotFoundError, match="XX9.pts"):
        ps.read_scut_landmarks(ps.scut_landmark_path(root, "XX9"))
    labels = root / ps.SCUT_LABELS
    labels.chmod(0o644)
    labels.write_text("AF1.jpg 2.5\nAF2.jpg\n")
    with pytest.raises(ValueError, match=r"All_labels.txt:2"):
        ps.load_scut(root)
    labels.unlink()
    with pytest.raises(FileNotFoundError, match="All_labels.txt"):
        ps.load_scut(root)


# --- UTKFace --------------------------------------------------------------------------------------


def test_utkface_sample(extra):
    photos = ps.load_utkface(extra / "utkface")
    assert len(photos) == 24 and all(p.path.is_file() and not p.problem for p in photos)
    first = {p.name: p for p in photos}["1_0_2_20161219161625326"]
    assert first.labels == {"age": 1, "age_group": "0-2", "gender": "male", "race": "asian",
                            "datetime": "20161219161625326"}
    assert {p.labels["gender"] for p in photos} == {"male", "female"}
    assert all("." not in p.name for p in photos)


def test_utkface_malformed_names_are_reported(extra, tmp_path):
    root = tmp_path / "UTKFace"
    root.mkdir()
    src = sorted((extra / "utkface").glob("*.jpg"))
    # Real malformed names of the full set: a missing field, a missing dot, a stray space.
    for sample, name in zip(src, ["39_1_20170116174525125.jpg.chip.jpg", "55_0_0_20170116232725357jpg.chip.jpg",
                                  "24_0_1_20170116220224657 .jpg.chip.jpg", src[3].name]):
        shutil.copy(sample, root / name)
    photos = {p.name: p for p in ps.load_utkface(root)}
    assert len(photos) == 4
    missing = photos["39_1_20170116174525125"]
    assert missing.labels == {"age": 39, "age_group": "30-39"}
    assert "3 fields, expected 4" in missing.problem and "unknown: gender, race" in missing.problem
    assert photos["55_0_0_20170116232725357jpg"].labels["race"] == "white"
    assert "malformed UTKFace name" in photos["55_0_0_20170116232725357jpg"].problem
    assert photos["24_0_1_20170116220224657-"].problem
    assert not photos[src[3].name.removesuffix(".jpg.chip.jpg")].problem
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no UTKFace photos"):
        ps.load_utkface(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="UTKFace folder not found"):
        ps.load_utkface(tmp_path / "missing")


# --- sources, splits, stage 1 ---------------------------------------------------------------------


def test_source_syntax(extra, tmp_path):
    assert ps.parse_sources(["lfw", "fairface=/data/ff", "utkface"]) == {
        "lfw": None, "fairface": "/data/ff", "utkface": None}
    with pytest.raises(ValueError, match="unknown source 'celeba'"):
        ps.parse_sources(["celeba=/x"])
    with pytest.raises(ValueError, match="'lfw' is read from the data root"):
        ps.parse_sources(["lfw=/x"])
    with pytest.raises(ValueError, match="given twice"):
        ps.parse_sources(["scut", "scut=/x"])
    data_root = extra.parent
    default = align.list_photos(data_root, ["scut"])
    assert len(default) == 24 and default[0].key == "scut/AF1" and default[0].person == "scut/AF1"
    assert default[0].path == "extra/scut_fbp5500/Images/AF1.jpg"  # relative to the data root
    copy = tmp_path / "utk"
    copy.mkdir()
    for p in sorted((extra / "utkface").glob("*.jpg"))[:2]:
        shutil.copy(p, copy / p.name)
    named = align.list_photos(data_root, [f"utkface={copy}"])
    assert [p.key for p in named] == ["utkface/100_0_0_20170112213500903", "utkface/16_0_0_20170110232818695"]
    assert Path(named[0].path).is_absolute() and named[0].labels["age"] == 100
    assert (named[0].border, named[0].border_mode) == ps.DETECTION_BORDER["utkface"] and named[0].choose == "center"


def test_split_rules(data_root):
    people = splits.make_splits(data_root, extra_people=["fairface/train_1", "fairface/val_1", "scut/AF1",
                                                         "utkface/1_0_2_20161219161625326"])
    splits.check_disjoint(people)
    assert "fairface/val_1" in people["test"]
    assert {"fairface/train_1", "scut/AF1", "utkface/1_0_2_20161219161625326"} <= set(people["train"])
    counts = splits.read_lfw_people_counts(data_root / "lfw_peopleDevTrain.txt")
    val = [p.split("/", 1)[1] for p in people["validation"]]
    assert all(p.startswith("lfw/") for p in people["validation"])
    assert len(val) >= 200 and sum(counts[n] >= 2 for n in val) >= 100
    assert sum(counts[n] >= 2 for n in val) == splits.VALIDATION_MULTI_PHOTO_PEOPLE
    assert sum(counts[n] == 1 for n in val) == splits.VALIDATION_SINGLE_PHOTO_PEOPLE
    lfw_test = set(splits.read_lfw_people(data_root / "lfw_peopleDevTest.txt"))
    assert not lfw_test & set(val) and not lfw_test & {p.split("/", 1)[1] for p in people["train"]}
    # The London draw did not change with the new validation rule (the expression filter was
    # fitted on these London training people).
    london_train = sorted(p for p in people["train"] if p.startswith("london/"))
    assert len(london_train) == splits.LONDON_TRAIN_PEOPLE
    assert london_train[:5] == ["london/001", "london/002", "london/003", "london/004", "london/007"]


def _small_copies(extra: Path, tmp_path: Path) -> list[str]:
    """A few photos of each set, in each set's layout; one UTKFace name malformed."""
    ff = tmp_path / "fairface"
    for sub in ("train", "val"):
        (ff / "fair_face" / sub).mkdir(parents=True)
    keep = {"train": ["train/1.jpg", "train/3.jpg", "train/15.jpg"], "val": ["val/2.jpg"]}
    for sub, files in keep.items():
        csv_name = ps.FAIRFACE_CSVS[sub]
        lines = (extra / "fairface" / csv_name).read_text().splitlines()
        (ff / csv_name).write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if ln.split(",")[0] in files]) + "\n")
        for f in files:
            shutil.copy(extra / "fairface" / f, ff / "fair_face" / f)
    scut = tmp_path / "SCUT-FBP5500_v2"
    for folder in ("Images", "facial landmark", "train_test_files"):
        (scut / folder).mkdir(parents=True)
    for name in ("AF1", "CM2"):
        shutil.copy(extra / "scut_fbp5500" / "Images" / f"{name}.jpg", scut / "Images")
    shutil.copy(extra / "scut_fbp5500" / ps.SCUT_LABELS, scut / ps.SCUT_LABELS)
    utk = tmp_path / "UTKFace"
    utk.mkdir()
    src = sorted((extra / "utkface").glob("*.jpg"))
    shutil.copy(src[0], utk / src[0].name)
    shutil.copy(src[1], utk / "39_1_20170116174525125.jpg.chip.jpg")
    shutil.copy(src[-1], utk / src[-1].name)  # sorts last: left out by the limit
    return [f"fairface={ff}", f"scut={scut}", f"utkface={utk}"]


def test_stage1_on_public_set_samples(extra, tmp_path):
    data_root = extra.parent
    sources = _small_copies(extra, tmp_path / "sets")
    out = tmp_path / "out"
    notes = []
    summary = align.align_all(data_root, out, AlignmentTemplate.for_size(64), sources=sources, shard_size=4,
                              workers=1, limit=8, progress=notes.append)
    records = {r["key"]: r for r in align.read_manifest(out)}
    assert sorted(records) == ["fairface/train_1", "fairface/train_15", "fairface/train_3", "fairface/val_2", "scut/AF1", "scut/CM2",
                               "utkface/100_0_0_20170112213500903", "utkface/39_1_20170116174525125"]
    assert records["fairface/val_2"]["split"] == "test"
    assert all(r["split"] == "train" for k, r in records.items() if k != "fairface/val_2")
    assert records["fairface/train_1"]["labels"]["age_group"] == "50-59"
    assert records["fairface/train_3"]["labels"]["age_group"] == "3-9"  # "03-Sep" in the CSV
    assert records["fairface/train_15"]["detector"] == "hog+constant border"
    assert records["scut/CM2"]["labels"]["ethnicity"] == "caucasian"
    assert records["utkface/100_0_0_20170112213500903"]["source"] == "utkface"
    assert "3 fields" in records["utkface/39_1_20170116174525125"]["label_problem"]
    assert list(summary["label_problems"]) == ["utkface/39_1_20170116174525125"]
    assert summary["per_source"]["scut"]["photos"] == 2
    assert not summary["source_checks"]["scut"]["complete"]
    assert any("scut: found 2 photos, expected 5,500" in n for n in notes)
    aligned = [r for r in records.values() if r["status"] == "aligned"]
    assert len(aligned) >= 7, {k: r.get("reason") for k, r in records.items()}
    for r in aligned:
        m = r["measures"]
        assert {"light_asymmetry", "light_gradient", "light_gradient_angle"} <= set(m)
        assert abs(m["roll"]) < 20 and abs(m["yaw"]) < 45  # landmarks in the photo's frame after the border
        assert (out / r["split"] / f"{r['key']}.png").is_file()
    # Each photo is its own person, all recorded in splits.json.
    stored = splits.read_splits(out / align.SPLITS_FILE)
    assert set(records) <= set(stored["train"]) | set(stored["test"])
    assert stored["validation"] and all(p.startswith("lfw/") for p in stored["validation"])


def test_border_retry_keeps_landmarks_in_the_photo_frame(extra):
    import cv2

    from normface.faces.detection import find_faces68
    from normface.utils import io_utils

    # A tight crop found either way: the border only shifts the frame.
    image = io_utils.read_rgb(extra / "utkface" / "26_1_1_20170116224121946.jpg.chip.jpg")
    pad = 50
    padded = find_faces68(cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE), "center")
    plain = align.detect(image, "center", 0.25, "replicate")
    assert plain[0].detector == "hog"  # found without the border: no retry
    assert np.abs(plain[0].landmarks - (padded[0].landmarks - pad)).mean() < 3.0
    # FairFace train/15 is found only with the black border; landmarks come back in its frame.
    image = io_utils.read_rgb(extra / "fairface" / "train" / "15.jpg")
    assert not align.detect(image, "center")
    retry = align.detect(image, "center", 0.25, "constant")
    assert len(retry) == 1 and retry[0].detector == "hog+constant border"
    assert (np.abs(retry[0].landmarks.mean(0) - 112) < 30).all()
    box = retry[0].box
    assert box[0] < retry[0].landmarks[:, 0].mean() < box[2] and box[1] < retry[0].landmarks[:, 1].mean() < box[3]
    with pytest.raises(ValueError, match="border mode"):
        align.detect(image, "center", 0.25, "mirror")


# --- even light -----------------------------------------------------------------------------------


def test_light_measures_see_side_light(data_root):
    from normface.faces.detection import find_faces68
    from normface.utils import io_utils
    from normface.faces.alignment import align_image

    template = AlignmentTemplate.for_size(128)
    photo = io_utils.read_rgb(data_root / "studio" / "london_neutral" / "001_03.jpg")
    aligned, lm, _ = align_image(photo, find_faces68(photo)[0].landmarks, template)
    flat = quality.light_measures(np.full_like(aligned, 128), lm)
    assert abs(flat["light_asymmetry"]) < 1e-9 and flat["light_gradient"] < 1e-9
    even = quality.light_measures(aligned, lm)
    ramp = np.linspace(0.4, 1.3, aligned.shape[1])[None, :, None]  # lit from the image right
    side = quality.light_measures(np.clip(aligned * ramp, 0, 255).astype(np.uint8), lm)
    assert side["light_asymmetry"] > 0.15 and side["light_asymmetry"] > abs(even["light_asymmetry"]) + 0.1
    assert side["light_gradient"] > even["light_gradient"] + 0.1
    assert abs(side["light_gradient_angle"]) < 30
    left = quality.light_measures(aligned[:, ::-1] * ramp[:, ::-1], lm * [-1, 1] + [aligned.shape[1] - 1, 0])
    assert left["light_asymmetry"] < -0.15
