"""Old path of :mod:`normface.utils.io_utils` (atomic file IO, ``read_rgb``), kept so code written
before the regroup keeps working. New code imports ``normface.utils.io_utils``."""

from normface.utils.io_utils import *  # noqa: F401,F403
from normface.utils.io_utils import __all__  # noqa: F401
