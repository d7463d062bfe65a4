"""Special functions for any array module (NumPy through SciPy, CuPy through cupyx)."""

from __future__ import annotations


def erf(xp, x):
    if xp.__name__ == "cupy":
        import cupyx.scipy.special as special
    else:
        import scipy.special as special
    return special.erf(x).astype(x.dtype, copy=False)
