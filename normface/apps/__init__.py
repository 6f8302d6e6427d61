"""The paper's applications of the normalized face (Sec. 7.3-7.4), on serving's ``FaceNormalizer``:

- :func:`auto_adjust` (:mod:`.adjust`): Appendix C white balance and exposure, shifting a photo
  so its face's mean colour becomes the normalized face's;
- :func:`make_avatar` (:mod:`.avatar`): fit the Surrey model to 68 landmarks, colour it from the
  image, write a mesh (:mod:`.mesh_io`) and a picture from two angles (:mod:`.render`);
- :mod:`.warp_demo`: the spline warp alone, on a photo.

Their experiments live in :mod:`normface.evaluation`; nothing here imports training or evaluation.
The names below load with their module on first use: the avatar fit needs TensorFlow (the train
extra), the white balance does not (``normface adjust`` runs without it, issue 31).
"""

import importlib

_EXPORTS = {"Adjustment": "adjust", "auto_adjust": "adjust", "AvatarResult": "avatar", "make_avatar": "avatar"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"normface.apps.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'normface.apps' has no attribute {name!r}")
