"""Differentiable polyharmonic-spline image warp (Cole et al. 2017, Sec. 4, Algorithm 1).

The decoder predicts a registered texture and 68 landmarks; this module moves the texture so the
mean landmarks land on the predicted ones. A dense flow field is interpolated from the sparse
landmark displacements with a polyharmonic spline, then the image is resampled bilinearly at
``grid - flow``. Every step is differentiable in the image, the control points and the values.

It replaces ``tensorflow_addons.image`` (end-of-life, fails to import on TF >= 2.16) and keeps that
reference's conventions for the three ops it shared, so its golden outputs check ours:

- ``interpolate_spline``: fit at ``train_points`` ``[b, n, d]``, evaluate at ``query_points``.
- ``sparse_image_warp``: points are **(row, col)** pixels; the spline is fitted at the destination
  points with values ``dest - source``; optional zero-flow boundary points.
- ``dense_image_warp``: samples ``image`` at ``grid - flow`` (flow in (row, col)), border-clamped.

Coordinates: those three speak (row, col) for compatibility. The rest of normface speaks (x, y);
:func:`warp_to_landmarks`, :func:`resample_bilinear` and :class:`SplineWarp` take (x, y) and convert
in exactly one place, :func:`xy_to_rowcol`.

Beyond the reference, for accuracy and speed:

- Distances are explicit coordinate differences, not ``|q|^2 + |c|^2 - 2 q.c`` (whose cancellation
  costs ~0.6 px of float32 flow at 224x224).
- Control points are centred and scaled to unit size before the solve. Polyharmonic splines are
  invariant to translation and (for odd orders and order 2, with the regularization weight scaled
  to match) to scale, so the interpolant is mathematically unchanged; the float32 system is far
  better conditioned.
- The kernel evaluation ``phi(|q - c|) @ w`` has a hand-written gradient that needs two batched
  matmuls instead of autodiff through every ``[b, m, n]`` intermediate.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import keras

# Clamp of the squared distance inside phi: keeps sqrt/log and their gradients finite at r = 0.
# Same value as the reference, so results at control points agree with its golden outputs.
EPSILON = 1e-10
# Orders for which the spline is exactly scale-invariant (so the unit rescaling is safe).
_SCALE_INVARIANT_EVEN_ORDERS = (2,)


# ----------------------------------------------------------------------------------------------
# Coordinates: the one place (x, y) and (row, col) meet.
# ----------------------------------------------------------------------------------------------
def xy_to_rowcol(points: tf.Tensor) -> tf.Tensor:
    """Converts ``[..., 2]`` (x, y) pixel points to (row, col), and back (the map is its own inverse)."""
    return tf.reverse(points, axis=[-1])


rowcol_to_xy = xy_to_rowcol


# ----------------------------------------------------------------------------------------------
# Input checks. Static problems raise ValueError at trace time; value problems (NaN, Inf) raise
# ValueError eagerly and InvalidArgumentError when run inside a graph.
# ----------------------------------------------------------------------------------------------
def _check_rank(x: tf.Tensor, rank: int, name: str, shape_doc: str) -> None:
    if x.shape.rank is not None and x.shape.rank != rank:
        raise ValueError(f"{name} must have rank {rank} {shape_doc}, got shape {x.shape}")


def _check_same_dim(a: tf.Tensor, b: tf.Tensor, axis: int, what: str, name_a: str, name_b: str) -> None:
    da, db = a.shape[axis], b.shape[axis]
    if da is not None and db is not None and da != db:
        raise ValueError(f"{what} mismatch: {name_a} has {da}, {name_b} has {db}")


def _check_finite(x: tf.Tensor, name: str) -> tf.Tensor:
    if tf.executing_eagerly():
        if not bool(tf.reduce_all(tf.math.is_finite(x))):
            raise ValueError(f"{name} contains NaN or Inf values")
        return x
    # Inside tf.function: a graph assertion (a no-op under XLA, which drops Assert ops).
    return tf.debugging.assert_all_finite(x, f"{name} contains NaN or Inf values")


def _check_spline_params(order, regularization_weight: float, order_name: str = "order") -> int:
    """Validates the spline's order and smoothing weight; returns the order as an int."""
    if int(order) != order or order < 1:
        raise ValueError(f"{order_name} must be a positive integer, got {order}")
    if regularization_weight < 0:
        raise ValueError(f"regularization_weight must be >= 0, got {regularization_weight}")
    return int(order)


