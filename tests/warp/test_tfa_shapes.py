"""normface.warp against tensorflow-addons' stored behaviour: unknown ranks and the gradient w.r.t.
the source points alone (issue 31).

``tests/fixtures/tfa_warp_shapes`` holds what the reference (TF 2.15.1, tensorflow-addons 0.23.0)
did for each case, made by ``tests/fixtures/make_tfa_shape_fixtures.py`` in a reference
interpreter: the outputs (float64) or the exception. Each case is replayed here with normface under
the same ``tf.function`` input signature. Where normface deliberately does more than the reference
(``DELIBERATE``), the test checks that it runs and agrees with the same call on static shapes.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from normface import warp

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CASES = json.loads((FIXTURES / "tfa_warp_shapes" / "cases.json").read_text())["cases"]
ARRAYS = dict(np.load(FIXTURES / "tfa_warp_shapes" / "arrays.npz"))


def _load_maker():
    """The fixture script's case callables (it imports tensorflow_addons only in its main)."""
    spec = importlib.util.spec_from_file_location("make_tfa_shape_fixtures", FIXTURES / "make_tfa_shape_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


MAKER = _load_maker()

# Where the reference raises ValueError and normface runs, on purpose (docs/warp.md): the point
# dimension of sparse_image_warp's control points is 2 by definition, and interpolate_spline takes
# rank-3 inputs whose last dimension is unknown when traced (issue 19).
DELIBERATE = {"sparse_points_unknown_rank_no_boundary", "spline_unknown_point_dimension",
              "spline_unknown_value_dimension"}
# normface's ValueError names the argument the reference's message describes.
VALUE_ERROR_ARGUMENT = {"spline_all_unknown_rank": "train_points", "spline_train_points_unknown_rank": "train_points",
                        "spline_train_values_unknown_rank": "train_values"}


def case_inputs(case: dict) -> list[tf.Tensor]:
    return [tf.constant(ARRAYS[f"input__{arg['input']}"]) for arg in case["arguments"]]


def traced(case: dict, signature: bool = True):
    """The case's callable on normface, as a tf.function with the case's input signature."""
    fn = MAKER.case_function(warp, case["function"], case["kwargs"])
    if not signature:
        return tf.function(fn)
    spec = [tf.TensorSpec(arg["signature"], tf.float64) for arg in case["arguments"]]
    return tf.function(fn, input_signature=spec)


def assert_static_shape_at_least_the_references(got: tf.TensorShape, want, name: str) -> None:
    """normface's traced shape knows at least what the reference's did (``want``: None = unknown rank)."""
    if want is None:
        return
    assert got.rank == len(want), f"{name}: static shape {got}, the reference's {want}"
    for g, w in zip(got, want):
        assert w is None or g == w, f"{name}: static shape {got}, the reference's {want}"


def test_every_case_is_stored():
    assert set(CASES) == {case[0] for case in MAKER.CASES}
    assert DELIBERATE | set(VALUE_ERROR_ARGUMENT) <= set(CASES)
    for name in DELIBERATE | set(VALUE_ERROR_ARGUMENT):
        assert CASES[name]["outcome"]["error"] == "ValueError", name


@pytest.mark.parametrize("name", [n for n in CASES if "outputs" in CASES[n]["outcome"]])
def test_runs_as_the_reference(name):
    """The reference ran it: normface runs it too, with the same outputs and runtime shapes."""
    case = CASES[name]
    fn = traced(case)
    concrete = fn.get_concrete_function()
    outputs = concrete(*case_inputs(case))
    stored = case["outcome"]["outputs"]
    assert len(outputs) == len(stored)
    for i, (out, static, want) in enumerate(zip(outputs, concrete.structured_outputs, stored)):
        assert list(out.shape) == want["shape"], f"{name} output {i}"
        assert_static_shape_at_least_the_references(static.shape, want["static_shape"], f"{name} output {i}")
        reference = ARRAYS[f"{name}__output{i}"]
        assert np.abs(reference).max() > 0
        np.testing.assert_allclose(out.numpy(), reference, rtol=1e-6, atol=1e-8, err_msg=f"{name} output {i}")


@pytest.mark.parametrize("name", [n for n in CASES if "error" in CASES[n]["outcome"] and n not in DELIBERATE])
def test_fails_as_the_reference(name):
    """The reference raised: normface raises the same exception type at the same stage (tracing
    or running the graph), with the reference's message for its InvalidArgumentErrors and a
    ValueError that names the argument."""
    case = CASES[name]
    want = case["outcome"]
    error = {"ValueError": ValueError, "InvalidArgumentError": tf.errors.InvalidArgumentError}[want["error"]]
    fn = traced(case)
    if want["raised_when"] == "trace":
        with pytest.raises(error) as raised:
            fn.get_concrete_function()
    else:
        concrete = fn.get_concrete_function()
        with pytest.raises(error) as raised:
            concrete(*case_inputs(case))
    message = str(raised.value)
    if error is ValueError:
        assert re.search(rf"\b{VALUE_ERROR_ARGUMENT[name]}\b", message), message
    else:
        assert want["message"].rstrip(".") in message, message


@pytest.mark.parametrize("name", sorted(DELIBERATE))
def test_deliberately_runs_where_the_reference_refuses(name):
    case = CASES[name]
    inputs = case_inputs(case)
    got = traced(case)(*inputs)
    want = traced(case, signature=False)(*inputs)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-12, atol=1e-12)


