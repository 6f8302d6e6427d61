"""Small file helpers shared by the library and binaries: atomic writes, image reading.

Every output is written to a temporary file in the destination folder and renamed into place,
so an interrupted run never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

# Photos above this many pixels are refused before decoding (decompression bombs; 100 MP).
__all__ = ["MAX_PIXELS", "atomic_path", "is_url", "write_bytes_atomic", "save_image_atomic", "read_rgb"]

MAX_PIXELS = 100_000_000


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` if the block succeeds.

    ``suffix`` defaults to ``path``'s own suffix so writers that infer a format from it work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=path.suffix if suffix is None else suffix, dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the output the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def is_url(path: str | os.PathLike) -> bool:
    """True for a ``scheme://`` path (``gs://``, ``s3://``...): written through ``tf.io.gfile``."""
    return "://" in str(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically: a local path, or any ``tf.io.gfile`` URL (written
    to a temporary name beside it, then renamed)."""
    if not is_url(path):
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        return
    import tensorflow as tf

    folder, name = str(path).rsplit("/", 1)
    tf.io.gfile.makedirs(folder)
    tmp = f"{folder}/.{name}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(data)
    tf.io.gfile.rename(tmp, str(path), overwrite=True)


def save_image_atomic(path: str | os.PathLike, image: np.ndarray) -> None:
    """Saves an RGB ``[h, w, 3]`` uint8 (or float in [0, 255]) image; format from the suffix."""
    from PIL import Image

    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp)


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as ``[h, w, 3]`` uint8 RGB (greyscale, palette, alpha and CMYK converted).

    Raises ValueError naming the file when it cannot be decoded or is larger than MAX_PIXELS.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ValueError(f"{im.width}x{im.height} is larger than {MAX_PIXELS // 1_000_000} MP")
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit greyscale: scale to 8 bits rather than clip.
                arr = np.asarray(im, dtype=np.float64)
                top = 65535.0 if arr.max() > 255 else 255.0
                arr = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
                return np.repeat(arr[..., None], 3, axis=-1)
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from err