def _as_float_tensor(x, name: str, dtype=None) -> tf.Tensor:
    x = tf.convert_to_tensor(x, dtype=dtype, name=name)
    if not x.dtype.is_floating:
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype.name}")
    return x


# ----------------------------------------------------------------------------------------------
# Polyharmonic spline interpolation.
# ----------------------------------------------------------------------------------------------
def _phi(r2: tf.Tensor, order: int, eps: tf.Tensor) -> tf.Tensor:
    """Polyharmonic radial basis of the squared distance ``r2``: r^k (k odd), r^k log r (k even).

    Only the root and the logarithm see ``r2`` clamped below at ``eps`` (as in the reference), so
    even orders are exactly 0 at r = 0: the order-2 system is ill-conditioned enough that a
    1e-9 change on its diagonal moves the result by 1e-5.
    """
    clamped = tf.maximum(r2, eps)
    if order == 1:
        return tf.sqrt(clamped)
    if order == 3:
        return clamped * tf.sqrt(clamped)
    if order % 2 == 1:
        return tf.pow(clamped, 0.5 * order)
    power = r2 if order == 2 else tf.pow(r2, 0.5 * order)
    return 0.5 * power * tf.math.log(clamped)


def _dphi_dr2(r2: tf.Tensor, order: int, eps: tf.Tensor) -> tf.Tensor:
    """d phi / d r2 of :func:`_phi`, with the clamp's zero derivative below ``eps``."""
    active = r2 >= eps
    clamped = tf.maximum(r2, eps)
    half = 0.5 * order
    if order % 2 == 1:
        # Roots instead of pow for the common orders: pow is exp(log) and costs 3x here.
        if order == 1:
            d = 0.5 * tf.math.rsqrt(clamped)
        elif order == 3:
            d = 1.5 * tf.sqrt(clamped)
        else:
            d = half * tf.pow(clamped, half - 1.0)
        return tf.where(active, d, tf.zeros_like(d))
    power = tf.ones_like(r2) if order == 2 else tf.pow(r2, half - 1.0)
    log_term = 0.5 * half * power * tf.math.log(clamped)
    # d/dr2 of the log factor is 1/r2 where unclamped: 0.5 * r2^half / r2 = 0.5 * r2^(half - 1).
    return log_term + tf.where(active, 0.5 * power, tf.zeros_like(power))


