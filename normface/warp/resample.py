"""Bilinear resampling: ``resample_bilinear`` in (x, y) and tfa's ``dense_image_warp`` in (row, col).

Samples are border-clamped, as in the reference; the bilinear kernel and its two gradients (image,
query points: separate, so a graph computes only the one it uses) are XLA-fused when
:func:`normface.warp.spline.fused_kernels_enabled`.

Also bicubic resampling (:func:`interpolate_bicubic_rowcol`, :func:`warp_with_flow`), normface's
own: a bilinear sample between pixels averages its neighbours, and over a warp's fractional
offsets that low-pass filter takes about 40% of a decoded texture's face-box Laplacian variance
(issue 28); a Catmull-Rom cubic keeps most of it.
"""

from __future__ import annotations

import tensorflow as tf

from normface.warp.common import (
    as_float_tensor,
    assert_grid_size,
    check_finite,
    check_rank,
    check_same_dim,
    xy_to_rowcol,
)
from normface.warp.numpy_warp import CUBIC_TAPS, check_resampling
from normface.warp.spline import fused_kernels_enabled


# ----------------------------------------------------------------------------------------------
# Bilinear resampling.
# ----------------------------------------------------------------------------------------------
def interpolate_bilinear_rowcol(image: tf.Tensor, query: tf.Tensor) -> tf.Tensor:
    """Samples ``image`` ``[b, h, w, c]`` at ``query`` ``[b, m, 2]`` (row, col) -> ``[b, m, c]``.

    Differentiable in both; each gradient is its own kernel (:func:`_bilinear_grad_image`,
    :func:`_bilinear_grad_query`), so a graph that needs one never computes the other.
    """
    # XLA turns the backward scatter into one fast loop (5x faster than TF's CPU segment sum).
    fused = fused_kernels_enabled()
    forward = _bilinear_xla if fused else _bilinear
    grad_image, grad_query = _BILINEAR_GRADS_XLA if fused else _BILINEAR_GRADS

    @tf.custom_gradient
    def sample(image, query):
        def grad(g):
            return grad_image(image, query, g), grad_query(image, query, g)

        return forward(image, query), grad

    return sample(image, query)


def _bilinear(image: tf.Tensor, query: tf.Tensor) -> tf.Tensor:
    """Samples ``image`` ``[b, h, w, c]`` at ``query`` ``[b, m, 2]`` (row, col) -> ``[b, m, c]``.

    Border-clamped exactly as the reference: the top-left corner index is clamped to
    ``[0, size - 2]`` and the fraction to ``[0, 1]``. The four neighbours come from one gather of a
    ``[b, h-1, w-1, 4c]`` stack of shifted views, so the backward pass is one segment sum.
    """
    with tf.name_scope("interpolate_bilinear"):
        shape = tf.shape(image)
        batch, height, width = shape[0], shape[1], shape[2]
        channels = tf.shape(image)[3]
        m = tf.shape(query)[1]
        qdtype = query.dtype
        rows, cols = query[..., 0], query[..., 1]

        def floor_and_alpha(q, size):
            max_floor = tf.cast(size - 2, qdtype)
            floor = tf.minimum(tf.maximum(tf.zeros([], qdtype), tf.floor(q)), max_floor)
            alpha = tf.cast(q - floor, image.dtype)
            alpha = tf.minimum(tf.maximum(tf.zeros([], image.dtype), alpha), tf.ones([], image.dtype))
            return tf.cast(floor, tf.int32), alpha

        r0, alpha_r = floor_and_alpha(rows, height)
        c0, alpha_c = floor_and_alpha(cols, width)
        stack = tf.concat(
            [image[:, :-1, :-1], image[:, :-1, 1:], image[:, 1:, :-1], image[:, 1:, 1:]], axis=-1
        )
        flat = tf.reshape(stack, [-1, 4 * channels])
        base = tf.range(batch)[:, None] * ((height - 1) * (width - 1))
        index = base + r0 * (width - 1) + c0
        corners = tf.reshape(tf.gather(flat, tf.reshape(index, [-1])), [batch, m, 4, channels])
        top_left, top_right = corners[:, :, 0], corners[:, :, 1]
        bottom_left, bottom_right = corners[:, :, 2], corners[:, :, 3]
        alpha_c = alpha_c[..., None]
        alpha_r = alpha_r[..., None]
        interp_top = alpha_c * (top_right - top_left) + top_left
        interp_bottom = alpha_c * (bottom_right - bottom_left) + bottom_left
        return alpha_r * (interp_bottom - interp_top) + interp_top


