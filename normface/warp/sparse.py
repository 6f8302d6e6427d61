"""Sparse-to-dense warps: tfa's ``sparse_image_warp`` (row, col) and normface's
``warp_to_landmarks`` (x, y): a spline through the control-point displacements gives the flow,
then the image is resampled at ``grid - flow``.
"""

from __future__ import annotations

import tensorflow as tf

from normface.warp.common import (
    as_float_tensor,
    check_finite,
    check_rank,
    check_same_dim,
    check_spline_params,
    rowcol_to_xy,
    xy_to_rowcol,
)
from normface.warp.resample import check_image, pixel_grid, warp_with_flow
from normface.warp.spline import interpolate_validated
# Default smoothing of the landmark-facing APIs (warp_to_landmarks, SplineWarp): dlib puts the
# inner-lip points of a closed mouth on top of each other, and an exact spline through two
# coincident control points is singular. This weight keeps the system solvable while moving
# control points by < 0.006 px (measured on LFW landmarks at 128x128). Defined with the NumPy
# warp, which shares it; so is boundary_points.
from normface.warp.numpy_warp import LANDMARK_REGULARIZATION, boundary_points, check_resampling  # noqa: E402,F401


# ----------------------------------------------------------------------------------------------
# Sparse (control-point) warp.
# ----------------------------------------------------------------------------------------------
def boundary_points_tf(height: tf.Tensor, width: tf.Tensor, num_boundary_points: int, dtype) -> tf.Tensor:
    """:func:`boundary_points` for a height and width known only when the graph runs.

    ``[4k, 2]`` (row, col), in the same order as :func:`boundary_points`: the edge positions are
    fixed by ``k`` (a Python int), only the spacing waits for the image size.
    """
    k = num_boundary_points
    index = boundary_points(k + 1, k + 1, k)  # integer (i, j) of the edge points on a (k+1)^2 grid
    steps = tf.cast(tf.stack([height - 1, width - 1]), dtype) / float(k)
    points = tf.constant(index, dtype) * steps
    # Pin the far edges to exactly height - 1 and width - 1 (as np.linspace does).
    far = tf.constant(index == k)
    return tf.where(far, tf.cast(tf.stack([height - 1, width - 1]), dtype)[None], points)


# tensorflow-addons' message (its InvalidArgumentError when the rank is checked as the graph runs).
IMAGE_RANK_MESSAGE = (
    "`image` must be 2/3/4D tensor ([height, width], [height, width, channels] or [batch, height, width, channels])"
)


def _to_4d(image: tf.Tensor) -> tf.Tensor:
    """tensorflow-addons' image ranks: ``[h, w]`` and ``[h, w, c]`` become ``[1, h, w, c]``.

    An image of unknown rank (traced with ``tf.TensorSpec(shape=None)``) is accepted as by the
    reference: its rank is checked when the graph runs (``InvalidArgumentError`` unless 2, 3 or
    4) and the leading / trailing 1s are padded onto its runtime shape. The result is rank 4.
    """
    rank = image.shape.rank
    if rank is None:
        check = tf.debugging.assert_rank_in(image, [2, 3, 4], message=IMAGE_RANK_MESSAGE)
        with tf.control_dependencies([check]):
            dynamic_rank = tf.rank(image)
            lead = tf.cast(dynamic_rank <= 3, tf.int32)  # rank 2 or 3: no batch axis
            trail = tf.cast(dynamic_rank == 2, tf.int32)  # rank 2: no channel axis
            shape = tf.pad(tf.shape(image), tf.reshape(tf.stack([lead, trail]), [1, 2]), constant_values=1)
            image = tf.reshape(image, shape)
        image.set_shape([None, None, None, None])
        return image
    if rank == 2:
        return image[None, :, :, None]
    if rank == 3:
        return image[None]
    check_rank(image, 4, "image", "[batch, height, width, channels] (or [height, width(, channels)])")
    return image


def _from_4d(image: tf.Tensor, original: tf.Tensor) -> tf.Tensor:
    """``image`` ``[b, h, w, c]`` back in the rank of ``original`` (the input of :func:`_to_4d`)."""
    rank = original.shape.rank
    if rank is None:
        # Unknown when traced: drop the padded axes by the rank the graph sees (as the reference).
        dynamic_rank = tf.rank(original)
        begin = tf.cast(dynamic_rank <= 3, tf.int32)
        end = 4 - tf.cast(dynamic_rank == 2, tf.int32)
        return tf.reshape(image, tf.shape(image)[begin:end])
    if rank == 2:
        return image[0, :, :, 0]
    if rank == 3:
        return image[0]
    return image


def _points(x, name: str, dtype: tf.DType) -> tf.Tensor:
    """Control points as a ``[batch, n, 2]`` float tensor of ``dtype``; rank 3 when traced with an
    unknown rank (checked when the graph runs)."""
    x = as_float_tensor(x, name, dtype)
    if x.shape.rank is None:
        return tf.ensure_shape(x, [None, None, 2], name=name)
    check_rank(x, 3, name, "[batch, n, 2]")
    return x


