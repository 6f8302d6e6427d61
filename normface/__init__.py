"""normface: frontal, neutral-expression, evenly lit faces from photos in the wild.

A reproduction of Cole et al., "Synthesizing Normalized Faces from Facial Identity Features"
(CVPR 2017) on TensorFlow 2.21 / Keras 3. The subpackages follow the system, lowest layer first
(the import contract is ``[importlinter]`` in setup.cfg, checked by ``tests/test_layers.py``;
``apps`` and ``training`` are independent siblings):

- ``normface.utils``      paths, atomic IO, dataclass IO, pictures, provenance, tables.
- ``normface.warp``       the differentiable polyharmonic-spline warp (paper Sec. 4) and its layer.
- ``normface.faces``      detection, 68 landmarks, face chips, alignment, quality, the 3-D model.
- ``normface.encoders``   the frozen identity encoder (dlib's ResNet in Keras), its registry.
- ``normface.models``     the decoder network (landmark MLP, texture CNN, warp).
- ``normface.data``       data preparation: splits, align, average, morph, composite, records.
- ``normface.training``   losses, the trainer, export.
- ``normface.serving``    the export format, ``FaceNormalizer`` (also ``normface.FaceNormalizer``),
  the shipped model, batches of files.
- ``normface.apps``       the applications: white balance / exposure, the 3-D avatar, the warp demo.
- ``normface.evaluation`` metrics, protocol, report, the applications' experiments, the baseline.
- ``normface.testing``    synthetic data and tiny models for tests and benchmarks.
- ``normface.cli``        the ``normface`` command.

All public APIs, files and JSON use (x, y) pixel coordinates; only the reference-compatible warp
ops in ``normface.warp`` speak (row, col), and convert in exactly one place.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy: importing normface must not pull in TensorFlow until a model is needed.
    if name in ("FaceNormalizer", "Result"):
        from normface.serving import normalizer

        return getattr(normalizer, name)
    raise AttributeError(f"module 'normface' has no attribute {name!r}")
