"""normface: frontal, neutral-expression, evenly lit faces from photos in the wild.

A reproduction of Cole et al., "Synthesizing Normalized Faces from Facial Identity Features"
(CVPR 2017) on TensorFlow 2.21 / Keras 3. The package layout follows the system:

- ``normface.warp``      differentiable polyharmonic-spline image warp (paper Sec. 4) and its Keras layer.
- ``normface.paths``     where data, caches and the workspace live (one home for every path rule).
- ``normface.inference`` ``FaceNormalizer``: photo in, normalized face + landmarks out (also
  ``normface.FaceNormalizer``); ``normface.cli`` the ``normface`` command.
- ``normface.face``, ``alignment``, ``quality``, ``face3d``: faces, the template, measures, 3-D.
- ``normface.encoders``: the frozen identity encoder; ``normface.models``, ``losses``,
  ``training``: the network and its training; ``normface.data``: data preparation and records;
  ``normface.evaluation``: the report; ``adjust``, ``avatar``, ``frontalize``: applications and
  the baseline.

All public APIs, files and JSON use (x, y) pixel coordinates; only the reference-compatible warp
ops in ``normface.warp`` speak (row, col), and convert in exactly one place.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy: importing normface must not pull in TensorFlow until a model is needed.
    if name in ("FaceNormalizer", "Result"):
        from normface import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'normface' has no attribute {name!r}")
