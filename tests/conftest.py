"""Shared pytest fixtures: the face-data root and the warp golden fixtures.

Tests that need ../shared/data (or $NORMFACE_DATA) take the ``data_root`` fixture, which skips
with the reason spelled out only when the folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tempfile  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Converted models go to a throwaway cache, not the user's ~/.cache/normface.
os.environ.setdefault("NORMFACE_CACHE", tempfile.mkdtemp(prefix="normface-test-cache-"))

from normface.utils import paths


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = paths.data_dir()
    if not (root / "lfw").is_dir():
        pytest.skip(f"face data absent: {root} has no lfw/ (set {paths.DATA_ENV})")
    return root


@pytest.fixture(scope="session")
def fixtures_root() -> Path:
    """``../shared/fixtures`` beside the data root (golden outputs of retired references)."""
    root = Path(os.environ.get("NORMFACE_FIXTURES", paths.data_dir().parent / "fixtures"))
    if not root.is_dir():
        pytest.skip(f"golden fixtures absent: {root} (set NORMFACE_FIXTURES)")
    return root
