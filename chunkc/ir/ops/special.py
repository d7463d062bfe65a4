"""Special functions for any array module (NumPy through SciPy, CuPy through cupyx)."""

from __future__ import annotations


def _special(xp):
    if xp.__name__ == "cupy":
        import cupyx.scipy.special as special
    else:
        import scipy.special as special
    return special


def erf(xp, x):
    """A fresh array erf(x) of x's dtype, laid out like x (as ufuncs lay out their results)."""
    out = xp.empty_like(x) if x.dtype.kind == "f" else xp.empty_like(x, dtype="float64")
    _special(xp).erf(x, out=out)
    return out


def erf_(xp, x):
    """erf in place on the floating-point array ``x``."""
    _special(xp).erf(x, out=x)
    return x