def sparse_image_warp(
    image,
    source_control_point_locations,
    dest_control_point_locations,
    interpolation_order: int = 2,
    regularization_weight: float = 0.0,
    num_boundary_points: int = 0,
    name: str = "sparse_image_warp",
    resampling: str = "bilinear",
) -> tuple[tf.Tensor, tf.Tensor]:
    """Warps ``image`` so that content at the source points moves to the destination points.

    tensorflow-addons' ``sparse_image_warp``, with its defaults (``interpolation_order=2``, the
    thin-plate spline; normface's own callers pass the paper's 1). The spline is fitted at the
    destination points with values ``dest - source`` and evaluated on the pixel grid to a dense
    flow; the image is then sampled at ``grid - flow`` (:func:`dense_image_warp`). Points are
    **(row, col)** pixels, as in the reference; use :func:`warp_to_landmarks` for (x, y).

    Args:
      image: ``[batch, height, width, channels]``, ``[height, width, channels]`` or
        ``[height, width]`` float image; batch, height, width and channels may be unknown when
        traced (not under ``jit_compile``, where XLA needs them static), and so may its rank
        (``tf.TensorSpec(shape=None)``, as the reference): then it is checked when the graph runs.
      source_control_point_locations: ``[batch, n, 2]`` (row, col) points in ``image`` (float;
        cast to the image's dtype). Any of its dimensions, or its rank, may be unknown when traced.
      dest_control_point_locations: ``[batch, n, 2]`` (row, col) where they should land.
      interpolation_order: polyharmonic order (1 = the paper's ``phi(r) = r``, 2 = thin plate).
      regularization_weight: smoothing ``lambda`` (0 = exact interpolation).
      num_boundary_points: ``k > 0`` pins the 4 corners plus ``k - 1`` points per edge to zero
        flow; 0 adds none.
      name: name scope.
      resampling: ``"bilinear"`` (the reference's) or ``"bicubic"`` (normface's: Catmull-Rom over
        4x4 pixels, :func:`normface.warp.resample.interpolate_bicubic_rowcol`; sharper).

    Returns:
      ``(warped_image, dense_flow)``: the warped image in the input's rank and dtype (its static
      rank unknown when the input's was, as the reference's), and the ``[batch, height, width, 2]``
      (row, col) flow in the image's dtype (batch 1 for an unbatched image).

    Raises:
      ValueError: wrong ranks, mismatched sizes, too few control points, bad order or
        regularization weight, non-float inputs; NaN/Inf inputs (eagerly).
      InvalidArgumentError: an image smaller than 2x2 (as the reference); an image traced with an
        unknown rank that is not 2, 3 or 4 when the graph runs (the reference's "`image` must be
        2/3/4D tensor"); NaN/Inf inside a graph.
    """
    with tf.name_scope(name):
        original = as_float_tensor(image, "image")
        image = _to_4d(original)
        # Control points in the image's dtype (the reference casts its grid to it).
        src = _points(source_control_point_locations, "source_control_point_locations", image.dtype)
        dst = _points(dest_control_point_locations, "dest_control_point_locations", image.dtype)
        image = check_image(image)
        for axis, what in ((0, "batch size"), (1, "number of control points"), (2, "point dimension")):
            check_same_dim(src, dst, axis, what, "source_control_point_locations", "dest_control_point_locations")
        check_same_dim(image, src, 0, "batch size", "image", "source_control_point_locations")
        if src.shape[-1] is not None and src.shape[-1] != 2:
            raise ValueError(f"control points must be [batch, n, 2] (row, col), got shape {src.shape}")
        interpolation_order = check_spline_params(interpolation_order, regularization_weight, "interpolation_order")
        check_resampling(resampling)
        if num_boundary_points < 0:
            raise ValueError(f"num_boundary_points must be >= 0, got {num_boundary_points}")
        n = src.shape[1]
        total = None if n is None else n + 4 * num_boundary_points
        if total is not None and total < 3:
            raise ValueError(
                f"need at least 3 control points (landmarks + boundary points) for a 2-D spline, got {total}"
            )
        shape = tf.shape(image)
        batch, height, width = shape[0], shape[1], shape[2]
        flows = dst - src
        points = dst
        if num_boundary_points > 0:
            anchors = boundary_points_tf(height, width, num_boundary_points, image.dtype)
            anchors = tf.tile(anchors[None], [batch, 1, 1])
            points = tf.concat([points, anchors], axis=1)
            flows = tf.concat([flows, tf.zeros_like(anchors)], axis=1)
        grid = tf.reshape(pixel_grid(height, width, image.dtype), [1, height * width, 2])
        grid = tf.tile(grid, [batch, 1, 1])
        points = check_finite(points, "dest_control_point_locations")
        flows = check_finite(flows, "control point displacements (dest - source)")
        # The pixel grid is constant: skip the query-point gradient.
        flat_flow = interpolate_validated(
            points, flows, grid, interpolation_order, regularization_weight, need_query_grad=False
        )
        dense_flow = tf.reshape(flat_flow, [batch, height, width, 2])
        dense_flow.set_shape(image.shape[:-1].concatenate([2]))
        warped = warp_with_flow(image, dense_flow, resampling)
        return _from_4d(warped, original), dense_flow


def warp_to_landmarks(
    image,
    source_xy,
    dest_xy,
    interpolation_order: int = 1,
    regularization_weight: float = LANDMARK_REGULARIZATION,
    num_boundary_points: int = 4,
    resampling: str = "bilinear",
) -> tuple[tf.Tensor, tf.Tensor]:
    """(x, y) front end of :func:`sparse_image_warp`: moves ``source_xy`` onto ``dest_xy``.

    Args:
      image: ``[batch, height, width, channels]`` float image.
      source_xy, dest_xy: ``[batch, n, 2]`` (x, y) pixel landmarks.
      interpolation_order, regularization_weight, num_boundary_points, resampling: as in sparse_image_warp
        (4 boundary points per edge keeps the image border still, as the paper's Fig. 5); the
        default smoothing (LANDMARK_REGULARIZATION) tolerates coincident landmarks.

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
        resampling=resampling,
    )
    return warped, rowcol_to_xy(flow)
