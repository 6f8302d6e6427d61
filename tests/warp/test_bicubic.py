"""Bicubic resampling in the warp (issue 28): Catmull-Rom over 4x4 pixels, the same in TensorFlow
and NumPy, exact on pixels and on quadratics, differentiable, sharper than bilinear."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from normface import warp
from normface.evaluation import metrics
from normface.warp import numpy_warp, resample


def _image(h=12, w=10, c=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (h, w, c))


def test_weights_by_hand_and_exact_on_pixels_and_quadratics(fused):
    np.testing.assert_allclose(numpy_warp.cubic_weights(np.array(0.5)), [-1 / 16, 9 / 16, 9 / 16, -1 / 16])
    np.testing.assert_allclose(numpy_warp.cubic_weights(np.array(0.0)), [0, 1, 0, 0])
    np.testing.assert_allclose(resample.cubic_weights(tf.constant([0.3]))[0], numpy_warp.cubic_weights(np.array(0.3)),
                               atol=1e-7)
    image = _image()
    rows, cols = np.meshgrid(np.arange(12), np.arange(10), indexing="ij")
    on_pixels = np.stack([rows, cols], -1).reshape(-1, 2).astype(np.float64)
    np.testing.assert_allclose(numpy_warp.interpolate_bicubic_rowcol(image, on_pixels), image.reshape(-1, 3), atol=1e-12)
    # A quadratic in (row, col) is reproduced exactly wherever all 16 taps are inside the image.
    quad = lambda r, c: 0.3 * r**2 - 0.2 * r * c + 0.1 * c**2 + r - 2 * c  # noqa: E731
    image = np.repeat(quad(rows, cols)[..., None].astype(np.float64), 2, axis=-1)
    query = np.random.default_rng(1).uniform([1, 1], [12 - 2.001, 10 - 2.001], (50, 2))
    want = quad(query[:, 0], query[:, 1])
    np.testing.assert_allclose(numpy_warp.interpolate_bicubic_rowcol(image, query)[:, 0], want, atol=1e-9)
    got = resample.interpolate_bicubic_rowcol(tf.constant(image[None]), tf.constant(query[None]))
    np.testing.assert_allclose(got.numpy()[0, :, 0], want, atol=1e-9)


def test_tensorflow_equals_numpy_inside_and_beyond_the_border(fused):
    image = _image().astype(np.float32)
    query = np.random.default_rng(2).uniform(-3, 14, (200, 2)).astype(np.float32)
    want = numpy_warp.interpolate_bicubic_rowcol(image, query)
    got = resample.interpolate_bicubic_rowcol(tf.constant(image[None]), tf.constant(query[None])).numpy()[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    # Far outside: the nearest border pixel (the corner here), as the bilinear sampler.
    far = numpy_warp.interpolate_bicubic_rowcol(image, np.array([[-1e6, -1e6], [1e6, 1e6]]))
    np.testing.assert_allclose(far, image[[0, -1], [0, -1]], atol=1e-6)


def test_gradients_match_finite_differences(fused):
    image = tf.constant(_image(8, 8, 2, seed=3)[None])
    query = tf.constant(np.random.default_rng(4).uniform(0.2, 6.8, (1, 5, 2)))
    g = tf.constant(np.random.default_rng(5).normal(size=(1, 5, 2)))

    def f(im, q):
        return tf.reduce_sum(resample.interpolate_bicubic_rowcol(im, q) * g)

    with tf.GradientTape(persistent=True) as tape:
        tape.watch([image, query])
        value = f(image, query)
    d_query, d_image = tape.gradient(value, query).numpy(), tape.gradient(value, image).numpy()
    eps = 1e-6
    for i in range(5):
        for k in range(2):
            step = np.zeros((1, 5, 2))
            step[0, i, k] = eps
            numeric = (f(image, query + step) - f(image, query - step)).numpy() / (2 * eps)
            assert abs(numeric - d_query[0, i, k]) < 1e-5, (i, k, numeric, d_query[0, i, k])
    # Linear in the image: its gradient is the weights, so f(image) == sum(d_image * image).
    np.testing.assert_allclose(np.sum(d_image * image.numpy()), value.numpy(), rtol=1e-10)


def test_the_warp_layer_resamples_bicubic_and_keeps_more_detail(tmp_path):
    rng = np.random.default_rng(6)
    texture = rng.uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    source = rng.uniform(6, 26, (2, 10, 2)).astype(np.float32)
    dest = source + rng.uniform(-1.5, 1.5, source.shape).astype(np.float32)
    bilinear = warp.SplineWarp()([texture, source, dest]).numpy()
    layer = warp.SplineWarp(resampling="bicubic")
    bicubic = layer([texture, source, dest]).numpy()
    for i in range(2):
        want, _ = numpy_warp.warp_to_landmarks(texture[i], source[i], dest[i], resampling="bicubic")
        np.testing.assert_allclose(bicubic[i], want, atol=2e-4)
    sharp = [metrics.laplacian_variance(metrics.luma(im)) for im in bicubic]
    soft = [metrics.laplacian_variance(metrics.luma(im)) for im in bilinear]
    assert min(np.array(sharp) / np.array(soft)) > 1.2, (sharp, soft)
    # Saved and loaded with its resampling.
    inputs = [keras.Input((32, 32, 3)), keras.Input((10, 2)), keras.Input((10, 2))]
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "w.keras")
    loaded = keras.models.load_model(tmp_path / "w.keras")
    np.testing.assert_allclose(loaded([texture, source, dest]).numpy(), bicubic, atol=1e-6)


def test_bad_resampling_is_named():
    with pytest.raises(ValueError, match="resampling"):
        warp.SplineWarp(resampling="lanczos")
    with pytest.raises(ValueError, match="resampling"):
        numpy_warp.dense_image_warp(np.zeros((4, 4, 1)), np.zeros((4, 4, 2)), "nearest")
    with pytest.raises(ValueError, match="warp_resampling"):
        from normface.models import ModelConfig
        ModelConfig(warp_resampling="cubic")
