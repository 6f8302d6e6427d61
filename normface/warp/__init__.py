"""Differentiable polyharmonic-spline image warp (Cole et al. 2017, Sec. 4, Algorithm 1).

The decoder predicts a registered texture and 68 landmarks; this package moves the texture so the
mean landmarks land on the predicted ones. A dense flow field is interpolated from the sparse
landmark displacements with a polyharmonic spline, then the image is resampled bilinearly at
``grid - flow``. Every step is differentiable in the image, the control points and the values.

It replaces ``tensorflow_addons.image`` (end-of-life, fails to import on TF >= 2.16) and keeps that
reference's conventions for the three ops it shared, so its golden outputs check ours:

- ``interpolate_spline`` (:mod:`.spline`): fit at ``train_points`` ``[b, n, d]``, evaluate at
  ``query_points``.
- ``sparse_image_warp`` (:mod:`.sparse`): points are **(row, col)** pixels; the spline is fitted
  at the destination points with values ``dest - source``; optional zero-flow boundary points.
- ``dense_image_warp`` (:mod:`.resample`): samples ``image`` at ``grid - flow`` (flow in
  (row, col)), border-clamped.

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
"""

from normface.warp.common import rowcol_to_xy, xy_to_rowcol
from normface.warp.layer import SplineWarp
from normface.warp.resample import dense_image_warp, resample_bilinear
from normface.warp.sparse import (
    LANDMARK_REGULARIZATION,
    boundary_points,
    sparse_image_warp,
    warp_to_landmarks,
)
from normface.warp.spline import EPSILON, fused_kernels_enabled, interpolate_spline, set_fused_kernels

__all__ = [
    "EPSILON", "LANDMARK_REGULARIZATION", "SplineWarp", "boundary_points", "dense_image_warp",
    "fused_kernels_enabled", "interpolate_spline", "resample_bilinear", "rowcol_to_xy",
    "set_fused_kernels", "sparse_image_warp", "warp_to_landmarks", "xy_to_rowcol",
]
