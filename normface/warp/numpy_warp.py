"""The spline warp in NumPy, for inference without TensorFlow (one face at a time).

The same equations as :func:`normface.warp.sparse.warp_to_landmarks` (and the reference's
``sparse_image_warp``): the polyharmonic spline through the control points' displacements
(control points centred and scaled to unit size, the regularization weight and the kernel clamp
rescaled to match, :mod:`normface.warp.spline`), solved and evaluated in float64, then bilinear
resampling at ``grid - flow`` clamped at the border exactly as :mod:`normface.warp.resample`.
Tested against the TensorFlow ops and the tensorflow-addons float64 fixtures
(``tests/warp/test_numpy_warp.py``). Not differentiable; importing it does not import TensorFlow.

Coordinates as in the TensorFlow modules: :func:`interpolate_spline` and
:func:`sparse_image_warp` speak (row, col), :func:`warp_to_landmarks` and
:func:`resample_bilinear` (x, y).
"""

from __future__ import annotations

import numpy as np

# Clamp of the squared distance inside phi (the reference's value): see normface.warp.spline.
EPSILON = 1e-10
# Default smoothing of the landmark-facing warps (see normface.warp.sparse).
LANDMARK_REGULARIZATION = 1e-3
_SCALE_INVARIANT_EVEN_ORDERS = (2,)


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


def _phi(r2: np.ndarray, order: int, eps: float) -> np.ndarray:
    """Polyharmonic basis of the squared distance (normface.warp.spline._phi); overwrites ``r2``."""
    if order % 2 == 1:
        clamped = np.maximum(r2, eps, out=r2)
        if order == 1:
            return np.sqrt(clamped, out=clamped)
        return np.power(clamped, 0.5 * order, out=clamped)
    log = np.log(np.maximum(r2, eps))
    power = r2 if order == 2 else r2 ** (0.5 * order)
    return 0.5 * power * log