_bilinear_xla = tf.function(_bilinear, jit_compile=True, autograph=False)


# The gradients of _bilinear, by autodiff, one function per input: inside a graph TensorFlow
# prunes the ops of a gradient nobody uses, but not part of one compiled kernel (issue 31: the
# gradient w.r.t. the control points alone needs no scatter into the image). Each recomputes the
# forward pass it needs (the query gradient re-gathers the four neighbours; the image gradient
# only the indices and fractions) instead of storing it.
def _bilinear_grad_image(image: tf.Tensor, query: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    """d/dimage of ``sum(_bilinear(image, query) * g)``: ``[b, h, w, c]`` in the image's dtype."""
    with tf.GradientTape() as tape:
        tape.watch(image)
        out = _bilinear(image, query)
    return tape.gradient(out, image, output_gradients=g)


def _bilinear_grad_query(image: tf.Tensor, query: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    """d/dquery of ``sum(_bilinear(image, query) * g)``: ``[b, m, 2]`` in the query's dtype."""
    with tf.GradientTape() as tape:
        tape.watch(query)
        out = _bilinear(image, query)
    return tape.gradient(out, query, output_gradients=g)


_BILINEAR_GRADS = (_bilinear_grad_image, _bilinear_grad_query)
_BILINEAR_GRADS_XLA = tuple(tf.function(fn, jit_compile=True, autograph=False) for fn in _BILINEAR_GRADS)


# ----------------------------------------------------------------------------------------------
# Bicubic resampling.
# ----------------------------------------------------------------------------------------------
def cubic_weights(fraction: tf.Tensor) -> tf.Tensor:
    """Catmull-Rom (Keys, a = -1/2) weights ``[..., 4]`` of the taps at :data:`CUBIC_TAPS` for
    ``fraction`` ``[...]`` in [0, 1): they sum to 1, give the pixel itself at 0, and reproduce
    quadratics exactly (a = -3/4, OpenCV's, does not)."""
    f = fraction
    f2, f3 = f * f, f * f * f
    return 0.5 * tf.stack([-f3 + 2 * f2 - f, 3 * f3 - 5 * f2 + 2, -3 * f3 + 4 * f2 + f, f3 - f2], axis=-1)


def _bicubic(image: tf.Tensor, query: tf.Tensor) -> tf.Tensor:
    """Samples ``image`` ``[b, h, w, c]`` at ``query`` ``[b, m, 2]`` (row, col) -> ``[b, m, c]``
    with :func:`cubic_weights`; taps beyond the border repeat the edge pixel (a query outside the
    image takes the nearest border value, as the bilinear sampler). Differentiable in both
    (autodiff: the floor has no gradient, the fraction has)."""
    with tf.name_scope("interpolate_bicubic"):
        shape = tf.shape(image)
        batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
        m = tf.shape(query)[1]
        qdtype = query.dtype
        taps = tf.constant(CUBIC_TAPS, tf.int32)

        def indices_and_weights(q, size):
            # The floor clamped to [-2, size] first: every tap is then an edge or inner pixel, and a
            # query far outside casts to int32 safely.
            floor = tf.clip_by_value(tf.floor(q), -2.0, tf.cast(size, qdtype))
            fraction = tf.cast(q - floor, image.dtype)
            fraction = tf.clip_by_value(fraction, tf.zeros([], image.dtype), tf.ones([], image.dtype))
            index = tf.clip_by_value(tf.cast(floor, tf.int32)[..., None] + taps, 0, size - 1)
            return index, cubic_weights(fraction)

        rows, row_weights = indices_and_weights(query[..., 0], height)  # [b, m, 4] each
        cols, col_weights = indices_and_weights(query[..., 1], width)
        index = rows[..., :, None] * width + cols[..., None, :]  # [b, m, 4, 4]
        flat = tf.reshape(image, [batch, height * width, channels])
        values = tf.gather(flat, tf.reshape(index, [batch, m * 16]), batch_dims=1)
        values = tf.reshape(values, [batch, m, 4, 4, channels])
        across = tf.reduce_sum(values * col_weights[:, :, None, :, None], axis=3)  # [b, m, 4, c]
        return tf.reduce_sum(across * row_weights[..., None], axis=2)


_bicubic_xla = tf.function(_bicubic, jit_compile=True, autograph=False)


def interpolate_bicubic_rowcol(image: tf.Tensor, query: tf.Tensor) -> tf.Tensor:
    """:func:`interpolate_bilinear_rowcol` with Catmull-Rom cubic weights over 4x4 pixels
    (:func:`_bicubic`); XLA-compiled (forward and backward) when fused kernels are enabled."""
    return (_bicubic_xla if fused_kernels_enabled() else _bicubic)(image, query)


def warp_with_flow(image: tf.Tensor, flow: tf.Tensor, resampling: str = "bilinear") -> tf.Tensor:
    """``out[i, j] = image[(i, j) - flow[i, j]]`` (``[b, h, w, c]`` image, ``[b, h, w, 2]``
    (row, col) flow), sampled ``"bilinear"`` (:func:`dense_image_warp`, tfa's) or ``"bicubic"``."""
    if check_resampling(resampling) == "bilinear":
        return dense_image_warp(image, flow)
    shape = tf.shape(image)
    batch, height, width = shape[0], shape[1], shape[2]
    query = tf.reshape(pixel_grid(height, width, flow.dtype)[None] - flow, [batch, height * width, 2])
    out = interpolate_bicubic_rowcol(image, query)
    return tf.reshape(out, shape)


def check_image(image: tf.Tensor, name: str = "image") -> tf.Tensor:
    """Checks a ``[batch, height, width, channels]`` image: rank 4 (``ValueError``), at least 2x2
    (tensorflow-addons' ``InvalidArgumentError``), finite. Any dimension may be unknown."""
    check_rank(image, 4, name, "[batch, height, width, channels]")
    image = assert_grid_size(image, name)
    return check_finite(image, name)


def resample_bilinear(image, coords_xy, name: str = "resample_bilinear") -> tf.Tensor:
    """Samples an image bilinearly at (x, y) pixel positions, border-clamped and differentiable.

    Args:
      image: ``[batch, height, width, channels]`` float image (height, width >= 2).
      coords_xy: ``[batch, ..., 2]`` (x, y) pixel positions (pixel centres at integers).
      name: name scope.

    Returns:
      ``[batch, ..., channels]`` samples, differentiable in ``image`` and ``coords_xy``.
    """
    with tf.name_scope(name):
        image = as_float_tensor(image, "image")
        coords = as_float_tensor(coords_xy, "coords_xy")
        if coords.shape.rank is not None and coords.shape.rank < 2:
            raise ValueError(f"coords_xy must have shape [batch, ..., 2], got {coords.shape}")
        if coords.shape[-1] is not None and coords.shape[-1] != 2:
            raise ValueError(f"coords_xy must end in 2 (x, y), got shape {coords.shape}")
        check_same_dim(image, coords, 0, "batch size", "image", "coords_xy")
        image = check_image(image)
        coords = check_finite(coords, "coords_xy")
        out_shape = tf.concat([tf.shape(coords)[:-1], tf.shape(image)[-1:]], axis=0)
        flat = tf.reshape(xy_to_rowcol(coords), [tf.shape(coords)[0], -1, 2])
        return tf.reshape(interpolate_bilinear_rowcol(image, flat), out_shape)


def pixel_grid(height, width, dtype) -> tf.Tensor:
    """``[height, width, 2]`` (row, col) coordinates of every pixel."""
    rows, cols = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
    return tf.cast(tf.stack([rows, cols], axis=-1), dtype)


@tf.function(autograph=False)
def interpolate_bilinear(grid, query_points, indexing: str = "ij", name: str | None = None) -> tf.Tensor:
    """tensorflow-addons' ``interpolate_bilinear``: samples ``grid`` at ``query_points``.

    A ``tf.function``, as the reference's. Queries outside the grid take the nearest border value.

    Args:
      grid: ``[batch, height, width, channels]`` float grid (height, width >= 2); any dimension
        may be unknown when traced.
      query_points: ``[batch, n, 2]`` float points: (row, col) for ``indexing="ij"``, (x, y) =
        (col, row) for ``indexing="xy"``. May be another float dtype than ``grid`` (the fractions
        are computed in its dtype, then cast to the grid's, as the reference does).
      indexing: ``"ij"`` or ``"xy"``.
      name: name scope.

    Returns:
      ``[batch, n, channels]`` samples in ``grid``'s dtype, differentiable in both inputs.

    Raises:
      ValueError: ``indexing`` is neither ``"ij"`` nor ``"xy"``, or a non-float input.
      InvalidArgumentError: the reference's shape errors ("Grid must be 4D Tensor", "Grid height
        must be at least 2.", "Grid width must be at least 2.", "Query points must be 3
        dimensional.", "Query points last dimension must be 2."), at trace time when static.
    """
    if indexing not in ("ij", "xy"):
        raise ValueError(f"Indexing mode must be 'ij' or 'xy', got indexing={indexing!r}")
    with tf.name_scope(name or "interpolate_bilinear"):
        grid = as_float_tensor(grid, "grid")
        query_points = as_float_tensor(query_points, "query_points")
        # The reference's checks, with its messages: asserts raise InvalidArgumentError (at trace
        # time when the value is static).
        grid_rank = grid.shape.rank if grid.shape.rank is not None else tf.rank(grid)
        query_rank = query_points.shape.rank if query_points.shape.rank is not None else tf.rank(query_points)
        checks = [
            tf.debugging.assert_equal(grid_rank, 4, message="Grid must be 4D Tensor (grid)"),
            tf.debugging.assert_equal(query_rank, 3, message="Query points must be 3 dimensional. (query_points)"),
        ]
        last = query_points.shape[-1] if query_points.shape.rank is not None else None
        last = tf.shape(query_points)[-1] if last is None else last
        checks.append(tf.debugging.assert_equal(last, 2, message="Query points last dimension must be 2. (query_points)"))
        with tf.control_dependencies([c for c in checks if c is not None]):
            grid = assert_grid_size(grid, "grid")
            query = query_points if indexing == "ij" else xy_to_rowcol(query_points)
            return interpolate_bilinear_rowcol(grid, query)


@tf.function(autograph=False)
def dense_image_warp(image, flow, name: str | None = None) -> tf.Tensor:
    """Warps ``image`` by a dense flow: ``out[b, i, j] = image[b, (i, j) - flow[b, i, j]]``.

    tensorflow-addons' ``dense_image_warp``, and like it a ``tf.function``.

    Args:
      image: ``[batch, height, width, channels]`` float image (height, width >= 2); any
        dimension may be unknown when traced.
      flow: ``[batch, height, width, 2]`` float flow in (row, col) pixels (reference convention),
        of the image's or another float dtype (the query points are formed in the flow's dtype,
        as in the reference).
      name: name scope.

    Returns:
      ``[batch, height, width, channels]`` bilinearly resampled, border-clamped image, in the
      image's dtype.

    Raises:
      ValueError: wrong ranks, mismatched sizes, non-float inputs (at trace time).
      InvalidArgumentError: an image smaller than 2x2 ("Grid height/width must be at least 2.",
        as the reference), or NaN/Inf in either input.
    """
    with tf.name_scope(name or "dense_image_warp"):
        image = as_float_tensor(image, "image")
        flow = as_float_tensor(flow, "flow")
        check_rank(flow, 4, "flow", "[batch, height, width, 2]")
        for axis, what in ((0, "batch size"), (1, "height"), (2, "width")):
            check_same_dim(image, flow, axis, what, "image", "flow")
        if flow.shape.rank is not None and flow.shape[-1] is not None and flow.shape[-1] != 2:
            raise ValueError(f"flow must have 2 channels (row, col), got shape {flow.shape}")
        image = check_image(image)
        flow = check_finite(flow, "flow")
        shape = tf.shape(image)
        # The static checks above miss sizes unknown at trace time, and a call whose shapes a
        # more general earlier trace covers reuses that trace: check again when the graph runs.
        with tf.control_dependencies([
            tf.debugging.assert_equal(shape[:3], tf.shape(flow)[:3],
                                      message="image and flow must have the same batch size, height and width"),
            tf.debugging.assert_equal(tf.shape(flow)[3], 2, message="flow must have 2 channels (row, col)"),
        ]):
            flow = tf.identity(flow)
        batch, height, width = shape[0], shape[1], shape[2]
        query = pixel_grid(height, width, flow.dtype)[None] - flow
        out = interpolate_bilinear_rowcol(image, tf.reshape(query, [batch, -1, 2]))
        out = tf.reshape(out, shape)
        # Keep the static shape the inputs give (reshape by a dynamic shape forgets it), rank 4
        # even for inputs traced with an unknown rank (as the reference's).
        static = tf.TensorShape([None] * 4).merge_with(image.shape)
        if flow.shape.rank is not None:
            static = static.merge_with(flow.shape[:-1].concatenate([None]))
        out.set_shape(static)
        return out
