"""normface: frontal, neutral-expression, evenly lit faces from photos in the wild.

A reproduction of Cole et al., "Synthesizing Normalized Faces from Facial Identity Features"
(CVPR 2017) on TensorFlow 2.21 / Keras 3. The package layout follows the system:

- ``normface.warp``      differentiable polyharmonic-spline image warp (paper Sec. 4) and its Keras layer.
- ``normface.paths``     where data, caches and the workspace live (one home for every path rule).

All public APIs, files and JSON use (x, y) pixel coordinates; only the reference-compatible warp
ops in ``normface.warp`` speak (row, col), and convert in exactly one place.
"""

__version__ = "0.1.0"
