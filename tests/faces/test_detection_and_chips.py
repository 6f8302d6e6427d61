"""Tests for normface.faces (detection, chips): input checking, detection, dlib chips and the differentiable chip."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from normface.faces.chips import chip_template, chip_to_image_affine, dlib_face_chip, extract_chips
from normface.faces.detection import as_rgb_uint8, detect_face, detect_faces
from normface.utils.io_utils import read_rgb


@pytest.fixture(scope="module")
def lfw_image(data_root) -> np.ndarray:
    return read_rgb(data_root / "lfw" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg")


# --- input checking ----------------------------------------------------------------------------


def test_as_rgb_uint8_converts_grey_rgba_and_float():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = as_rgb_uint8(grey)
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 2], grey)
    rgba = np.zeros([3, 4, 4], np.uint8)
    rgba[..., 3] = 255
    assert as_rgb_uint8(rgba).max() == 0
    floats = np.full([3, 4, 3], 254.6, np.float32)
    assert as_rgb_uint8(floats).max() == 255


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros([4, 4, 2], np.uint8), "shape"),
        (np.zeros([2, 4, 4, 3], np.uint8), "shape"),
        (np.zeros([4, 4, 3], bool), "dtype bool"),
        (np.full([4, 4, 3], 300.0), r"\[0, 255\]"),
        (np.full([4, 4, 3], -1, np.int32), r"\[0, 255\]"),
        (np.full([4, 4, 3], np.nan), "NaN"),
        (np.array([["a"]]), "dtype"),
    ],
)
def test_as_rgb_uint8_rejects_bad_images(image, message):
    with pytest.raises(ValueError, match=message):
        as_rgb_uint8(image, name="photo")
    with pytest.raises(ValueError, match="photo"):
        as_rgb_uint8(image, name="photo")


# --- detection ---------------------------------------------------------------------------------


def test_detect_faces_finds_the_lfw_face(lfw_image):
    faces = detect_faces(lfw_image)
    assert len(faces) >= 1 and faces[0].num_faces == len(faces) and faces[0].detected
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces]
    assert areas == sorted(areas, reverse=True)
    left, top, right, bottom = faces[0].box
    assert faces[0].landmarks.shape == (5, 2)
    # LFW is centred on the face; its landmarks lie inside (a slightly grown) box.
    assert 80 < (left + right) / 2 < 170 and 80 < (top + bottom) / 2 < 170
    x, y = faces[0].landmarks.T
    assert np.all((x > left - 10) & (x < right + 10) & (y > top - 10) & (y < bottom + 10))
    # Outer eye corners (0 and 2) sit right and left of the nose (4).
    assert x[0] > x[4] > x[2]


def test_detector_miss_falls_back_to_a_centered_box():
    blank = np.full([200, 300, 3], 128, np.uint8)
    assert detect_face(blank, fallback_to_center=False) is None
    fallback = detect_face(blank)
    assert fallback.num_faces == 0 and not fallback.detected
    left, top, right, bottom = fallback.box
    assert abs((left + right) / 2 - 149.5) <= 1 and right - left == pytest.approx(84, abs=1)
    assert fallback.landmarks.shape == (5, 2)


# --- chip geometry -------------------------------------------------------------------------------


def _dlib_corners(landmarks: np.ndarray, size: int, padding: float) -> np.ndarray:
    """Image positions of the chip's tl, tr, bl corner pixels from dlib's own chip details."""
    import dlib

    parts = [dlib.point(int(x), int(y)) for x, y in landmarks]
    shape = dlib.full_object_detection(dlib.rectangle(0, 0, 10, 10), parts)
    details = dlib.get_face_chip_details(shape, size, padding)
    r, angle = details.rect, details.angle
    center = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = np.array([[r.left(), r.top()], [r.right(), r.top()], [r.left(), r.bottom()]])
    return (corners - center) @ rot.T + center


@pytest.mark.parametrize("num_points, size, padding", [(5, 150, 0.25), (5, 64, 0.0), (68, 150, 0.25)])
def test_chip_affine_equals_dlib_chip_details(num_points, size, padding):
    rng = np.random.default_rng(num_points + size)
    _, template = chip_template(num_points, 100, 0.0)
    landmarks = np.zeros([num_points, 2])
    indices, _ = chip_template(num_points)
    # A rotated, scaled, noisy face around (120, 140); dlib wants integer points.
    theta = 0.2
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    landmarks[indices] = template @ rot.T * 1.3 + [60, 70]
    landmarks = np.rint(landmarks + rng.normal(0, 2, landmarks.shape))
    affine = chip_to_image_affine(landmarks[None], size, padding).numpy()[0]
    chip_corners = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1]], np.float64)
    ours = chip_corners @ affine.T
    np.testing.assert_allclose(ours, _dlib_corners(landmarks, size, padding), atol=1e-6)


def test_extract_chips_is_differentiable_in_landmarks(lfw_image):
    landmarks = tf.constant(detect_face(lfw_image).landmarks[None], tf.float32)
    image = tf.constant(lfw_image[None].astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(landmarks)
        chips = extract_chips(image, landmarks, size=64)
        loss = tf.reduce_mean(chips)
    assert chips.shape == (1, 64, 64, 3)
    grad = tape.gradient(loss, landmarks).numpy()
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0


def test_extract_chips_outside_the_image_is_black():
    image = tf.fill([1, 20, 20, 3], 200.0)
    # Landmarks of a face much larger than the image: most of the chip falls outside it.
    _, template = chip_template(5, 400, 0.25)
    chips = extract_chips(image, template[None] - 190.0, size=32).numpy()
    assert chips.min() == 0.0 and chips.max() == pytest.approx(200.0)


@pytest.mark.parametrize(
    "images, landmarks, message",
    [
        (np.zeros([20, 20, 3], np.float32), np.zeros([1, 5, 2]), "images"),
        (np.zeros([1, 20, 20, 3], np.float32), np.zeros([1, 7, 2]), "5 or 68"),
        (np.zeros([1, 20, 20, 3], np.float32), np.zeros([5, 2]), "landmarks"),
    ],
)
def test_extract_chips_rejects_bad_shapes(images, landmarks, message):
    with pytest.raises(ValueError, match=message):
        extract_chips(images, landmarks)


def test_dlib_face_chip_rejects_bad_landmarks(lfw_image):
    with pytest.raises(ValueError, match="landmarks"):
        dlib_face_chip(lfw_image, np.zeros([4, 2]))
    chip = dlib_face_chip(lfw_image, detect_face(lfw_image).landmarks)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8 and chip.std() > 10


def test_choose_center_skips_a_larger_bystander(data_root):
    # In this LFW crop a bystander's face (top right, partly cut off) is the largest detection.
    image = read_rgb(data_root / "lfw" / "Condoleezza_Rice" / "Condoleezza_Rice_0005.jpg")
    largest = detect_face(image, choose="largest")
    central = detect_face(image, choose="center")
    assert largest.num_faces == central.num_faces >= 2
    cx, cy = (central.box[0] + central.box[2]) / 2, (central.box[1] + central.box[3]) / 2
    assert abs(cx - 124.5) < 40 and abs(cy - 124.5) < 40
    assert central.box != largest.box
    with pytest.raises(ValueError, match="choose"):
        detect_face(image, choose="smallest")


def test_cnn_detector_finds_a_face_hog_misses(data_root):
    # A close-up, tilted face: HOG finds nothing, the MMOD CNN does.
    image = read_rgb(data_root / "lfw" / "Jelena_Dokic" / "Jelena_Dokic_0004.jpg")
    assert detect_faces(image) == []
    found = detect_face(image, choose="center", detectors=("hog", "cnn"))
    assert found.detector == "cnn" and found.detected
    left, top, right, bottom = found.box
    assert 60 < (left + right) / 2 < 190 and right - left > 80
    assert detect_face(image).detector == "center"
    with pytest.raises(ValueError, match="detector"):
        detect_faces(image, detector="haar")
