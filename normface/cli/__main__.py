"""``python -m normface.cli``: the ``normface`` command."""

import sys

from normface.cli import main

sys.exit(main())
