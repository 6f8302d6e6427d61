"""Hiding what native libraries (TensorFlow, LiteRT) print to the process's stderr while they load."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterator


@contextlib.contextmanager
def hidden_native_stderr() -> Iterator[None]:
    """Sends what is written to file descriptor 2 meanwhile (C++ log lines included) to a buffer,
    written out only when the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
