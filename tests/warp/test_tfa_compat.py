"""normface.warp as a drop-in for tensorflow-addons' image warps (issue 19).

Unknown shapes under tf.function, mixed float dtypes, ``interpolate_bilinear`` with both
indexings, the reference's defaults and exception types, the gradient with an unknown value
dimension, and a SpecAugment-style time warp of a 1-channel spectrogram.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from normface import warp

RNG = np.random.default_rng(19)
IMAGE = RNG.uniform(0, 1, (2, 20, 24, 3)).astype(np.float32)
SRC = RNG.uniform(5, 15, (2, 6, 2)).astype(np.float32)
DST = (SRC + RNG.normal(0, 1.0, SRC.shape)).astype(np.float32)
FLOW = RNG.normal(0, 2.0, (2, 20, 24, 2)).astype(np.float32)

# Which image dimensions a traced signature leaves unknown.
UNKNOWN = {
    "batch": [None, 20, 24, 3],
    "height": [2, None, 24, 3],
    "width": [2, 20, None, 3],
    "channels": [2, 20, 24, None],
    "all": [None, None, None, None],
}


# ---------------------------------------------------------------------------------------------
# Unknown shapes under tf.function.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("unknown", list(UNKNOWN))
def test_sparse_image_warp_with_unknown_dims(unknown):
    spec = [
        tf.TensorSpec(UNKNOWN[unknown], tf.float32),
        tf.TensorSpec([None, None, 2], tf.float32),
        tf.TensorSpec([None, None, 2], tf.float32),
    ]
    fn = tf.function(lambda im, s, d: warp.sparse_image_warp(im, s, d, 1, 0.0, 3), input_signature=spec)
    warped, flow = fn(IMAGE, SRC, DST)
    want_warped, want_flow = warp.sparse_image_warp(IMAGE, SRC, DST, 1, 0.0, 3)
    assert warped.shape == IMAGE.shape and flow.shape == IMAGE.shape[:3] + (2,)
    np.testing.assert_allclose(flow.numpy(), want_flow.numpy(), atol=1e-4)
    np.testing.assert_allclose(warped.numpy(), want_warped.numpy(), atol=1e-4)
    # The warp moved something: not a trivially equal identity.
    assert np.abs(flow.numpy()).max() > 0.5


@pytest.mark.parametrize("unknown", list(UNKNOWN))
def test_dense_image_warp_with_unknown_dims(unknown):
    flow_shape = UNKNOWN[unknown][:3] + [2]
    spec = [tf.TensorSpec(UNKNOWN[unknown], tf.float32), tf.TensorSpec(flow_shape, tf.float32)]
    fn = tf.function(warp.dense_image_warp, input_signature=spec)
    out = fn(IMAGE, FLOW).numpy()
    np.testing.assert_allclose(out, warp.dense_image_warp(IMAGE, FLOW).numpy(), atol=1e-6)
    assert np.abs(out - IMAGE).max() > 0.1


@pytest.mark.parametrize("unknown", list(UNKNOWN))
def test_interpolate_bilinear_with_unknown_dims(unknown):
    query = RNG.uniform(-1, 25, (2, 7, 2)).astype(np.float32)
    spec = [tf.TensorSpec(UNKNOWN[unknown], tf.float32), tf.TensorSpec([None, None, None], tf.float32)]
    fn = tf.function(lambda g, q: warp.interpolate_bilinear(g, q), input_signature=spec)
    np.testing.assert_allclose(fn(IMAGE, query).numpy(), warp.interpolate_bilinear(IMAGE, query).numpy(), atol=1e-6)


def test_interpolate_spline_with_all_dims_unknown():
    c = RNG.uniform(0, 10, (2, 9, 2))
    f = RNG.normal(0, 1, (2, 9, 3))
    q = RNG.uniform(0, 10, (2, 5, 2))
    spec = [tf.TensorSpec([None, None, None], tf.float64)] * 3
    fn = tf.function(lambda c, f, q: warp.interpolate_spline(c, f, q, 2, 0.01), input_signature=spec)
    np.testing.assert_allclose(fn(c, f, q).numpy(), warp.interpolate_spline(c, f, q, 2, 0.01).numpy(), rtol=1e-9)


def test_spline_gradient_with_unknown_value_dimension():
    """The gradient of interpolate_spline when the value dimension k is unknown at trace time
    (it crashed with "'NoneType' object cannot be interpreted as an integer")."""
    c = tf.constant(RNG.uniform(0, 10, (2, 9, 2)))
    f = tf.constant(RNG.normal(0, 1, (2, 9, 3)))
    q = tf.constant(RNG.uniform(0, 10, (2, 5, 2)))

    def grads(c, f, q):
        with tf.GradientTape() as tape:
            tape.watch([c, f, q])
            loss = tf.reduce_sum(tf.sin(warp.interpolate_spline(c, f, q, 1, 0.0)))
        return tape.gradient(loss, [c, f, q])

    spec = [tf.TensorSpec([None, None, None], tf.float64)] * 3
    unknown = tf.function(grads, input_signature=spec)(c, f, q)
    known = tf.function(grads)(c, f, q)
    for got, want in zip(unknown, known):
        assert np.abs(want.numpy()).max() > 0
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Mixed float dtypes, as the reference casts them.
# ---------------------------------------------------------------------------------------------
def test_dense_image_warp_mixed_dtypes():
    """float32 image, float64 flow: the query points are formed in float64 (the reference's
    convention) and the result is float32."""
    flow64 = FLOW.astype(np.float64) + 1e-3
    out = warp.dense_image_warp(IMAGE, flow64)
    assert out.dtype == tf.float32
    want = warp.dense_image_warp(IMAGE.astype(np.float64), flow64).numpy()
    np.testing.assert_allclose(out.numpy(), want, atol=1e-6)
    # And the other way round: float64 image, float32 flow -> float64.
    out64 = warp.dense_image_warp(IMAGE.astype(np.float64), FLOW)
    assert out64.dtype == tf.float64
    np.testing.assert_allclose(out64.numpy(), warp.dense_image_warp(IMAGE, FLOW).numpy(), atol=1e-6)


def test_dense_image_warp_mixed_dtype_gradients():
    image = tf.constant(IMAGE)
    flow = tf.constant(FLOW.astype(np.float64) + 0.25)
    with tf.GradientTape() as tape:
        tape.watch([image, flow])
        loss = tf.reduce_sum(tf.square(warp.dense_image_warp(image, flow)))
    g_image, g_flow = tape.gradient(loss, [image, flow])
    assert g_image.dtype == tf.float32 and g_flow.dtype == tf.float64
    assert np.abs(g_image.numpy()).max() > 0 and np.abs(g_flow.numpy()).max() > 0


def test_interpolate_bilinear_mixed_dtypes():
    query = np.array([[[0.5, 0.25]]])  # float64 query, float32 grid
    out = warp.interpolate_bilinear(HAND_GRID, query)
    assert out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy()[0, 0, 0], 10.625)


# ---------------------------------------------------------------------------------------------
# interpolate_bilinear against hand-computed values.
# ---------------------------------------------------------------------------------------------
HAND_GRID = np.array([[1, 2, 4, 8], [16, 32, 64, 128], [0, 1, 0, 1]], np.float32)[None, :, :, None]
# (row, col) -> value, by hand: bilinear between the four neighbours, border-clamped.
HAND_CASES = [
    ((0.5, 0.25), 10.625),  # top 1.25, bottom 20 -> 1.25 + 0.5 * 18.75
    ((1.75, 2.5), 24.375),  # top 96, bottom 0.5 -> 96 + 0.75 * (0.5 - 96)
    ((2.0, 3.0), 1.0),  # the last pixel
    ((-1.0, 5.0), 8.0),  # clamped to row 0, column 3
    ((1.0, 1.0), 32.0),  # a pixel centre
]


@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_interpolate_bilinear_hand_values(indexing):
    rowcol = np.array([[p for p, _ in HAND_CASES]], np.float32)
    query = rowcol if indexing == "ij" else rowcol[..., ::-1].copy()
    out = warp.interpolate_bilinear(HAND_GRID, query, indexing=indexing).numpy()
    assert out.shape == (1, len(HAND_CASES), 1)
    np.testing.assert_allclose(out[0, :, 0], [v for _, v in HAND_CASES], rtol=1e-6)


def test_interpolate_bilinear_indexings_differ():
    """(a, b) means (row, col) in "ij" and (x=col, y=row) in "xy": not the same sample."""
    query = np.array([[[0.5, 2.0]]], np.float32)
    ij = warp.interpolate_bilinear(HAND_GRID, query, "ij").numpy()[0, 0, 0]
    xy = warp.interpolate_bilinear(HAND_GRID, query, "xy").numpy()[0, 0, 0]
    assert ij == pytest.approx(0.5 * (4 + 64))
    # xy: column 0.5, row 2 (the last row): halfway between 0 and 1.
    assert xy == pytest.approx(0.5)
    assert ij != xy


# ---------------------------------------------------------------------------------------------
# Defaults, tf.function-ness, ranks.
# ---------------------------------------------------------------------------------------------
def test_sparse_image_warp_default_order_is_the_references():
    default = warp.sparse_image_warp(IMAGE, SRC, DST, num_boundary_points=2)[1].numpy()
    order2 = warp.sparse_image_warp(IMAGE, SRC, DST, 2, num_boundary_points=2)[1].numpy()
    order1 = warp.sparse_image_warp(IMAGE, SRC, DST, 1, num_boundary_points=2)[1].numpy()
    np.testing.assert_allclose(default, order2)
    assert np.abs(default - order1).max() > 1e-3
    # The project's own layer keeps the paper's order 1.
    assert warp.SplineWarp().interpolation_order == 1


def test_dense_image_warp_and_interpolate_bilinear_are_tf_functions():
    spec = [tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([None, None, None, 2], tf.float32)]
    concrete = warp.dense_image_warp.get_concrete_function(*spec)
    assert concrete.structured_outputs.shape.rank == 4
    np.testing.assert_allclose(concrete(tf.constant(IMAGE), tf.constant(FLOW)).numpy(),
                               warp.dense_image_warp(IMAGE, FLOW).numpy(), atol=1e-6)
    concrete = warp.interpolate_bilinear.get_concrete_function(spec[0], tf.TensorSpec([None, None, 2], tf.float32))
    assert concrete.structured_outputs.shape.rank == 3


@pytest.mark.parametrize("rank", [2, 3])
def test_sparse_image_warp_accepts_unbatched_images(rank):
    image = IMAGE[:1] if rank == 3 else IMAGE[:1, ..., :1]
    want_warped, want_flow = warp.sparse_image_warp(image, SRC[:1], DST[:1], 1, 0.0, 2)
    squeeze = image[0] if rank == 3 else image[0, ..., 0]
    warped, flow = warp.sparse_image_warp(squeeze, SRC[:1], DST[:1], 1, 0.0, 2)
    assert warped.shape == squeeze.shape and flow.shape == want_flow.shape
    want = want_warped.numpy()[0] if rank == 3 else want_warped.numpy()[0, ..., 0]
    np.testing.assert_allclose(warped.numpy(), want)


# ---------------------------------------------------------------------------------------------
# The reference's exception types and messages.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: warp.dense_image_warp(np.zeros((1, 1, 8, 3), np.float32), np.zeros((1, 1, 8, 2), np.float32)),
         "Grid height must be at least 2."),
        (lambda: warp.dense_image_warp(np.zeros((1, 8, 1, 3), np.float32), np.zeros((1, 8, 1, 2), np.float32)),
         "Grid width must be at least 2."),
        (lambda: warp.sparse_image_warp(np.zeros((1, 8, 1, 3), np.float32), SRC[:1], DST[:1], 1),
         "Grid width must be at least 2."),
        (lambda: warp.interpolate_bilinear(np.zeros((1, 8, 1, 3), np.float32), np.zeros((1, 4, 2), np.float32)),
         "Grid width must be at least 2."),
        (lambda: warp.interpolate_bilinear(np.zeros((8, 8, 3), np.float32), np.zeros((1, 4, 2), np.float32)),
         "Grid must be 4D Tensor"),
        (lambda: warp.interpolate_bilinear(IMAGE, np.zeros((2, 4), np.float32)), "Query points must be 3 dimensional."),
        (lambda: warp.interpolate_bilinear(IMAGE, np.zeros((2, 4, 3), np.float32)),
         "Query points last dimension must be 2."),
    ],
)
def test_reference_invalid_argument_errors(call, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message.replace(".", r"\.")):
        call()


def test_too_small_image_fails_when_the_graph_runs():
    """Height unknown at trace time: the same InvalidArgumentError, raised when it runs."""
    spec = [tf.TensorSpec([None, None, None, None], tf.float32)] * 2
    fn = tf.function(warp.dense_image_warp, input_signature=spec)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Grid height must be at least 2\."):
        fn(np.zeros((1, 1, 8, 3), np.float32), np.zeros((1, 1, 8, 2), np.float32))


def test_interpolate_bilinear_bad_indexing_is_a_value_error():
    with pytest.raises(ValueError, match="Indexing mode must be 'ij' or 'xy'"):
        warp.interpolate_bilinear(IMAGE, np.zeros((2, 4, 2), np.float32), indexing="yx")


# ---------------------------------------------------------------------------------------------
# SpecAugment's time warp: [batch, time, freq, 1] spectrograms of any length.
# ---------------------------------------------------------------------------------------------
def spec_augment_time_warp(spectrogram: tf.Tensor, center: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    """SpecAugment (Park et al. 2019) time warping, as written against tensorflow-addons: the
    point at time ``center`` on the middle frequency line moves to ``center + shift``; 2 boundary
    points per edge hold the borders; default spline order (2)."""
    freq = tf.cast(tf.shape(spectrogram)[2], tf.float32)
    mid = tf.floor(freq / 2.0)
    src = tf.reshape(tf.stack([center, mid]), [1, 1, 2])
    dst = tf.reshape(tf.stack([center + shift, mid]), [1, 1, 2])
    warped, _ = warp.sparse_image_warp(spectrogram, src, dst, num_boundary_points=2)
    return warped


def test_spectrogram_time_warp_with_unknown_length():
    time_steps, freq = 50, 16
    t = np.arange(time_steps, dtype=np.float32)[:, None]
    f = np.arange(freq, dtype=np.float32)[None, :]
    spectrogram = (np.sin(0.3 * t) * np.cos(0.2 * f) + 0.01 * t)[None, :, :, None].astype(np.float32)
    spec = [tf.TensorSpec([None, None, None, 1], tf.float32), tf.TensorSpec([], tf.float32),
            tf.TensorSpec([], tf.float32)]
    fn = tf.function(spec_augment_time_warp, input_signature=spec)
    warped = fn(spectrogram, tf.constant(20.0), tf.constant(5.0)).numpy()
    assert warped.shape == spectrogram.shape
    # The moved point: the frame at time 25 now holds what time 20 held (middle frequency line).
    np.testing.assert_allclose(warped[0, 25, freq // 2, 0], spectrogram[0, 20, freq // 2, 0], atol=1e-4)
    # The corners stay (zero-flow boundary points).
    for row, col in ((0, 0), (0, freq - 1), (time_steps - 1, 0), (time_steps - 1, freq - 1)):
        np.testing.assert_allclose(warped[0, row, col, 0], spectrogram[0, row, col, 0], atol=1e-4)
    # It is a real warp, and a different length runs through the same traced function.
    assert np.abs(warped - spectrogram).max() > 0.05
    longer = np.tile(spectrogram, (1, 2, 1, 1))
    assert fn(longer, tf.constant(40.0), tf.constant(-6.0)).shape == longer.shape
