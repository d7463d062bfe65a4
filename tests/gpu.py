"""Whether the CuPy backend can run here; tests that need it skip, visibly, with the reason."""

from __future__ import annotations

import importlib.util

import pytest


def cupy_unavailable() -> str | None:
    """Why CuPy cannot run here, or None when it can."""
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed (pip install cupy-cuda12x)"
    import cupy
    try:
        if not cupy.is_available():
            return "CuPy is installed but no CUDA device is available"
    except Exception as exc:  # a broken driver install raises instead of returning False
        return f"CuPy cannot reach a CUDA device: {exc}"
    return None


REASON = cupy_unavailable()
NEEDS_CUPY = [pytest.mark.gpu, pytest.mark.skipif(REASON is not None, reason=str(REASON))]
