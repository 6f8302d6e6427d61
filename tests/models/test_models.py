"""Tests of normface.models: configs, every decoder variant, serialization, gradients through the warp."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from normface import warp
from normface.models import IMAGE, LANDMARKS, TEXTURE, ModelConfig, build_normalizer, from_model
from normface.models.normalizer import mean_landmarks_of
from normface.testing.synthetic import mean_landmarks, tiny_model_config

SIZE, FEAT = 32, 16
VARIANTS = {"cnn": {}, "fc": {"texture_decoder": "fc"}, "plain_cnn": {"plain_cnn": True},
            "refined": {"refine_channels": (4, 4)}}


def features(batch=2, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, FEAT)).astype(np.float32)


@pytest.mark.parametrize("size", [40, 8, 0, 100])
def test_size_not_divisible_by_16_is_rejected(size):
    with pytest.raises(ValueError, match="output_size must be a positive multiple of 16"):
        ModelConfig(output_size=size)


@pytest.mark.parametrize("bad, match", [
    ({"texture_decoder": "gan"}, "texture_decoder"),
    ({"plain_cnn": True, "texture_decoder": "fc"}, "plain_cnn"),
    ({"channels": (8, 8)}, "channels"),
    ({"feature_hidden": ()}, "feature_hidden"),
    ({"dtype_policy": "float16"}, "dtype_policy"),
    ({"refine_channels": (4, 0)}, "refine_channels"),
    ({"refine_channels": (4,), "texture_decoder": "fc"}, "refine_channels"),
])
def test_bad_config_names_the_field(bad, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**bad)


def test_config_round_trips_through_dict():
    config = tiny_model_config(texture_decoder="fc")
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        ModelConfig.from_dict({"outputsize": 64})


def test_cnn_grid_scales_with_size():
    for size, grid in ((64, 4), (128, 8), (224, 14)):
        assert ModelConfig(output_size=size).grid_size == grid
    net = build_normalizer(tiny_model_config(output_size=64), mean_landmarks(64))
    assert tuple(net.model.get_layer("texture_cnn").get_layer("grid").output.shape) == (None, 4, 4, 8)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_outputs_and_keras_round_trip(variant, tmp_path):
    config = tiny_model_config(**VARIANTS[variant])
    net = build_normalizer(config, mean_landmarks(SIZE))
    out = net.model(features())
    expected = {LANDMARKS, IMAGE} | ({TEXTURE} if variant != "plain_cnn" else set())
    assert set(out) == expected
    assert out[LANDMARKS].shape == (2, 68, 2) and out[IMAGE].shape == (2, SIZE, SIZE, 3)
    assert all(v.dtype == tf.float32 and np.all(np.isfinite(v)) for v in out.values())
    # Starts near the mean face and a mid-grey texture.
    assert np.abs(out[LANDMARKS] - mean_landmarks(SIZE)).max() < 0.1 * SIZE
    assert abs(float(tf.reduce_mean(out[IMAGE])) - 0.5) < 0.2
    path = tmp_path / "m.keras"
    net.model.save(path)
    loaded = keras.models.load_model(path)
    again = loaded(features())
    for k in out:
        np.testing.assert_allclose(again[k], out[k], atol=1e-6)
    np.testing.assert_allclose(mean_landmarks_of(loaded), mean_landmarks(SIZE), atol=1e-5)
    rebuilt = from_model(loaded, config)
    np.testing.assert_allclose(rebuilt.decoder(features())[LANDMARKS], out[LANDMARKS], atol=1e-6)


def test_decoder_has_no_warp():
    net = build_normalizer(tiny_model_config(), mean_landmarks(SIZE))
    assert any(isinstance(layer, warp.SplineWarp) for layer in net.model.layers)
    assert not any(isinstance(layer, warp.SplineWarp) for layer in net.decoder.layers)
    assert set(net.decoder(features())) == {LANDMARKS, TEXTURE}


def test_output_image_is_the_texture_warped_to_the_landmarks():
    net = build_normalizer(tiny_model_config(), mean_landmarks(SIZE))
    out = net.model(features())
    src = np.broadcast_to(mean_landmarks(SIZE), (2, 68, 2))
    expected, _ = warp.warp_to_landmarks(out[TEXTURE], src, out[LANDMARKS], num_boundary_points=4)
    np.testing.assert_allclose(out[IMAGE], expected, atol=1e-5)


def test_warp_gradients_reach_decoder_weights():
    net = build_normalizer(tiny_model_config(), mean_landmarks(SIZE))
    target = np.random.default_rng(1).uniform(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(net.model(features())[IMAGE] - target))
    variables = net.model.trainable_variables
    grads = {id(v): g for v, g in zip(variables, tape.gradient(loss, variables))}
    for name in ("texture_cnn", "landmark_mlp", "feature_mlp"):
        sub = net.model.get_layer(name)
        for v in sub.trainable_variables:
            g = grads[id(v)]
            assert g is not None and float(tf.norm(g)) > 0, f"no gradient reached {name}/{v.path}"


def test_mixed_precision_keeps_outputs_float32():
    net = build_normalizer(tiny_model_config(dtype_policy="mixed_bfloat16"), mean_landmarks(SIZE))
    out = net.model(features())
    assert all(v.dtype == tf.float32 for v in out.values())
    assert net.model.get_layer("texture_cnn").get_layer("up0").compute_dtype == "bfloat16"


def test_bad_mean_landmarks():
    with pytest.raises(ValueError, match="mean_landmarks must have shape"):
        build_normalizer(tiny_model_config(), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="inside the 32x32"):
        build_normalizer(tiny_model_config(), mean_landmarks(SIZE) + 100)
