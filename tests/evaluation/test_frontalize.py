"""Tests of the warping-based frontalization baseline (normface.evaluation.frontalize)."""

from __future__ import annotations

import numpy as np

from normface.evaluation import frontalize
from normface.faces.detection import find_faces68
from normface.utils import io_utils
from normface.faces.alignment import AlignmentTemplate, align_image


def test_frontal_studio_photo_stays_close_to_its_alignment(data_root):
    """A frontal, neutral studio face is already frontal: frontalizing barely changes it."""
    template = AlignmentTemplate.for_size(96)
    photo = io_utils.read_rgb(data_root / "studio" / "london_neutral" / "001_03.jpg")
    landmarks = find_faces68(photo)[0].landmarks
    aligned, _, _ = align_image(photo, landmarks, template)
    out = frontalize.frontalize(photo, landmarks, template, str(data_root))
    ref = frontalize.frontal_reference(template, str(data_root))
    assert out.shape == (96, 96, 3) and out.dtype == np.uint8
    assert 0.25 < ref.mask.mean() < 0.75  # the face surface covers the middle of the crop
    diff = np.abs(out.astype(float) - aligned.astype(float))[ref.mask].mean()
    assert diff < 25.0, diff
    assert np.array_equal(out[~ref.mask], aligned[~ref.mask])


def test_turned_face_moves_toward_frontal(data_root):
    """For a turned LFW face, the frontalized nose sits nearer the centre line than in the
    similarity-aligned photo (measured by re-detected landmarks)."""
    template = AlignmentTemplate.for_size(128)
    photo = io_utils.read_rgb(data_root / "lfw" / "Colin_Powell" / "Colin_Powell_0001.jpg")
    landmarks = find_faces68(photo)[0].landmarks
    aligned, aligned_lm, _ = align_image(photo, landmarks, template)
    out = frontalize.frontalize(photo, landmarks, template, str(data_root))
    again = find_faces68(out, upsample=1, max_upsample=2)
    assert again
    centre = (template.size - 1) / 2.0
    # Nose tip (30) offset from the centre line, relative to the aligned photo's.
    assert abs(again[0].landmarks[30, 0] - centre) <= abs(aligned_lm[30, 0] - centre) + 1.0