def _squared_distances(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """``[b, m, n]`` squared distances between ``x`` ``[b, m, d]`` and ``y`` ``[b, n, d]``.

    Summed over explicit per-coordinate differences: exact near coincident points, unlike the
    ``|x|^2 + |y|^2 - 2 x.y`` expansion, and no ``[b, m, n, d]`` temporary.
    """
    d = x.shape[-1]
    if d is None:
        diff = x[:, :, None, :] - y[:, None, :, :]
        return tf.reduce_sum(tf.square(diff), axis=-1)
    total = None
    for i in range(d):
        term = tf.square(x[:, :, i, None] - y[:, None, :, i])
        total = term if total is None else total + term
    return total


def _rbf_forward(q, c, w, eps, order):
    r2 = _squared_distances(q, c)
    return tf.matmul(_phi(r2, order, eps), w)


def _rbf_backward(q, c, w, g, eps, order, need_query_grad):
    """Gradients of ``phi(|q - c|) @ w`` given the output gradient ``g`` ``[b, m, k]``.

    With ``s = (g @ w^T) * 2 phi'(r2)`` (``[b, m, n]``): d/dw = phi^T @ g,
    d/dc = c * sum_m s - s^T @ q, d/dq = q * sum_n s - s @ c.
    """
    r2 = _squared_distances(q, c)
    kernel = _phi(r2, order, eps)
    if order == 1:
        # 2 phi'(r2) = 1 / r: reuse the kernel (inside the clamp this is still the bounded
        # derivative of |q - c|, since |q - c| < sqrt(eps) there).
        factor = 1.0 / kernel
    else:
        factor = 2.0 * _dphi_dr2(r2, order, eps)
    # g @ w^T has an inner dimension of 1-3: as broadcast products it fuses with the rest.
    gw = None
    for k in range(w.shape[-1]):
        term = g[:, :, k, None] * w[:, None, :, k]
        gw = term if gw is None else gw + term
    s = gw * factor
    grad_w = tf.matmul(kernel, g, transpose_a=True)
    # One product gives both s^T @ q and the column sums of s.
    sq = tf.matmul(s, tf.concat([q, tf.ones_like(q[..., :1])], axis=-1), transpose_a=True)
    grad_c = c * sq[..., -1:] - sq[..., :-1]
    if need_query_grad:
        grad_q = q * tf.reduce_sum(s, axis=2, keepdims=True) - tf.matmul(s, c)
    else:
        grad_q = tf.zeros_like(q)
    return grad_q, grad_c, grad_w


# The [b, m, n] work (m = pixels) dominates the warp. Compiled with XLA, each kernel is a couple of
# fused loops instead of a dozen full-size temporaries: 3-6x faster on CPU, whether or not the
# caller compiles the surrounding graph (nested XLA functions are inlined into an outer one).
# set_fused_kernels(False) runs the same ops unfused, for platforms without XLA.
_FUSED = {"enabled": True}
_rbf_forward_xla = tf.function(_rbf_forward, jit_compile=True, autograph=False)
_rbf_backward_xla = tf.function(_rbf_backward, jit_compile=True, autograph=False)


def set_fused_kernels(enabled: bool) -> None:
    """Turns the XLA-compiled inner kernels of the warp on (default) or off."""
    _FUSED["enabled"] = bool(enabled)


def fused_kernels_enabled() -> bool:
    """Whether the warp's inner kernels run XLA-compiled."""
    return _FUSED["enabled"]


def _rbf_apply(
    query: tf.Tensor,
    centers: tf.Tensor,
    weights: tf.Tensor,
    order: int,
    eps: tf.Tensor,
    need_query_grad: bool = True,
) -> tf.Tensor:
    """``phi(|query - centers|) @ weights``: ``[b, m, d] x [b, n, d] x [b, n, k] -> [b, m, k]``.

    The gradient is written by hand (:func:`_rbf_backward`): two thin matmuls instead of autodiff
    through every ``[b, m, n]`` intermediate. ``need_query_grad=False`` skips d/dquery (a fixed
    pixel grid needs none).
    """
    fused = _FUSED["enabled"]
    forward = _rbf_forward_xla if fused else _rbf_forward
    backward = _rbf_backward_xla if fused else _rbf_backward

    @tf.custom_gradient
    def apply(q, c, w):
        def grad(g):
            return backward(q, c, w, g, eps, order, need_query_grad)

        return forward(q, c, w, eps, order), grad

    return apply(query, centers, weights)


def _normalization(train_points: tf.Tensor, order: int):
    """Centre and scale (``[b, 1, d]``, ``[b, 1, 1]``) that bring the control points to unit size.

    The interpolant does not depend on them (translation and scale invariance), so no gradient
    flows through them.
    """
    train_points = tf.stop_gradient(train_points)
    center = tf.reduce_mean(train_points, axis=1, keepdims=True)
    if order % 2 == 0 and order not in _SCALE_INVARIANT_EVEN_ORDERS:
        return center, tf.ones_like(center[..., :1])
    extent = tf.reduce_max(tf.abs(train_points - center), axis=[1, 2], keepdims=True)
    scale = tf.where(extent > 0, extent, tf.ones_like(extent))
    return center, scale


def _solve_interpolation(
    train_points: tf.Tensor,
    train_values: tf.Tensor,
    order: int,
    regularization_weight: tf.Tensor | None,
    eps: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Solves ``[[A + lambda I, B], [B^T, 0]] [w; v] = [f; 0]`` with ``B = [c, 1]``.

    ``regularization_weight`` is None (exact interpolation) or broadcastable to ``[b, 1, 1]``.

    Returns ``w`` ``[b, n, k]`` and ``v`` ``[b, d + 1, k]``.
    """
    with tf.name_scope("solve_interpolation"):
        c, f = train_points, train_values
        n = tf.shape(c)[1]
        a = _phi(_squared_distances(c, c), order, eps)
        if regularization_weight is not None:
            a += regularization_weight * tf.eye(n, dtype=c.dtype)[None]
        ones = tf.ones_like(c[..., :1])
        b = tf.concat([c, ones], axis=2)  # [b, n, d + 1]
        zeros_bb = tf.zeros_like(tf.matmul(b, b, transpose_a=True))  # [b, d + 1, d + 1]
        lhs = tf.concat(
            [tf.concat([a, b], axis=2), tf.concat([tf.transpose(b, [0, 2, 1]), zeros_bb], axis=2)],
            axis=1,
        )
        zeros_v = tf.zeros_like(tf.matmul(b, f, transpose_a=True))  # [b, d + 1, k]
        rhs = tf.concat([f, zeros_v], axis=1)
        w_v = tf.linalg.solve(lhs, rhs)
        return w_v[:, :n], w_v[:, n:]


def interpolate_spline(
    train_points,
    train_values,
    query_points,
    order: int = 1,
    regularization_weight: float = 0.0,
    name: str = "interpolate_spline",
) -> tf.Tensor:
    """Polyharmonic spline interpolation (paper Algorithm 1), batched and differentiable.

    Fits ``f(x) = sum_i w_i phi(|x - c_i|) + v . [x, 1]`` with ``phi(r) = r^k`` (k odd) or
    ``r^k log r`` (k even) so that ``f(c_i) = f_i`` (or, with ``regularization_weight`` > 0,
    approximately), and evaluates it at ``query_points``. Order 1 (``phi(r) = r``) is the paper's
    choice: it does not overshoot; order 2 is the thin-plate spline.

    Args:
      train_points: ``[batch, n, d]`` float control points (any coordinates; the warp ops pass
        (row, col) pixels). Needs ``n >= d + 1``.
      train_values: ``[batch, n, k]`` float values at the control points.
      query_points: ``[batch, m, d]`` float points to evaluate at.
      order: positive integer order of the polyharmonic kernel.
      regularization_weight: ``lambda >= 0`` added to the kernel's diagonal (smoothing spline).
      name: name scope.

    Returns:
      ``[batch, m, k]`` interpolated values, in the dtype of ``train_points`` (float32 or float64).

    Raises:
      ValueError: wrong ranks, mismatched batch/point/dimension sizes, too few control points,
        non-positive order, negative regularization weight, non-finite points or values.
    """
    with tf.name_scope(name):
        train_points = _as_float_tensor(train_points, "train_points")
        dtype = train_points.dtype
        train_values = _as_float_tensor(train_values, "train_values", dtype)
        query_points = _as_float_tensor(query_points, "query_points", dtype)
        order = _check_spline_params(order, regularization_weight)
        _check_rank(train_points, 3, "train_points", "[batch, n, d]")
        _check_rank(train_values, 3, "train_values", "[batch, n, k]")
        _check_rank(query_points, 3, "query_points", "[batch, m, d]")
        _check_same_dim(train_points, train_values, 0, "batch size", "train_points", "train_values")
        _check_same_dim(train_points, query_points, 0, "batch size", "train_points", "query_points")
        _check_same_dim(train_points, train_values, 1, "number of control points", "train_points", "train_values")
        _check_same_dim(train_points, query_points, 2, "point dimension", "train_points", "query_points")
        n, d = train_points.shape[1], train_points.shape[2]
        if n is not None and d is not None and n < d + 1:
            raise ValueError(
                f"need at least d + 1 = {d + 1} control points for a {d}-D spline, got {n}"
            )
        train_points = _check_finite(train_points, "train_points")
        train_values = _check_finite(train_values, "train_values")
        query_points = _check_finite(query_points, "query_points")
        return _interpolate(train_points, train_values, query_points, order, regularization_weight)


def _interpolate(
    train_points: tf.Tensor,
    train_values: tf.Tensor,
    query_points: tf.Tensor,
    order: int,
    regularization_weight: float,
    need_query_grad: bool = True,
) -> tf.Tensor:
    """:func:`interpolate_spline` on validated inputs."""
    center, scale = _normalization(train_points, order)
    c = (train_points - center) / scale
    q = (query_points - center) / scale
    # Scaling coordinates by 1/s scales phi by s^-order; scale lambda alike so the interpolant is unchanged.
    reg = None
    if regularization_weight > 0:
        reg = regularization_weight * tf.pow(scale, -float(order))
    # The clamp is defined in the caller's units (as the reference's), so rescale it too.
    eps = EPSILON / tf.square(scale)
    w, v = _solve_interpolation(c, train_values, order, reg, eps)
    with tf.name_scope("apply_interpolation"):
        rbf = _rbf_apply(q, c, w, order, eps, need_query_grad)
        linear = tf.matmul(q, v[:, :-1]) + v[:, -1:]
        return rbf + linear


# ----------------------------------------------------------------------------------------------
# Bilinear resampling.
# ----------------------------------------------------------------------------------------------
def _interpolate_bilinear_rowcol(image: tf.Tensor, query: tf.Tensor) -> tf.Tensor:
    """Samples ``image`` ``[b, h, w, c]`` at ``query`` ``[b, m, 2]`` (row, col) -> ``[b, m, c]``."""
    # XLA turns the backward scatter into one fast loop (5x faster than TF's CPU segment sum).
    kernel = _bilinear_xla if _FUSED["enabled"] else _bilinear
    return kernel(image, query)


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


def _check_image(image: tf.Tensor, name: str = "image") -> tf.Tensor:
    _check_rank(image, 4, name, "[batch, height, width, channels]")
    h, w = image.shape[1], image.shape[2]
    if (h is not None and h < 2) or (w is not None and w < 2):
        raise ValueError(f"{name} must be at least 2x2 pixels, got shape {image.shape}")
    if image.shape[-1] is None:
        raise ValueError(f"{name} needs a known number of channels, got shape {image.shape}")
    return _check_finite(image, name)


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
        image = _as_float_tensor(image, "image")
        coords = _as_float_tensor(coords_xy, "coords_xy")
        if coords.shape.rank is not None and coords.shape.rank < 2:
            raise ValueError(f"coords_xy must have shape [batch, ..., 2], got {coords.shape}")
        if coords.shape[-1] is not None and coords.shape[-1] != 2:
            raise ValueError(f"coords_xy must end in 2 (x, y), got shape {coords.shape}")
        _check_same_dim(image, coords, 0, "batch size", "image", "coords_xy")
        image = _check_image(image)
        coords = _check_finite(coords, "coords_xy")
        out_shape = tf.concat([tf.shape(coords)[:-1], tf.shape(image)[-1:]], axis=0)
        flat = tf.reshape(xy_to_rowcol(coords), [tf.shape(coords)[0], -1, 2])
        return tf.reshape(_interpolate_bilinear_rowcol(image, flat), out_shape)


def _pixel_grid(height, width, dtype) -> tf.Tensor:
    """``[height, width, 2]`` (row, col) coordinates of every pixel."""
    rows, cols = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
    return tf.cast(tf.stack([rows, cols], axis=-1), dtype)


def dense_image_warp(image, flow, name: str = "dense_image_warp") -> tf.Tensor:
    """Warps ``image`` by a dense flow: ``out[b, i, j] = image[b, (i, j) - flow[b, i, j]]``.

    Args:
      image: ``[batch, height, width, channels]`` float image.
      flow: ``[batch, height, width, 2]`` float flow in (row, col) pixels (reference convention).
      name: name scope.

    Returns:
      ``[batch, height, width, channels]`` bilinearly resampled, border-clamped image.
    """
    with tf.name_scope(name):
        image = _as_float_tensor(image, "image")
        flow = _as_float_tensor(flow, "flow", image.dtype)
        _check_rank(flow, 4, "flow", "[batch, height, width, 2]")
        for axis, what in ((0, "batch size"), (1, "height"), (2, "width")):
            _check_same_dim(image, flow, axis, what, "image", "flow")
        if flow.shape[-1] is not None and flow.shape[-1] != 2:
            raise ValueError(f"flow must have 2 channels (row, col), got shape {flow.shape}")
        image = _check_image(image)
        flow = _check_finite(flow, "flow")
        shape = tf.shape(image)
        batch, height, width = shape[0], shape[1], shape[2]
        query = _pixel_grid(height, width, flow.dtype)[None] - flow
        out = _interpolate_bilinear_rowcol(image, tf.reshape(query, [batch, -1, 2]))
        return tf.reshape(out, shape)


# ----------------------------------------------------------------------------------------------
# Sparse (control-point) warp.
# ----------------------------------------------------------------------------------------------
def boundary_points(height: int, width: int, num_boundary_points: int) -> np.ndarray:
    """``[4k, 2]`` (row, col) zero-flow anchors: the 4 corners plus ``k - 1`` points per edge."""
    if num_boundary_points <= 0:
        return np.zeros([0, 2])
    per_edge = num_boundary_points + 1  # corners included
    ys = np.linspace(0, height - 1, per_edge)
    xs = np.linspace(0, width - 1, per_edge)
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    on_edge = (grid_x == 0) | (grid_x == width - 1) | (grid_y == 0) | (grid_y == height - 1)
    return np.stack([grid_y[on_edge], grid_x[on_edge]], axis=-1)


def sparse_image_warp(
    image,
    source_control_point_locations,
    dest_control_point_locations,
    interpolation_order: int = 1,
    regularization_weight: float = 0.0,
    num_boundary_points: int = 0,
    name: str = "sparse_image_warp",
) -> tuple[tf.Tensor, tf.Tensor]:
    """Warps ``image`` so that content at the source points moves to the destination points.

    The spline is fitted at the destination points with values ``dest - source`` and evaluated on
    the pixel grid to a dense flow; the image is then sampled at ``grid - flow``
    (:func:`dense_image_warp`). Points are **(row, col)** pixels, as in the retired reference;
    use :func:`warp_to_landmarks` for (x, y).

    Args:
      image: ``[batch, height, width, channels]`` float32/float64 image.
      source_control_point_locations: ``[batch, n, 2]`` (row, col) points in ``image``.
      dest_control_point_locations: ``[batch, n, 2]`` (row, col) where they should land.
      interpolation_order: polyharmonic order (1 = the paper's ``phi(r) = r``).
      regularization_weight: smoothing ``lambda`` (0 = exact interpolation).
      num_boundary_points: ``k > 0`` pins the 4 corners plus ``k - 1`` points per edge to zero
        flow; 0 adds none.
      name: name scope.

    Returns:
      ``(warped_image [batch, height, width, channels], dense_flow [batch, height, width, 2])``.
    """
    with tf.name_scope(name):
        image = _as_float_tensor(image, "image")
        src = _as_float_tensor(source_control_point_locations, "source_control_point_locations", image.dtype)
        dst = _as_float_tensor(dest_control_point_locations, "dest_control_point_locations", image.dtype)
        _check_rank(src, 3, "source_control_point_locations", "[batch, n, 2]")
        _check_rank(dst, 3, "dest_control_point_locations", "[batch, n, 2]")
        image = _check_image(image)
        for axis, what in ((0, "batch size"), (1, "number of control points"), (2, "point dimension")):
            _check_same_dim(src, dst, axis, what, "source_control_point_locations", "dest_control_point_locations")
        _check_same_dim(image, src, 0, "batch size", "image", "source_control_point_locations")
        if src.shape[-1] is not None and src.shape[-1] != 2:
            raise ValueError(f"control points must be [batch, n, 2] (row, col), got shape {src.shape}")
        interpolation_order = _check_spline_params(interpolation_order, regularization_weight, "interpolation_order")
        if num_boundary_points < 0:
            raise ValueError(f"num_boundary_points must be >= 0, got {num_boundary_points}")
        n = src.shape[1]
        total = None if n is None else n + 4 * num_boundary_points
        if total is not None and total < 3:
            raise ValueError(
                f"need at least 3 control points (landmarks + boundary points) for a 2-D spline, got {total}"
            )
        height, width = image.shape[1], image.shape[2]
        if height is None or width is None:
            raise ValueError(f"sparse_image_warp needs static height and width, got image shape {image.shape}")
        batch = tf.shape(image)[0]
        flows = dst - src
        points = dst
        if num_boundary_points > 0:
            anchors = tf.constant(boundary_points(height, width, num_boundary_points), image.dtype)
            anchors = tf.tile(anchors[None], [batch, 1, 1])
            points = tf.concat([points, anchors], axis=1)
            flows = tf.concat([flows, tf.zeros_like(anchors)], axis=1)
        grid = tf.reshape(_pixel_grid(height, width, image.dtype), [1, height * width, 2])
        grid = tf.tile(grid, [batch, 1, 1])
        points = _check_finite(points, "dest_control_point_locations")
        flows = _check_finite(flows, "control point displacements (dest - source)")
        # The pixel grid is constant: skip the query-point gradient.
        flat_flow = _interpolate(
            points, flows, grid, interpolation_order, regularization_weight, need_query_grad=False
        )
        dense_flow = tf.reshape(flat_flow, [batch, height, width, 2])
        return dense_image_warp(image, dense_flow), dense_flow


def warp_to_landmarks(
    image,
    source_xy,
    dest_xy,
    interpolation_order: int = 1,
    regularization_weight: float = 0.0,
    num_boundary_points: int = 4,
) -> tuple[tf.Tensor, tf.Tensor]:
    """(x, y) front end of :func:`sparse_image_warp`: moves ``source_xy`` onto ``dest_xy``.

    Args:
      image: ``[batch, height, width, channels]`` float image.
      source_xy, dest_xy: ``[batch, n, 2]`` (x, y) pixel landmarks.
      interpolation_order, regularization_weight, num_boundary_points: as in sparse_image_warp
        (4 boundary points per edge keeps the image border still, as the paper's Fig. 5).

    Returns:
      ``(warped [batch, height, width, channels], flow_xy [batch, height, width, 2])`` where the
      flow is in (x, y) pixels: ``warped[y, x] = image[(x, y) - flow_xy[y, x]]``.
    """
    warped, flow = sparse_image_warp(
        image,
        xy_to_rowcol(tf.convert_to_tensor(source_xy)),
        xy_to_rowcol(tf.convert_to_tensor(dest_xy)),
        interpolation_order=interpolation_order,
        regularization_weight=regularization_weight,
        num_boundary_points=num_boundary_points,
    )
    return warped, rowcol_to_xy(flow)


@keras.saving.register_keras_serializable(package="normface")
class SplineWarp(keras.layers.Layer):
    """Keras layer: warps a texture so its source landmarks land on destination landmarks.

    Call with ``[image, source_xy, dest_xy]``: ``image`` ``[batch, h, w, c]``, landmarks
    ``[batch, n, 2]`` in (x, y) pixels (the batch size may be dynamic). Returns the warped image,
    or ``(warped, flow_xy)`` with ``return_flow=True``. Works under ``tf.function`` and
    ``jit_compile=True``.
    """

    def __init__(
        self,
        interpolation_order: int = 1,
        regularization_weight: float = 0.0,
        num_boundary_points: int = 4,
        return_flow: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.interpolation_order = _check_spline_params(
            interpolation_order, regularization_weight, "interpolation_order"
        )
        self.regularization_weight = float(regularization_weight)
        self.num_boundary_points = int(num_boundary_points)
        self.return_flow = bool(return_flow)

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 3:
            raise ValueError("SplineWarp expects [image, source_xy, dest_xy]")
        image, source_xy, dest_xy = inputs
        dtype = image.dtype
        warped, flow = warp_to_landmarks(
            image,
            tf.cast(source_xy, dtype),
            tf.cast(dest_xy, dtype),
            self.interpolation_order,
            self.regularization_weight,
            self.num_boundary_points,
        )
        return (warped, flow) if self.return_flow else warped

    def compute_output_shape(self, input_shape):
        image_shape = tuple(input_shape[0])
        if self.return_flow:
            return image_shape, image_shape[:-1] + (2,)
        return image_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            interpolation_order=self.interpolation_order,
            regularization_weight=self.regularization_weight,
            num_boundary_points=self.num_boundary_points,
            return_flow=self.return_flow,
        )
        return config
