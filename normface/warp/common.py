"""Coordinates and argument checks shared by the warp ops.

normface speaks (x, y) pixels; the three tensorflow-addons-compatible ops speak (row, col).
:func:`xy_to_rowcol` is the one place the two meet. The checks raise ``ValueError`` naming the
argument, at trace time where shapes are static.
"""

from __future__ import annotations

import tensorflow as tf


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
def check_rank(x: tf.Tensor, rank: int, name: str, shape_doc: str) -> None:
    if x.shape.rank is not None and x.shape.rank != rank:
        raise ValueError(f"{name} must have rank {rank} {shape_doc}, got shape {x.shape}")


def check_known_rank(x: tf.Tensor, rank: int, name: str, shape_doc: str, function: str) -> None:
    """Refuses a tensor traced with an unknown rank (``tf.TensorSpec(shape=None)``) where
    tensorflow-addons' ``function`` raises ``ValueError`` too."""
    if x.shape.rank is None:
        raise ValueError(
            f"{name} has an unknown rank; {function} needs it known when traced (rank {rank}, {shape_doc}), as "
            f"tensorflow-addons does: a signature such as tf.TensorSpec({[None] * rank}) will do"
        )


def check_same_dim(a: tf.Tensor, b: tf.Tensor, axis: int, what: str, name_a: str, name_b: str) -> None:
    da, db = a.shape[axis], b.shape[axis]
    if da is not None and db is not None and da != db:
        raise ValueError(f"{what} mismatch: {name_a} has {da}, {name_b} has {db}")


def assert_grid_size(image: tf.Tensor, name: str) -> tf.Tensor:
    """``image`` ``[batch, height, width, channels]``, checked to be at least 2x2 pixels.

    Raises tensorflow-addons' error, ``InvalidArgumentError`` "Grid height/width must be at least
    2.", callers match it: at trace time when the size is static, else when the graph runs.
    """
    checks = []
    for axis, what in ((1, "height"), (2, "width")):
        size = image.shape[axis] if image.shape.rank is not None else None
        size = tf.shape(image)[axis] if size is None else size
        check = tf.debugging.assert_greater_equal(
            size, 2, message=f"Grid {what} must be at least 2. ({name} is [batch, height, width, channels])"
        )
        if check is not None:
            checks.append(check)
    if not checks or tf.executing_eagerly():
        return image
    with tf.control_dependencies(checks):
        return tf.identity(image)


def check_finite(x: tf.Tensor, name: str) -> tf.Tensor:
    if tf.executing_eagerly():
        if not bool(tf.reduce_all(tf.math.is_finite(x))):
            raise ValueError(f"{name} contains NaN or Inf values")
        return x
    # Inside tf.function: a graph assertion (a no-op under XLA, which drops Assert ops).
    return tf.debugging.assert_all_finite(x, f"{name} contains NaN or Inf values")


def check_spline_params(order, regularization_weight: float, order_name: str = "order") -> int:
    """Validates the spline's order and smoothing weight; returns the order as an int."""
    if int(order) != order or order < 1:
        raise ValueError(f"{order_name} must be a positive integer, got {order}")
    if regularization_weight < 0:
        raise ValueError(f"regularization_weight must be >= 0, got {regularization_weight}")
    return int(order)


def as_float_tensor(x, name: str, dtype=None) -> tf.Tensor:
    x = tf.convert_to_tensor(x, dtype=dtype, name=name)
    if not x.dtype.is_floating:
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype.name}")
    return x
