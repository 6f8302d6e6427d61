"""The paper's applications of the normalized face (Sec. 7.3-7.4), on serving's ``FaceNormalizer``:

- :func:`auto_adjust` (:mod:`.adjust`): Appendix C white balance and exposure, shifting a photo
  so its face's mean colour becomes the normalized face's;
- :func:`make_avatar` (:mod:`.avatar`): fit the Surrey model to 68 landmarks, colour it from the
  image, write a mesh (:mod:`.mesh_io`) and a picture from two angles (:mod:`.render`);
- :mod:`.warp_demo`: the spline warp alone, on a photo.

Their experiments live in :mod:`normface.evaluation`; nothing here imports training or evaluation.
"""

from normface.apps.adjust import Adjustment, auto_adjust
from normface.apps.avatar import AvatarResult, make_avatar

__all__ = ["Adjustment", "AvatarResult", "auto_adjust", "make_avatar"]
