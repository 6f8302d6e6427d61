"""Polyharmonic spline interpolation (paper Sec. 4): fit at control points, evaluate anywhere.

``interpolate_spline`` keeps tensorflow-addons' signature and conventions, so its golden outputs
check ours. Beyond the reference: distances are explicit coordinate differences (no
``|q|^2 + |c|^2 - 2 q.c`` cancellation), control points are centred and scaled to unit size before
the solve (the interpolant is unchanged; float32 is far better conditioned), and the kernel
evaluation ``phi(|q - c|) @ w`` has a hand-written gradient, one kernel per input (a graph computes
only those it uses), XLA-fused unless :func:`set_fused_kernels` turns that off.
"""

from __future__ import annotations

import tensorflow as tf

from normface.warp.common import (
    as_float_tensor,
    check_finite,
    check_known_rank,
    check_rank,
    check_same_dim,
    check_spline_params,
)

# Clamp of the squared distance inside phi: keeps sqrt/log and their gradients finite at r = 0.
# Same value as the reference, so results at control points agree with its golden outputs.
# Shared with the NumPy warp, as the orders for which the spline is exactly scale-invariant (so
# the unit rescaling is safe).
from normface.warp.numpy_warp import _SCALE_INVARIANT_EVEN_ORDERS, EPSILON  # noqa: E402


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


def _gradient_factor(r2: tf.Tensor, order: int, eps: tf.Tensor) -> tf.Tensor:
    """``2 phi'(r2)``: the factor that turns d/dr2 into d/dq via ``2 (q - c)``."""
    if order == 1:
        # 2 phi'(r2) = 1 / r (inside the clamp this is still the bounded derivative of |q - c|,
        # since |q - c| < sqrt(eps) there).
        return tf.math.rsqrt(tf.maximum(r2, eps))
    return 2.0 * _dphi_dr2(r2, order, eps)


