"""Small file helpers shared by the library and binaries: atomic writes, image reading.

Every output is written to a temporary file in the destination folder and renamed into place,
so an interrupted run never leaves a half-written file under a final name. The temporary names
(``.<name>.normface-tmp-<pid>.<random><suffix>``) carry the writer's process id, so a later run
can remove those of a killed one (:func:`remove_stale_temps`) without touching a live writer's.

Photos are read upright and in sRGB (:func:`read_image`): the EXIF orientation is applied and an
embedded ICC profile is converted to sRGB; :func:`save_photo_atomic` writes a changed photo back
with its EXIF (Orientation reset to 1) and ICC profile.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import io
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Iterator

import numpy as np

# Photos above this many pixels are refused before decoding (decompression bombs; 100 MP).
__all__ = ["MAX_PIXELS", "atomic_path", "is_url", "write_bytes_atomic", "save_image_atomic", "read_rgb",
           "read_image", "read_image_bytes", "Photo", "save_photo_atomic", "remove_stale_temps", "unwritable_reason", "os_error_text"]

MAX_PIXELS = 100_000_000
TEMP_MARK = ".normface-tmp-"
_TEMP_NAME = re.compile(r"^\..+" + re.escape(TEMP_MARK) + r"(\d+)\.[^/]*$")
JPEG_QUALITY = 95  # photos written back (normface adjust)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` if the block succeeds.

    ``suffix`` defaults to ``path``'s own suffix so writers that infer a format from it work.
    The temporary file is removed whatever happens in the block (also on SystemExit).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}{TEMP_MARK}{os.getpid()}.", suffix=path.suffix if suffix is None else suffix,
        dir=path.parent,
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


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Removes the temporary files of :func:`atomic_path` under ``folder`` (recursively) whose
    writing process is gone (an interrupted run); returns them. Other files are never touched."""
    removed = []
    for dirpath, _, names in os.walk(folder):
        for name in names:
            match = _TEMP_NAME.match(name)
            if match and not _pid_alive(int(match.group(1))):
                path = Path(dirpath) / name
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    return removed


def unwritable_reason(path: str | os.PathLike, folder: bool = False) -> str | None:
    """Why ``path`` (a file, or with ``folder`` a folder) cannot be created, from the path alone:
    an ancestor (or, for a folder, the path itself) is an existing non-folder, or a file path is
    an existing folder. None when nothing rules it out (permissions and space are not checked)."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if folder and not path.is_dir():
            return f"{path} exists and is not a folder"
        if not folder and path.is_dir():
            return f"{path} is a folder"
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a folder"
            break
        if parent.is_symlink():
            return f"{parent} is a broken symbolic link"
    return None


def os_error_text(err: OSError) -> str:
    """An OSError as one short line: the reason, then the file (``No space left on device: x.png``)."""
    reason = err.strerror or (errno.errorcode.get(err.errno, "") if err.errno else "") or str(err)
    name = err.filename
    if name is not None and TEMP_MARK in os.path.basename(str(name)):
        name = None  # the temporary name means nothing to the user; the caller names the output
    return f"{reason}: {name}" if name is not None else reason


def is_url(path: str | os.PathLike) -> bool:
    """True for a ``scheme://`` path (``gs://``, ``s3://``...): written through ``tf.io.gfile``."""
    return "://" in str(path)


def file_sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def write_report(folder: str | os.PathLike, stem: str, markdown: str, data: dict) -> None:
    """An experiment's results: ``<stem>.md`` (the text a person reads) and ``<stem>.json`` (the
    same numbers for the next script), each written atomically into ``folder``."""
    import json

    folder = Path(folder)
    write_bytes_atomic(folder / f"{stem}.md", markdown.encode())
    write_bytes_atomic(folder / f"{stem}.json", json.dumps(data, indent=1).encode())


