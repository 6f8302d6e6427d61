"""Tests of the warping-based frontalization baseline (normface.evaluation.frontalize)."""

from __future__ import annotations

import numpy as np
import pytest

from normface.evaluation import frontalize
from normface.faces import face3d
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
    assert diff < 25.0, diff  # measured 12.5; a frontal face needs little warping
    assert np.array_equal(out[~ref.mask], aligned[~ref.mask])


# Turned LFW faces: (photo, measured |yaw| of the re-detected aligned photo -> frontalized output
# in degrees, measured nose-tip offset from the centre line of the frontalized output in px).
TURNED = [
    ("Colin_Powell/Colin_Powell_0001.jpg", 17.1, 7.6, 1.5),
    ("George_W_Bush/George_W_Bush_0003.jpg", 15.6, 2.1, 0.5),
]


@pytest.mark.parametrize("photo_path, yaw_aligned, yaw_frontal, nose_frontal", TURNED,
                         ids=[t[0].split("/")[0] for t in TURNED])
def test_turned_face_moves_toward_frontal(data_root, photo_path, yaw_aligned, yaw_frontal, nose_frontal):
    """A turned LFW face, frontalized, reads measurably more frontal than its similarity-aligned
    photo: head pose (yaw) from re-detected landmarks drops by at least half the measured drop
    (9.5 and 13.5 degrees), and the nose tip sits within twice its measured offset of the centre
    line (1.5 and 0.5 px; about 6 px in the aligned photos)."""
    template = AlignmentTemplate.for_size(128)
    photo = io_utils.read_rgb(data_root / "lfw" / photo_path)
    landmarks = find_faces68(photo)[0].landmarks
    aligned, _, _ = align_image(photo, landmarks, template)
    out = frontalize.frontalize(photo, landmarks, template, str(data_root))
    poses = {}
    for name, image in (("aligned", aligned), ("frontalized", out)):
        again = find_faces68(image, upsample=1, max_upsample=2)
        assert again, f"no face re-detected in the {name} image"
        poses[name] = (face3d.head_pose(again[0].landmarks, template.size, template.size, str(data_root)),
                       again[0].landmarks)
    yaw_a, yaw_f = abs(poses["aligned"][0][0]), abs(poses["frontalized"][0][0])
    assert yaw_a == pytest.approx(yaw_aligned, abs=1.0)  # the photo is as turned as measured
    assert yaw_f <= yaw_a - 0.5 * (yaw_aligned - yaw_frontal), (yaw_a, yaw_f)
    centre = (template.size - 1) / 2.0
    nose_a = abs(poses["aligned"][1][30, 0] - centre)
    nose_f = abs(poses["frontalized"][1][30, 0] - centre)
    assert nose_f <= 2 * nose_frontal and nose_f < nose_a, (nose_a, nose_f)