def test_unknown_rank_image_gradients_equal_the_known_rank_ones():
    """An image of unknown rank changes nothing in the gradients (checked on normface alone, so
    it holds beyond the one stored case)."""
    case = CASES["sparse_grads_unknown_rank"]
    inputs = case_inputs(case)
    unknown = traced(case)(*inputs)
    known = traced(case, signature=False)(*inputs)
    for u, k in zip(unknown, known):
        assert np.abs(k.numpy()).max() > 0
        np.testing.assert_allclose(u.numpy(), k.numpy(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# The gradient w.r.t. the source points alone: only what it needs is computed (normface.warp
# prunes the image gradient and the destination points' part), and it must still be the same
# number as the source points' part of the full gradient.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_source_only_gradient_equals_the_full_gradients_source_part(fused, dtype, rtol):
    rng = np.random.default_rng(31)
    size, batch, landmarks = 40, 3, 12
    src = rng.uniform(0.2 * size, 0.8 * size, (batch, landmarks, 2))
    dst = src + rng.normal(0.0, 0.02 * size, src.shape)
    image = rng.uniform(0.0, 1.0, (batch, size, size, 3))
    image, src, dst = (tf.constant(a.astype(dtype)) for a in (image, src, dst))

    def warped_mean(im, s, d):
        return tf.reduce_mean(warp.sparse_image_warp(im, s, d, interpolation_order=1, num_boundary_points=4)[0])

    @tf.function
    def source_only(im, s, d):
        with tf.GradientTape() as tape:
            tape.watch(s)
            loss = warped_mean(im, s, d)
        return tape.gradient(loss, s)

    @tf.function
    def full(im, s, d):
        with tf.GradientTape() as tape:
            tape.watch([im, s, d])
            loss = warped_mean(im, s, d)
        return tape.gradient(loss, [im, s, d])

    alone = source_only(image, src, dst).numpy()
    g_image, g_src, g_dst = (g.numpy() for g in full(image, src, dst))
    assert alone.dtype == dtype and np.abs(alone).max() > 0
    assert np.abs(g_image).max() > 0 and np.abs(g_dst).max() > 0
    np.testing.assert_allclose(alone, g_src, rtol=rtol, atol=rtol * np.abs(g_src).max())


def test_source_only_gradient_computes_no_other_gradient(fused, monkeypatch):
    """The kernels the source points' gradient does not need (the image's gradient, and d/dc of
    the spline evaluation, which serves the destination points) are poisoned: they fail whenever
    they run. The source-only gradient still runs, unchanged, because the graph prunes them; the
    full gradient, which needs them, fails (so the poison works)."""
    from normface.warp import resample, spline

    rng = np.random.default_rng(32)
    src = rng.uniform(3.0, 9.0, (2, 6, 2))
    image, dst = rng.uniform(0.0, 1.0, (2, 12, 11, 3)), src + rng.normal(0.0, 0.5, src.shape)
    inputs = [tf.constant(a) for a in (image, src, dst)]

    def gradients(watch):
        @tf.function
        def fn(im, s, d):
            xs = {"image": im, "src": s, "dst": d}
            with tf.GradientTape() as tape:
                tape.watch([xs[k] for k in watch])
                loss = tf.reduce_mean(warp.sparse_image_warp(im, s, d, 1, 0.0, 2)[0])
            return tape.gradient(loss, [xs[k] for k in watch])
        return fn

    # A fresh dense_image_warp each time: a tf.function keeps its traces, and an earlier trace
    # would hold the unpoisoned kernels.
    monkeypatch.setattr(resample, "dense_image_warp", tf.function(resample.dense_image_warp.python_function))
    want = gradients(["src"])(*inputs)[0].numpy()

    def poison(x):
        """``x``, by an op that fails when it runs (tracing passes)."""
        if fused:
            # A size known only when it runs: XLA cannot compile it.
            wrong = tf.reshape(x, [tf.size(x) + 1 + tf.cast(tf.reduce_sum(x * 0.0), tf.int32)])
            return tf.reshape(wrong, tf.shape(x))
        # An index past the end: TensorFlow's CPU gather raises (XLA's would clamp it).
        return x + tf.gather(tf.reshape(x, [-1]), tf.size(x) + 5)

    def kernel(fn):
        return tf.function(fn, jit_compile=True, autograph=False) if fused else fn

    bilinear = "_BILINEAR_GRADS_XLA" if fused else "_BILINEAR_GRADS"
    rbf = "_RBF_XLA" if fused else "_RBF_PLAIN"
    grad_image = kernel(lambda image, query, g: poison(image))
    monkeypatch.setattr(resample, bilinear, (grad_image, getattr(resample, bilinear)[1]))
    forward, grad_query, _, grad_weights = getattr(spline, rbf)
    grad_centers = kernel(lambda q, c, w, g, eps, order: poison(c))
    monkeypatch.setattr(spline, rbf, (forward, grad_query, grad_centers, grad_weights))
    monkeypatch.setattr(resample, "dense_image_warp", tf.function(resample.dense_image_warp.python_function))
    got = gradients(["src"])(*inputs)[0].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert np.abs(got).max() > 0
    for watch in (["image"], ["dst"]):
        monkeypatch.setattr(resample, "dense_image_warp", tf.function(resample.dense_image_warp.python_function))
        with pytest.raises((tf.errors.InvalidArgumentError, ValueError)):
            gradients(watch)(*inputs)
