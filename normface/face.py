"""Old path of :mod:`normface.faces.detection` and :mod:`normface.faces.chips` (detection,
landmarks, ``extract_chips``), kept so code written before the regroup keeps working. New code
imports from ``normface.faces``."""

from normface.faces.chips import *  # noqa: F401,F403
from normface.faces.detection import *  # noqa: F401,F403
