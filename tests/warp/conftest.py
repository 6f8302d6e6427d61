"""Fixtures shared by the warp tests."""

from __future__ import annotations

import pytest

from normface import warp


@pytest.fixture(params=[True, False], ids=["fused", "unfused"])
def fused(request):
    """Runs the test with the XLA-fused inner kernels, then with the plain TF ops."""
    previous = warp.fused_kernels_enabled()
    warp.set_fused_kernels(request.param)
    yield request.param
    warp.set_fused_kernels(previous)
