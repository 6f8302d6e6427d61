"""Where normface finds its data, caches and workspace.

One home for every path rule, so tests, binaries and the library agree:

- Face data (LFW, studio sets, the Surrey model): ``$NORMFACE_DATA``, else ``../shared/data``
  next to the repository root (the layout of this project's machines).
- Caches (converted models and the like): ``$NORMFACE_CACHE``, else ``$XDG_CACHE_HOME/normface``,
  else ``~/.cache/normface``; never inside site-packages.
- Workspace (aligned faces, TFRecords, runs): ``$NORMFACE_WORKSPACE``, else ``./workspace``.

Model cards and reports name paths portably (:func:`portable`): relative to the workspace
(``workspace/runs/r128``), the face data (``$NORMFACE_DATA/lfw``), the cache, the repository or
the installed package (``archive/normface128-v1``), the home folder (``~/...``) or the folder
beside the repository (``../shared/...``), never as this machine's absolute paths.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_ENV = "NORMFACE_DATA"
CACHE_ENV = "NORMFACE_CACHE"
WORKSPACE_ENV = "NORMFACE_WORKSPACE"


def data_dir() -> Path:
    """The face-data root: ``$NORMFACE_DATA`` or ``<repo>/../shared/data`` (may not exist)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "data").resolve()


def require_data_dir() -> Path:
    """Like :func:`data_dir`, but raises FileNotFoundError naming the variable when absent."""
    root = data_dir()
    if not root.is_dir():
        raise FileNotFoundError(
            f"face data not found at {root}; set {DATA_ENV} to the folder holding lfw/ and studio/"
        )
    return root


def _cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "normface"


def cache_dir() -> Path:
    """A writable per-user cache folder (created on demand)."""
    root = _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


def workspace_dir() -> Path:
    """The on-disk workspace root (see WORKSPACE.md); not created here."""
    return Path(os.environ.get(WORKSPACE_ENV, "workspace")).expanduser()


# --- portable paths for cards and reports --------------------------------------------------------

# An absolute path inside free text: a "/" not preceded by a path or URL character, then path parts.
_ABSOLUTE_IN_TEXT = re.compile(r"(?<![\w.~:/$-])/[\w.+@%=~-]+(?:/[\w.+@%=~-]*)*")


def _roots() -> list[tuple[Path, str]]:
    """(folder, how a card names it); the deepest folder holding a path names it."""
    package_parent = Path(__file__).resolve().parents[2]  # the repository, or site-packages
    roots = [(REPO_ROOT, ""), (package_parent, ""), (workspace_dir(), "workspace"), (data_dir(), f"${DATA_ENV}"),
             (_cache_root(), f"${CACHE_ENV}"), (Path.home(), "~")]
    if len(REPO_ROOT.parent.parts) > 1:  # beside the repository, as ../shared/ on this project's machines
        roots.append((REPO_ROOT.parent, ".."))
    return roots


def portable(path: str | os.PathLike) -> str:
    """``path`` as a card or report names it: relative to the workspace (``workspace/...``), the
    face data (``$NORMFACE_DATA/...``), the cache (``$NORMFACE_CACHE/...``), the repository or the
    installed package (``archive/normface128-v1``), the home folder (``~/...``) or the repository's
    parent (``../shared/judges/...``), whichever holds it most closely; a relative path as it is;
    any other absolute path as ``.../<parent>/<name>``."""
    given = Path(os.fspath(path)).expanduser()
    if not given.is_absolute():
        return given.as_posix()
    forms = {Path(os.path.normpath(given)), given.resolve()}
    best: tuple[int, str] | None = None
    for root, label in _roots():
        for root_form in {Path(os.path.normpath(root.expanduser().absolute())), root.expanduser().resolve()}:
            for form in forms:
                try:
                    rel = form.relative_to(root_form)
                except ValueError:
                    continue
                depth = len(root_form.parts)
                if best is None or depth > best[0]:
                    text = "/".join(part for part in (label, rel.as_posix()) if part and part != ".")
                    best = (depth, text or ".")
    if best is not None:
        return best[1]
    return ".../" + "/".join(given.parts[-2:])


def portable_text(text: str) -> str:
    """``text`` with every absolute path of this machine in it made :func:`portable`; a path
    whose first folder does not exist here (``/v1/normalize``, a path of another machine) is
    left as written."""

    def swap(match: re.Match) -> str:
        found = match.group(0)
        first = found.split("/")[1]
        return portable(found) if first and Path("/", first).is_dir() else found

    return _ABSOLUTE_IN_TEXT.sub(swap, text)


def portable_values(value: Any) -> Any:
    """:func:`portable_text` applied to every string (and path) in nested dicts, lists and tuples."""
    if isinstance(value, dict):
        return {k: portable_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(portable_values(v) for v in value)
    if isinstance(value, os.PathLike):
        return portable(value)
    if isinstance(value, str):
        return portable_text(value)
    return value


MODELS_PACKAGE = "face-recognition-models"


def dlib_model_file(filename: str) -> Path:
    """A dlib model file shipped by the PyPI package ``face-recognition-models``.

    Located without importing that package (its ``__init__`` needs ``pkg_resources``, which
    setuptools >= 82 no longer has). Raises FileNotFoundError naming the package to install.
    """
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{filename} not found: install the PyPI package `{MODELS_PACKAGE}`")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: reinstall the PyPI package `{MODELS_PACKAGE}`")
    return path


JUDGE_ENV = "NORMFACE_JUDGE"


def judge_file() -> Path:
    """The independent identity judge's network file (evaluation only, never training or serving):
    ``$NORMFACE_JUDGE``, else ``<repo>/../shared/judges/mobilefacenet/MobileFaceNet.tflite``
    (may not exist)."""
    env = os.environ.get(JUDGE_ENV)
    if env:
        return Path(env).expanduser()
    return (REPO_ROOT.parent / "shared" / "judges" / "mobilefacenet" / "MobileFaceNet.tflite").resolve()
