"""Old path of :mod:`normface.faces.detection` and :mod:`normface.faces.chips` (detection,
landmarks, ``extract_chips``), kept so code written before the regroup keeps working. New code
imports from ``normface.faces``."""

from normface.faces.chips import *  # noqa: F401,F403
from normface.faces.detection import *  # noqa: F401,F403


def detect_faces68(image, upsample: int = 0, max_upsample: int = 1):
    """Old name of :func:`normface.faces.detection.find_faces68` (which replaced it), detecting
    on the photo at full size as this function did."""
    from normface.faces.detection import find_faces68

    return find_faces68(image, max_side=max(image.shape[:2]), upsample=upsample, max_upsample=max_upsample)