# zlib level of the PNGs normface writes and serves: level 1 encodes a 128x128 face in ~1.2 ms
# against ~3.4 ms at Pillow's default 6, for files ~16% larger (measured 2026-12-04 on a London
# sample): at batch speed the encoder was a fifth of a face's CPU time, in the server a sixth of
# all its CPU. Lossless either way.
PNG_COMPRESS_LEVEL = 1


def png_bytes(image: np.ndarray) -> bytes:
    """An RGB ``[h, w, 3]`` (or grey ``[h, w]``) uint8 image as PNG bytes, at
    :data:`PNG_COMPRESS_LEVEL` (what the server answers with)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def save_image_atomic(path: str | os.PathLike, image: np.ndarray) -> None:
    """Saves an RGB ``[h, w, 3]`` uint8 (or float in [0, 255]) image; format from the suffix
    (PNG at :data:`PNG_COMPRESS_LEVEL`)."""
    from PIL import Image

    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        options = {"compress_level": PNG_COMPRESS_LEVEL} if tmp.suffix.lower() == ".png" else {}
        Image.fromarray(array).save(tmp, **options)


def read_rgb(path: str | os.PathLike, data: bytes | None = None) -> np.ndarray:
    """Reads an image file as ``[h, w, 3]`` uint8 sRGB, upright (:func:`read_image`'s pixels;
    ``data``: its bytes, already read).

    Raises ValueError naming the file when it cannot be decoded or is larger than MAX_PIXELS,
    OSError (FileNotFoundError...) when it cannot be opened.
    """
    return read_image(path, data).pixels


@dataclasses.dataclass
class Photo:
    """A photo as :func:`read_image` read it.

    pixels: ``[h, w, 3]`` uint8, sRGB, upright (EXIF orientation applied). format: Pillow's
    format name ("JPEG", "PNG"...). exif: the file's EXIF with Orientation reset to 1 (None when
    it had none or it is unreadable). icc_profile: the file's embedded ICC profile (the pixels were
    converted from it to sRGB), None for none. converted_from_icc: whether that conversion ran
    (False when the profile was unusable and the pixels were taken as sRGB). jpeg_subsampling:
    Pillow's JPEG subsampling code of a JPEG (0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0), else None.
    """

    pixels: np.ndarray
    format: str | None = None
    exif: bytes | None = None
    icc_profile: bytes | None = None
    converted_from_icc: bool = False
    jpeg_subsampling: int | None = None


@functools.lru_cache(maxsize=1)
def _srgb():
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _kept_exif(im) -> bytes | None:
    from PIL import ExifTags

    try:
        exif = im.getexif()
        if not len(exif):
            return None
        if ExifTags.Base.Orientation in exif:
            exif[ExifTags.Base.Orientation] = 1  # the pixels are stored upright from now on
        return exif.tobytes()
    except Exception:  # noqa: BLE001 -- unreadable EXIF: the photo is still usable, the EXIF is not kept
        return None


def _to_srgb(im, icc: bytes | None):
    """``im`` as an RGB (or, for 16-bit greyscale, unchanged) image in sRGB; (image, converted)."""
    from PIL import ImageCms

    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return im, False  # high-bit-depth greyscale: no colour management, scaled below
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            base = im if im.mode in ("RGB", "CMYK", "L") else im.convert("RGB")
            return ImageCms.profileToProfile(base, source, _srgb(), outputMode="RGB"), True
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # an unusable or mismatched profile: take the pixels as sRGB, as without one
    return im.convert("RGB"), False


def read_image(path: str | os.PathLike, data: bytes | None = None) -> Photo:
    """Reads a photo upright and in sRGB, with what is needed to write it back (:class:`Photo`).

    Converts greyscale, palette, alpha, CMYK and 16-bit images to 8-bit RGB; applies the EXIF
    orientation; converts an embedded ICC profile to sRGB. Raises OSError (FileNotFoundError,
    PermissionError...) when the file cannot be opened, ValueError naming the file when it is
    not a regular file, cannot be decoded or is larger than MAX_PIXELS. ``data``: the file's
    bytes, already read (e.g. from a ``gs://`` path through Apache Beam's filesystems); ``path``
    then only names it in errors, and the same decoding applies.
    """
    import stat

    if data is not None:
        return _decode_image(io.BytesIO(data), str(path))
    path = Path(path)
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ValueError(f"{path}: not a regular file")
    with open(path, "rb") as handle:
        return _decode_image(handle, str(path))


def read_image_bytes(data: bytes, name: str) -> Photo:
    """:func:`read_image` for the bytes of an image file held in memory (an HTTP upload);
    ``name`` (the uploaded file's name) is the one the ValueError names."""
    return read_image(name, data)


def _decode_image(handle: IO[bytes], name: str) -> Photo:
    import warnings

    from PIL import Image, ImageOps, JpegImagePlugin

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning: the size is checked here
            with Image.open(handle) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise ValueError(f"{im.width}x{im.height} is larger than {MAX_PIXELS // 1_000_000} MP")
                im.load()
                icc = im.info.get("icc_profile") or None
                subsampling = None
                if im.format == "JPEG":
                    subsampling = JpegImagePlugin.get_sampling(im)
                    subsampling = subsampling if subsampling >= 0 else None
                try:
                    upright = ImageOps.exif_transpose(im)
                except Exception:  # noqa: BLE001 -- a corrupt orientation tag: keep the stored orientation
                    upright = im
                exif = _kept_exif(im)  # after the transpose: it resets the Orientation tag
                rgb, converted = _to_srgb(upright, icc)
                if rgb.mode != "RGB":
                    # 16-bit greyscale: scale to 8 bits rather than clip.
                    arr = np.asarray(rgb, dtype=np.float64)
                    top = 65535.0 if arr.max() > 255 else 255.0
                    arr = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
                    pixels = np.repeat(arr[..., None], 3, axis=-1)
                else:
                    pixels = np.asarray(rgb, dtype=np.uint8)
                return Photo(pixels, im.format, exif, icc, converted, subsampling)
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 -- decoders raise many types (OSError, SyntaxError, struct.error...)
        from PIL import UnidentifiedImageError

        reason = "unknown format or damaged header" if isinstance(err, UnidentifiedImageError) else str(err)
        raise ValueError(f"{name}: not a readable image ({reason})") from err


def save_photo_atomic(path: str | os.PathLike, pixels: np.ndarray, like: Photo | None = None,
                      quality: int = JPEG_QUALITY) -> None:
    """Writes sRGB ``pixels`` ``[h, w, 3]`` as a photo read by :func:`read_image` (``like``) would
    be: its EXIF (Orientation 1: the pixels are upright), its ICC profile (the pixels converted
    back into it when it is an RGB profile; otherwise sRGB's is embedded), JPEG at ``quality``
    with the input's chroma subsampling, PNG losslessly. The format comes from the suffix."""
    from PIL import Image, ImageCms

    image = Image.fromarray(np.asarray(pixels, dtype=np.uint8))
    options: dict = {}
    if like is not None and like.icc_profile:
        options["icc_profile"] = _srgb().tobytes()
        if like.converted_from_icc:
            try:
                source = ImageCms.ImageCmsProfile(io.BytesIO(like.icc_profile))
                if source.profile.xcolor_space.strip() == "RGB":
                    image = ImageCms.profileToProfile(image, _srgb(), source, outputMode="RGB")
                    options["icc_profile"] = like.icc_profile
            except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
                pass
    if like is not None and like.exif:
        options["exif"] = like.exif
    if Path(path).suffix.lower() in (".jpg", ".jpeg"):
        options["quality"] = quality
        if like is not None and like.jpeg_subsampling is not None:
            options["subsampling"] = like.jpeg_subsampling
    with atomic_path(path) as tmp:
        image.save(tmp, **options)
