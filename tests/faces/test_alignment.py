"""Tests of the alignment template and the aligned crop (normface.faces.alignment)."""

from __future__ import annotations

import numpy as np
import pytest

from normface.faces import alignment
from normface.faces.detection import find_faces68
from normface.utils import io_utils
from normface.faces.alignment import AlignmentTemplate

LFW_SAMPLE = ["Aaron_Eckhart/Aaron_Eckhart_0001", "Colin_Powell/Colin_Powell_0001",
              "Gloria_Macapagal_Arroyo/Gloria_Macapagal_Arroyo_0001", "Serena_Williams/Serena_Williams_0001",
              "Vladimir_Putin/Vladimir_Putin_0001", "Jennifer_Lopez/Jennifer_Lopez_0001",
              "Hugo_Chavez/Hugo_Chavez_0001", "Tony_Blair/Tony_Blair_0001"]


def test_template_scales_with_size():
    assert AlignmentTemplate.for_size(224).eye_distance == 55.0
    t = AlignmentTemplate.for_size(128)
    assert abs(t.eye_distance - 31.43) < 0.01
    eyes = t.eye_centers()
    assert np.allclose(eyes[1] - eyes[0], [t.eye_distance, 0.0])
    assert AlignmentTemplate.from_dict(t.to_dict()) == t


@pytest.mark.parametrize("kwargs", [dict(size=4), dict(size=64, eye_distance=70.0), dict(eye_height=1.5)])
def test_template_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        AlignmentTemplate(**kwargs)


def test_similarity_maps_eyes_exactly_and_removes_roll():
    rng = np.random.default_rng(0)
    landmarks = rng.uniform(50, 150, (68, 2))
    t = AlignmentTemplate.for_size(128)
    matrix = alignment.similarity_to_template(landmarks, t)
    moved = alignment.eye_centers(alignment.apply_affine(landmarks, matrix))
    np.testing.assert_allclose(moved, t.eye_centers(), atol=1e-9)


def test_realigned_lfw_eyes_land_on_template(data_root):
    """Re-detected dlib landmarks on the aligned 128x128 crops put the eye centres within 2 px."""
    t = AlignmentTemplate.for_size(128)
    errors = []
    for key in LFW_SAMPLE:
        image = io_utils.read_rgb(data_root / "lfw" / f"{key}.jpg")
        faces = find_faces68(image)
        assert faces, key
        aligned, _, _ = alignment.align_image(image, faces[0].landmarks, t)
        again = find_faces68(aligned, upsample=1, max_upsample=2)
        assert again, f"{key}: no face re-detected in the aligned crop"
        errors.append(np.abs(alignment.eye_centers(again[0].landmarks) - t.eye_centers()).max())
    assert max(errors) <= 2.0, f"eye-centre errors (px): {np.round(errors, 2)}"