def _outer_values(g: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
    """``g @ w^T`` (``[..., m, k] x [..., n, k] -> [..., m, n]``) for a static or unknown ``k``."""
    k = w.shape[-1]
    if k is None:
        # An unknown value dimension (issue 19: the unrolled sum below crashed on it).
        return tf.matmul(g, w, transpose_b=True)
    # k is 1-3: as broadcast products it fuses with the rest of the [m, n] work.
    gw = None
    for i in range(k):
        term = g[..., :, i, None] * w[..., None, :, i]
        gw = term if gw is None else gw + term
    return gw


# The gradients of ``phi(|q - c|) @ w`` given the output gradient ``g`` ``[b, m, k]``, one
# function per input. With ``s = (g @ w^T) * 2 phi'(r2)`` (``[b, m, n]``):
#   d/dw = phi^T @ g,   d/dc = c * sum_m s - s^T @ q,   d/dq = q * sum_n s - s @ c.
# Separate, so that inside a graph a gradient nobody asked for is never computed: TensorFlow
# prunes the ops of an unused gradient, but not part of one compiled kernel (issue 31: the
# gradient w.r.t. the source points alone needs d/dw only, and computing s and d/dc for nothing
# made it 0.7x the reference). Each recomputes r2 from q and c instead of storing the [b, m, n]
# intermediates: that costs a few flops per element, where a stored [b, m, n] array costs
# memory traffic. d/dw and d/dc contract over the pixels m, so they build their [b, n, m]
# matrices in that layout (the distances from c to q) and multiply without a transpose: with an
# ``[b, m, n]`` operand and ``transpose_a``, d/dw took twice as long (measured at 224, batch 32).
def _rbf_grad_weights(q, c, g, eps, order):
    """d/dw = phi^T @ g: ``[b, n, k]``."""
    return tf.matmul(_phi(_squared_distances(c, q), order, eps), g)


def _rbf_grad_centers(q, c, w, g, eps, order):
    """d/dc = c * sum_m s - s^T @ q: ``[b, n, d]``."""
    s_t = _outer_values(w, g) * _gradient_factor(_squared_distances(c, q), order, eps)  # [b, n, m]
    # One product gives both s^T @ q and the column sums of s.
    sq = tf.matmul(s_t, tf.concat([q, tf.ones_like(q[..., :1])], axis=-1))
    return c * sq[..., -1:] - sq[..., :-1]


def _rbf_grad_query(q, c, w, g, eps, order):
    """d/dq = q * sum_n s - s @ c: ``[b, m, d]``."""
    s = _outer_values(g, w) * _gradient_factor(_squared_distances(q, c), order, eps)
    return q * tf.reduce_sum(s, axis=2, keepdims=True) - tf.matmul(s, c)


# The [b, m, n] work (m = pixels) dominates the warp. Compiled with XLA, each kernel is a couple of
# fused loops instead of a dozen full-size temporaries: 3-6x faster on CPU, whether or not the
# caller compiles the surrounding graph (nested XLA functions are inlined into an outer one).
# set_fused_kernels(False) runs the same ops unfused, for platforms without XLA.
_FUSED = {"enabled": True}

_RBF_PLAIN = (_rbf_forward, _rbf_grad_query, _rbf_grad_centers, _rbf_grad_weights)
_RBF_XLA = tuple(tf.function(fn, jit_compile=True, autograph=False) for fn in _RBF_PLAIN)


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

    The gradient is written by hand: thin matmuls instead of autodiff through every ``[b, m, n]``
    intermediate, one kernel per input so that a graph computes only the gradients it uses
    (:func:`_rbf_grad_weights`). ``need_query_grad=False`` skips d/dquery outright, also eagerly
    (a fixed pixel grid needs none).
    """
    forward, grad_query, grad_centers, grad_weights = _RBF_XLA if _FUSED["enabled"] else _RBF_PLAIN

    @tf.custom_gradient
    def apply(q, c, w):
        def grad(g):
            dq = grad_query(q, c, w, g, eps, order) if need_query_grad else tf.zeros_like(q)
            return dq, grad_centers(q, c, w, g, eps, order), grad_weights(q, c, g, eps, order)

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
        (row, col) pixels). Needs ``n >= d + 1``. When traced, the rank must be known (as in the
        reference) but any dimension may be unknown (the reference needs ``d``).
      train_values: ``[batch, n, k]`` float values at the control points (cast to
        ``train_points``' dtype); its rank too must be known when traced (the reference needs ``k``).
      query_points: ``[batch, m, d]`` float points to evaluate at (cast likewise); its rank may be
        unknown when traced, as in the reference.
      order: positive integer order of the polyharmonic kernel.
      regularization_weight: ``lambda >= 0`` added to the kernel's diagonal (smoothing spline).
      name: name scope.

    Returns:
      ``[batch, m, k]`` interpolated values, in the dtype of ``train_points`` (float32 or float64).

    Raises:
      ValueError: wrong ranks, mismatched batch/point/dimension sizes, too few control points,
        non-positive order, negative regularization weight, non-finite points or values; and, as
        the reference, ``train_points`` or ``train_values`` traced with an unknown rank
        (``tf.TensorSpec(shape=None)``; ``query_points`` may have one).
    """
    with tf.name_scope(name):
        train_points = as_float_tensor(train_points, "train_points")
        dtype = train_points.dtype
        train_values = as_float_tensor(train_values, "train_values", dtype)
        query_points = as_float_tensor(query_points, "query_points", dtype)
        order = check_spline_params(order, regularization_weight)
        # The reference refuses these two (it needs d and k at trace time); query_points may be
        # of unknown rank, as there.
        check_known_rank(train_points, 3, "train_points", "[batch, n, d]", "interpolate_spline")
        check_known_rank(train_values, 3, "train_values", "[batch, n, k]", "interpolate_spline")
        check_rank(train_points, 3, "train_points", "[batch, n, d]")
        check_rank(train_values, 3, "train_values", "[batch, n, k]")
        check_rank(query_points, 3, "query_points", "[batch, m, d]")
        check_same_dim(train_points, train_values, 0, "batch size", "train_points", "train_values")
        check_same_dim(train_points, query_points, 0, "batch size", "train_points", "query_points")
        check_same_dim(train_points, train_values, 1, "number of control points", "train_points", "train_values")
        check_same_dim(train_points, query_points, 2, "point dimension", "train_points", "query_points")
        n, d = train_points.shape[1], train_points.shape[2]
        if n is not None and d is not None and n < d + 1:
            raise ValueError(
                f"need at least d + 1 = {d + 1} control points for a {d}-D spline, got {n}"
            )
        train_points = check_finite(train_points, "train_points")
        train_values = check_finite(train_values, "train_values")
        query_points = check_finite(query_points, "query_points")
        return interpolate_validated(train_points, train_values, query_points, order, regularization_weight)


def dtype_needs_wide_solve(dtype: tf.DType) -> bool:
    """Whether the spline system is solved in float64 for inputs of ``dtype`` (narrower floats)."""
    return dtype in (tf.float32, tf.float16, tf.bfloat16)


def interpolate_validated(
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
    if dtype_needs_wide_solve(c.dtype):
        # The (n + d + 1)^2 system is tiny next to the [b, m, n] evaluation: solving it in float64
        # costs ~1% of the warp and takes the float32 flow error at 224x224 from 1.1e-3 px to 9.5e-4 px (measured, benchmark inputs).
        wide = [tf.cast(x, tf.float64) for x in (c, train_values, eps)]
        wide_reg = None if reg is None else tf.cast(reg, tf.float64)
        w, v = (tf.cast(x, c.dtype) for x in _solve_interpolation(wide[0], wide[1], order, wide_reg, wide[2]))
    else:
        w, v = _solve_interpolation(c, train_values, order, reg, eps)
    with tf.name_scope("apply_interpolation"):
        rbf = _rbf_apply(q, c, w, order, eps, need_query_grad)
        linear = tf.matmul(q, v[:, :-1]) + v[:, -1:]
        return rbf + linear