def _squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``[m, n]`` squared distances between ``x`` ``[m, d]`` and ``y`` ``[n, d]`` (in their dtype),
    summed over explicit per-coordinate differences (as normface.warp.spline's; no cancellation)."""
    total = None
    for i in range(x.shape[1]):
        diff = np.subtract(x[:, i, None], y[None, :, i])
        np.square(diff, out=diff)
        total = diff if total is None else np.add(total, diff, out=total)
    return total


def _check_points(name: str, points: np.ndarray, rank: int = 2) -> np.ndarray:
    points = np.asarray(points, np.float64)
    if points.ndim != rank:
        raise ValueError(f"{name} must have rank {rank}, got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{name} contains NaN or Inf values")
    return points


class Spline:
    """A fitted polyharmonic spline (:func:`fit_spline`), evaluated at points or on a pixel grid.

    Its control points are centred and scaled (``center`` ``[1, d]``, ``scale``), as the system
    was solved; ``w`` ``[n, k]`` and ``v`` ``[d + 1, k]`` are the kernel and affine weights in the
    evaluation dtype."""

    def __init__(self, centers: np.ndarray, center: np.ndarray, scale: float, w: np.ndarray, v: np.ndarray,
                 order: int, eps: float):
        self.centers, self.center, self.scale, self.w, self.v = centers, center, scale, w, v
        self.order, self.eps = order, centers.dtype.type(eps)

    def at(self, query_points: np.ndarray) -> np.ndarray:
        """``[m, d]`` points -> ``[m, k]`` values."""
        q0 = _check_points("query_points", query_points)
        if q0.shape[1] != self.centers.shape[1]:
            raise ValueError(f"query_points: expected [m, {self.centers.shape[1]}], got {q0.shape}")
        q = ((q0 - self.center) / self.scale).astype(self.centers.dtype)
        return _phi(_squared_distances(q, self.centers), self.order, self.eps) @ self.w + q @ self.v[:-1] + self.v[-1:]

    def on_grid(self, height: int, width: int) -> np.ndarray:
        """The values at every pixel (row, col) of a ``height x width`` grid, row-major
        ``[height * width, k]``: :meth:`at` of :func:`pixel_grid` for a 2-D spline, faster.

        A pixel's squared distance to a control point is a per-row plus a per-column term, so
        the two squared differences are computed once per row and per column and added: the
        same float operations, in the same order, as :func:`_squared_distances` on the whole
        grid, ~40x fewer of them. The kernel matrix is made :data:`_GRID_ROWS` rows at a time."""
        if self.centers.shape[1] != 2:
            raise ValueError(f"on_grid needs a 2-D spline, this one is {self.centers.shape[1]}-D")
        dtype, n, k = self.centers.dtype, self.centers.shape[0], self.w.shape[1]
        rows = ((np.arange(height, dtype=np.float64) - self.center[0, 0]) / self.scale).astype(dtype)
        cols = ((np.arange(width, dtype=np.float64) - self.center[0, 1]) / self.scale).astype(dtype)
        row_terms = np.square(rows[:, None] - self.centers[None, :, 0])  # [h, n]
        col_terms = np.square(cols[:, None] - self.centers[None, :, 1])  # [w, n]
        affine = (rows[:, None, None] * self.v[0] + self.v[-1]) + cols[None, :, None] * self.v[1]  # [h, w, k]
        out = np.empty((height, width, k), dtype)
        for start in range(0, height, _GRID_ROWS):
            stop = min(start + _GRID_ROWS, height)
            kernel = _phi(row_terms[start:stop, None, :] + col_terms[None, :, :], self.order, self.eps)
            np.matmul(kernel.reshape(-1, n), self.w, out=out[start:stop].reshape(-1, k))
        out += affine
        return out.reshape(height * width, k)


# Grid rows per kernel block in Spline.on_grid: 16 rows of 128 pixels x 84 points in float32
# (0.7 MB) stay in the L2 cache, where the whole 128x128 grid's 5.6 MB matrix would stream
# through memory three times (squares, kernel, product).
_GRID_ROWS = 16


def fit_spline(train_points: np.ndarray, train_values: np.ndarray, order: int = 1,
               regularization_weight: float = 0.0, evaluation_dtype: type = np.float64) -> Spline:
    """One (unbatched) polyharmonic spline through ``train_points`` ``[n, d]`` with values
    ``[n, k]``, solved in float64 (:func:`normface.warp.interpolate_spline`'s equations for one
    batch element) and evaluated in ``evaluation_dtype`` (float32, as the TensorFlow op for
    float32 inputs: half the time of float64 on a 128x128 grid). Raises ValueError for
    mismatched shapes, too few points, a bad order or weight, non-finite inputs."""
    c0 = _check_points("train_points", train_points)
    f = _check_points("train_values", train_values)
    if int(order) != order or order < 1:
        raise ValueError(f"order must be a positive integer, got {order}")
    if regularization_weight < 0:
        raise ValueError(f"regularization_weight must be >= 0, got {regularization_weight}")
    n, d = c0.shape
    if f.shape[0] != n:
        raise ValueError(f"shapes do not fit: train_points {c0.shape}, train_values {f.shape}")
    if n < d + 1:
        raise ValueError(f"train_points: need at least d + 1 = {d + 1} control points for a {d}-D spline, got {n}")
    order = int(order)
    center = c0.mean(axis=0, keepdims=True)
    scale = 1.0
    if not (order % 2 == 0 and order not in _SCALE_INVARIANT_EVEN_ORDERS):
        extent = float(np.abs(c0 - center).max())
        scale = extent if extent > 0 else 1.0
    c = (c0 - center) / scale
    eps = EPSILON / scale**2
    a = _phi(_squared_distances(c, c), order, eps)
    if regularization_weight > 0:
        a = a + regularization_weight * scale ** (-float(order)) * np.eye(n)
    b = np.concatenate([c, np.ones((n, 1))], axis=1)
    lhs = np.block([[a, b], [b.T, np.zeros((d + 1, d + 1))]])
    rhs = np.concatenate([f, np.zeros((d + 1, f.shape[1]))])
    w_v = np.linalg.solve(lhs, rhs).astype(evaluation_dtype)
    return Spline(c.astype(evaluation_dtype), center, scale, w_v[:n], w_v[n:], order, eps)


def interpolate_spline(train_points: np.ndarray, train_values: np.ndarray, query_points: np.ndarray,
                       order: int = 1, regularization_weight: float = 0.0,
                       evaluation_dtype: type = np.float64) -> np.ndarray:
    """:func:`fit_spline` at ``train_points`` ``[n, d]`` with values ``[n, k]``, evaluated at
    ``query_points`` ``[m, d]`` -> ``[m, k]`` in ``evaluation_dtype`` (the reference's
    ``interpolate_spline`` for one batch element)."""
    return fit_spline(train_points, train_values, order, regularization_weight, evaluation_dtype).at(query_points)


def pixel_grid(height: int, width: int) -> np.ndarray:
    """``[height * width, 2]`` (row, col) of every pixel, row-major."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([rows.ravel(), cols.ravel()], axis=-1).astype(np.float64)


def interpolate_bilinear_rowcol(image: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Samples ``image`` ``[h, w, c]`` at ``query`` ``[..., 2]`` (row, col) -> ``[..., c]``, border-
    clamped as :func:`normface.warp.resample._bilinear` (corner index in ``[0, size - 2]``,
    fraction in ``[0, 1]``); computed in the image's float dtype."""
    image = np.asarray(image)
    h, w = image.shape[:2]
    if h < 2 or w < 2:
        raise ValueError(f"image must be at least 2x2 pixels, got {h}x{w}")
    dtype = image.dtype if np.issubdtype(image.dtype, np.floating) else np.float32
    image = image.astype(dtype, copy=False)

    def floor_and_alpha(x, size):
        floor = np.clip(np.floor(x), 0, size - 2)
        alpha = np.clip((x - floor).astype(dtype), 0, 1)
        return floor.astype(np.intp), alpha[..., None]

    r0, ar = floor_and_alpha(query[..., 0], h)
    c0, ac = floor_and_alpha(query[..., 1], w)
    # The four neighbours by flat index into [h * w, c]: take() on one axis is ~3x faster than
    # indexing with two index arrays.
    flat, corner = image.reshape(h * w, -1), r0 * w + c0
    top_left, top_right = flat.take(corner, axis=0), flat.take(corner + 1, axis=0)
    bottom_left, bottom_right = flat.take(corner + w, axis=0), flat.take(corner + w + 1, axis=0)
    top = ac * (top_right - top_left) + top_left
    bottom = ac * (bottom_right - bottom_left) + bottom_left
    return ar * (bottom - top) + top


# How a warp samples its image: the one list of names, shared by the TensorFlow warp and the model
# config (this module imports no TensorFlow).
RESAMPLINGS = ("bilinear", "bicubic")
CUBIC_TAPS = (-1, 0, 1, 2)  # offsets of the bicubic sampler's 4 taps per axis from the query's floor


def check_resampling(resampling: str) -> str:
    """``resampling`` when it is one of :data:`RESAMPLINGS`; ValueError naming it otherwise."""
    if resampling not in RESAMPLINGS:
        raise ValueError(f"resampling must be one of {RESAMPLINGS}, got {resampling!r}")
    return resampling


def cubic_weights(fraction: np.ndarray) -> np.ndarray:
    """:func:`normface.warp.resample.cubic_weights`: Catmull-Rom weights ``[..., 4]``."""
    f = fraction
    f2, f3 = f * f, f * f * f
    return 0.5 * np.stack([-f3 + 2 * f2 - f, 3 * f3 - 5 * f2 + 2, -3 * f3 + 4 * f2 + f, f3 - f2], axis=-1)


def interpolate_bicubic_rowcol(image: np.ndarray, query: np.ndarray) -> np.ndarray:
    """:func:`normface.warp.resample.interpolate_bicubic_rowcol` for one image: ``[h, w, c]``
    sampled at ``[..., 2]`` (row, col) -> ``[..., c]``, 4x4 Catmull-Rom taps, edge pixels repeated
    beyond the border; computed in the image's float dtype."""
    image = np.asarray(image)
    h, w = image.shape[:2]
    dtype = image.dtype if np.issubdtype(image.dtype, np.floating) else np.float32
    flat = image.astype(dtype, copy=False).reshape(h * w, -1)
    taps = np.asarray(CUBIC_TAPS)

    def indices_and_weights(x, size):
        floor = np.clip(np.floor(x), -2, size)
        weights = cubic_weights(np.clip((x - floor).astype(dtype), 0, 1))
        return np.clip(floor.astype(np.intp)[..., None] + taps, 0, size - 1), weights

    rows, row_weights = indices_and_weights(query[..., 0], h)
    cols, col_weights = indices_and_weights(query[..., 1], w)
    out = 0
    for i in range(4):  # one row of taps at a time: [..., 4, c] stays small
        values = flat.take(rows[..., i, None] * w + cols, axis=0)
        out = out + row_weights[..., i, None] * np.einsum("...jc,...j->...c", values, col_weights)
    return out.astype(dtype, copy=False)


RESAMPLERS = {"bilinear": interpolate_bilinear_rowcol, "bicubic": interpolate_bicubic_rowcol}


def resample_bilinear(image: np.ndarray, coords_xy: np.ndarray) -> np.ndarray:
    """:func:`normface.warp.resample_bilinear` for one image: ``[h, w, c]`` sampled at ``[..., 2]``
    (x, y) pixels -> ``[..., c]``."""
    coords = np.asarray(coords_xy)
    return interpolate_bilinear_rowcol(image, coords[..., ::-1])


def dense_image_warp(image: np.ndarray, flow: np.ndarray, resampling: str = "bilinear") -> np.ndarray:
    """``out[i, j] = image[(i, j) - flow[i, j]]``: ``[h, w, c]`` image, ``[h, w, 2]`` (row, col)
    flow, sampled ``"bilinear"`` or ``"bicubic"``."""
    h, w = image.shape[:2]
    if flow.shape != (h, w, 2):
        raise ValueError(f"flow must be [{h}, {w}, 2] (row, col) for a {h}x{w} image, got {flow.shape}")
    query = pixel_grid(h, w).reshape(h, w, 2) - flow
    return RESAMPLERS[check_resampling(resampling)](image, query)


def sparse_image_warp(image: np.ndarray, source_rowcol: np.ndarray, dest_rowcol: np.ndarray,
                      interpolation_order: int = 2, regularization_weight: float = 0.0,
                      num_boundary_points: int = 0, resampling: str = "bilinear") -> tuple[np.ndarray, np.ndarray]:
    """:func:`normface.warp.sparse_image_warp` for one ``[h, w, c]`` image and ``[n, 2]`` (row, col)
    points: returns ``(warped [h, w, c] in the image's dtype, flow [h, w, 2])``; the flow is
    evaluated in float32 for a float32 image (as the TensorFlow op), else in float64."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must be [height, width, channels], got shape {image.shape}")
    src = _check_points("source_control_point_locations", source_rowcol)
    dst = _check_points("dest_control_point_locations", dest_rowcol)
    if src.shape != dst.shape or src.shape[1:] != (2,):
        raise ValueError(f"control points must both be [n, 2] (row, col), got {src.shape} and {dst.shape}")
    if num_boundary_points < 0:
        raise ValueError(f"num_boundary_points must be >= 0, got {num_boundary_points}")
    h, w = image.shape[:2]
    anchors = boundary_points(h, w, num_boundary_points)
    points = np.concatenate([dst, anchors])
    values = np.concatenate([dst - src, np.zeros_like(anchors)])
    evaluation = np.float32 if image.dtype == np.float32 else np.float64
    flow = fit_spline(points, values, interpolation_order, regularization_weight,
                      evaluation).on_grid(h, w).reshape(h, w, 2)
    warped = dense_image_warp(image, flow, resampling)
    return warped.astype(image.dtype, copy=False), flow


def warp_to_landmarks(image: np.ndarray, source_xy: np.ndarray, dest_xy: np.ndarray,
                      interpolation_order: int = 1, regularization_weight: float = LANDMARK_REGULARIZATION,
                      num_boundary_points: int = 4, resampling: str = "bilinear") -> tuple[np.ndarray, np.ndarray]:
    """(x, y) front end, as :func:`normface.warp.warp_to_landmarks` for one ``[h, w, c]`` image and
    ``[n, 2]`` (x, y) landmarks: ``(warped [h, w, c], flow_xy [h, w, 2])``."""
    warped, flow = sparse_image_warp(image, np.asarray(source_xy)[:, ::-1], np.asarray(dest_xy)[:, ::-1],
                                     interpolation_order, regularization_weight, num_boundary_points, resampling)
    return warped, flow[..., ::-1]
