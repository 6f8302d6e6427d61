"""Differentiable polyharmonic-spline image warp (Cole et al. 2017, Sec. 4, Algorithm 1).

The decoder predicts a registered texture and 68 landmarks; this package moves the texture so the
mean landmarks land on the predicted ones. A dense flow field is interpolated from the sparse
landmark displacements with a polyharmonic spline, then the image is resampled bilinearly at
``grid - flow``. Every step is differentiable in the image, the control points and the values.

It replaces ``tensorflow_addons.image`` (end-of-life, fails to import on TF >= 2.16) as a drop-in
for its four warp functions: replace ``tfa.image.X`` with ``normface.warp.X``. Same signatures,
defaults, conventions and outputs, so that reference's golden outputs check ours:

- ``interpolate_spline`` (:mod:`.spline`): fit at ``train_points`` ``[b, n, d]``, evaluate at
  ``query_points``.
- ``sparse_image_warp`` (:mod:`.sparse`): points are **(row, col)** pixels; the spline is fitted
  at the destination points with values ``dest - source``; optional zero-flow boundary points;
  ``interpolation_order`` defaults to 2, as the reference's (normface's own callers pass the
  paper's 1); 2-D, 3-D and 4-D images.
- ``dense_image_warp`` (:mod:`.resample`): samples ``image`` at ``grid - flow`` (flow in
  (row, col)), border-clamped; a ``tf.function``, as the reference's.
- ``interpolate_bilinear`` (:mod:`.resample`): ``indexing="ij"`` (row, col) or ``"xy"``; a
  ``tf.function``.

Batch, height, width and channels may be unknown when traced (``tf.function`` with an
``input_signature`` of ``None`` dimensions); under ``jit_compile=True`` XLA needs them static. So may
the rank of an image, as in the reference (``tf.TensorSpec(shape=None)``): ``sparse_image_warp``
checks it when the graph runs (the reference's ``InvalidArgumentError`` "`image` must be 2/3/4D
tensor" unless 2, 3 or 4) and returns the warped image with an unknown static rank, as the
reference does; ``dense_image_warp`` and ``interpolate_bilinear`` take a grid of unknown rank too.
``interpolate_spline`` raises the reference's ``ValueError`` when ``train_points`` or
``train_values`` has an unknown rank (naming it); ``query_points`` may.
Image and flow (or grid and query points) may have different float dtypes: the query points are
formed in the flow's dtype and the result has the image's, as in the reference. A too-small image
raises the reference's ``InvalidArgumentError`` ("Grid height must be at least 2." / "Grid width
must be at least 2."), as do ``interpolate_bilinear``'s shape errors.

Deliberate differences from the reference:

- float32 accuracy: distances and conditioning below make float32 results agree with the
  float64 ones (flow within 1e-3 px at 224x224), where the reference's float32 flow is ~0.6 px
  off; so float32 outputs differ from the reference's float32 outputs by up to that error.
- extra input checks, ``ValueError`` naming the argument at trace time: ranks, matching batch
  sizes, point counts and dimensions, at least ``d + 1`` control points, a positive integer
  order, a non-negative regularization weight, float inputs; and finite values (``ValueError``
  eagerly, ``InvalidArgumentError`` inside a graph, so always the latter from the
  ``tf.function`` ops ``dense_image_warp`` and ``interpolate_bilinear``).
- ``interpolate_spline``: ``order`` defaults to 1 (the reference requires it); values and query
  points are cast to ``train_points``' float dtype (the reference fails on mixed dtypes); rank-3
  inputs whose point or value dimension (d, k) is unknown when traced run (the reference raises
  ``ValueError``; issue 19).
- ``sparse_image_warp``: control points are cast to the image's float dtype (the reference
  needs them to match it); control points of unknown rank run without boundary points too (they
  are ``[batch, n, 2]``; the reference's spline cannot tell the 2 there and raises ``ValueError``).

Coordinates: those three speak (row, col) for compatibility. The rest of normface speaks (x, y);
:func:`warp_to_landmarks`, :func:`resample_bilinear` and :class:`SplineWarp` (:mod:`.layer`) take
(x, y) and convert in exactly one place, :func:`xy_to_rowcol` (:mod:`.common`).

Beyond the reference, for accuracy and speed:

- Distances are explicit coordinate differences, not ``|q|^2 + |c|^2 - 2 q.c`` (whose cancellation
  costs ~0.6 px of float32 flow at 224x224).
- Control points are centred and scaled to unit size before the solve. Polyharmonic splines are
  invariant to translation and (for odd orders and order 2, with the regularization weight scaled
  to match) to scale, so the interpolant is mathematically unchanged; the float32 system is far
  better conditioned.
- The kernel evaluation ``phi(|q - c|) @ w`` has a hand-written gradient that needs two batched
  matmuls instead of autodiff through every ``[b, m, n]`` intermediate.
- Each input's gradient, of the kernel evaluation and of the bilinear resampling, is its own
  (XLA-compiled) kernel, so inside a graph only the gradients asked for are computed: the
  gradient w.r.t. the source points alone skips the image's and the destination points' (issue 31).
"""

import importlib
import sys

# Lazy (PEP 562): ``normface.warp.numpy_warp`` serves inference without TensorFlow, so importing
# the package must not import the TensorFlow modules until one of their names is used.
_SOURCES = {
    "rowcol_to_xy": "common", "xy_to_rowcol": "common", "SplineWarp": "layer",
    "dense_image_warp": "resample", "interpolate_bilinear": "resample", "resample_bilinear": "resample",
    "LANDMARK_REGULARIZATION": "sparse", "boundary_points": "sparse", "sparse_image_warp": "sparse",
    "warp_to_landmarks": "sparse", "EPSILON": "spline", "fused_kernels_enabled": "spline",
    "interpolate_spline": "spline", "set_fused_kernels": "spline",
}


def __getattr__(name: str):
    if name in _SOURCES:
        return getattr(importlib.import_module(f"normface.warp.{_SOURCES[name]}"), name)
    raise AttributeError(f"module 'normface.warp' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SOURCES))


# Once Keras is loaded the TensorFlow modules cost nothing more: import them now, so SplineWarp is
# registered with Keras before any ``.keras`` file that holds it is deserialized.
if "keras" in sys.modules or "tensorflow" in sys.modules:
    from normface.warp import layer as _layer  # noqa: E402,F401


__all__ = [
    "EPSILON", "LANDMARK_REGULARIZATION", "SplineWarp", "boundary_points", "dense_image_warp",
    "fused_kernels_enabled", "interpolate_bilinear", "interpolate_spline", "resample_bilinear", "rowcol_to_xy",
    "set_fused_kernels", "sparse_image_warp", "warp_to_landmarks", "xy_to_rowcol",
]
