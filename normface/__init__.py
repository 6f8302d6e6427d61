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

``pip install normface`` runs the shipped model on LiteRT without TensorFlow (issue 31); training,
data preparation, evaluation, the warp and models without LiteRT files need the train extra. A
program that dies because TensorFlow (or Keras) is not installed gets one more line after its
traceback naming that extra (:func:`_name_the_train_extra`, chained onto ``sys.excepthook``).
"""

import sys

__version__ = "0.1.0"

TRAIN_EXTRA_HINT = ("normface: TensorFlow is not installed; training, data preparation, evaluation, the warp and "
                    "models without LiteRT files need it: pip install 'normface[train]'")


def _name_the_train_extra(previous):
    def excepthook(kind, value, traceback):
        previous(kind, value, traceback)
        if isinstance(value, ModuleNotFoundError) and (value.name or "").split(".")[0] in ("tensorflow", "keras"):
            print(TRAIN_EXTRA_HINT, file=sys.stderr)

    excepthook.normface_train_extra = True
    return excepthook


if not getattr(sys.excepthook, "normface_train_extra", False):
    sys.excepthook = _name_the_train_extra(sys.excepthook)


def __getattr__(name: str):
    # Lazy: importing normface must not pull in TensorFlow until a model is needed.
    if name in ("FaceNormalizer", "Result"):
        from normface.serving import normalizer

        return getattr(normalizer, name)
    raise AttributeError(f"module 'normface' has no attribute {name!r}")
