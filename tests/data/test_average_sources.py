"""Stage 2 with the public sets and single-photo people (normface.data.average): what is kept,
the light filter, the per-source counts and the light distribution."""

from __future__ import annotations

import json

import numpy as np

from normface.data import align, average, faceset
from normface.faces import quality
from normface.faces.alignment import AlignmentTemplate
from normface.testing.synthetic import synthetic_faces

GOOD = {"yaw": 0.0, "pitch": quality.FRONTAL_PITCH, "roll": 0.0, "smile": 0.1, "sharpness": 100.0,
        "saturation": 0.3, "eye_distance": 40.0, "light_asymmetry": 0.02, "light_gradient": 0.1}


def _aligned_set(root, rows):
    template = AlignmentTemplate.for_size(32)
    images, marks = synthetic_faces(len(rows), template, seed=2)
    faceset.write_template(root, template)
    manifest = []
    for n, (person, measures) in enumerate(rows):
        key, photo = f"{person}/{n}", f"photos/{n}.jpg"
        faceset.write_face(root, faceset.FaceEntry(person, "train", marks[n].tolist(), [photo], key=key), images[n])
        manifest.append({"key": key, "person": person, "photo": photo, "split": "train", "status": "aligned",
                         "measures": measures})
    (root / align.MANIFEST_FILE).write_text("".join(json.dumps(r) + "\n" for r in manifest))
    return images


def test_single_photo_people_and_public_sets_join_and_light_filters(tmp_path):
    side_lit = {**GOOD, "light_asymmetry": -0.5}
    rows = [("lfw/Two_Photos", GOOD), ("lfw/Two_Photos", GOOD), ("lfw/One_Photo", GOOD),
            ("fairface/train_7", GOOD), ("utkface/side_lit", side_lit), ("scut/AF1", {**GOOD, "smile": 0.99})]
    images = _aligned_set(tmp_path / "aligned", rows)
    summary = average.average_all(tmp_path / "aligned", tmp_path / "averaged", quality.QualityThresholds(),
                                  progress=lambda _: None)
    people = {e.person: e for e in faceset.iter_faces(tmp_path / "averaged", "train")}
    assert set(people) == {"lfw/Two_Photos", "lfw/One_Photo", "fairface/train_7"}
    # A single photo is its own average, pixel for pixel.
    np.testing.assert_array_equal(faceset.load_face_image(tmp_path / "averaged", people["fairface/train_7"]),
                                  images[3])
    assert summary["per_source"]["utkface"]["kept_by_light"] == 0
    assert summary["per_source"]["scut"]["kept_by_expression"] == 0
    assert summary["per_source"]["lfw"]["people"] == 2 and summary["per_source"]["fairface"]["people"] == 1
    light = summary["light_per_source"]["utkface"]["asymmetry"]
    assert light["q50"] == 0.5


def test_light_filter_thresholds():
    t = quality.QualityThresholds(max_light_asymmetry=0.2, max_light_gradient=0.5)
    assert quality.rejections(GOOD, t) == []
    assert quality.rejections({**GOOD, "light_asymmetry": 0.25}, t) == ["light"]
    assert quality.rejections({**GOOD, "light_gradient": 0.6}, t) == ["light"]
    old = {k: v for k, v in GOOD.items() if not k.startswith("light")}
    assert quality.rejections(old, t) == []  # manifests from before the light measures
