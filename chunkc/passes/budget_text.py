"""Budgets written by people: ``30%``, ``0.3``, ``64MiB``, ``1.5GB``.

:func:`parse_budget` turns such text (the command line's ``--budget``, a pipeline's
``autochunk{budget=...}``) into what :func:`chunkc.autochunk` takes — a fraction in
(0, 1] of the unchunked peak, or a whole number of bytes — and refuses anything else
with one line that says what would be accepted.
"""

from __future__ import annotations

import math
import re

from ..errors import ChunkcError

_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_TEXT = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(%|[A-Za-z]+)?$")
FORMS = "a percentage (30%), a fraction in (0, 1] (0.3) or bytes with a unit (64MiB, 1.5GB)"


def parse_budget(budget) -> float | int:
    """A fraction in (0, 1] (float) or bytes (int) from text or a number; ChunkcError otherwise."""
    if isinstance(budget, bool) or not isinstance(budget, (str, int, float)):
        raise ChunkcError(f"budget {budget!r}: give {FORMS}")
    if isinstance(budget, int):
        if budget < 1:
            raise ChunkcError(f"budget {budget} bytes: must be at least 1 byte")
        return budget
    if isinstance(budget, float):
        return _fraction(budget, repr(budget))
    text = budget.strip()
    m = _TEXT.match(text)
    if m is None:
        raise ChunkcError(f"budget {budget!r} is not a budget: give {FORMS}")
    number, unit = float(m.group(1)), m.group(2)
    if unit is None:
        return _fraction(number, text)
    if unit == "%":
        if not (0 < number <= 100) or not math.isfinite(number):
            raise ChunkcError(f"budget {text}: a percentage must be more than 0% and at most 100%")
        return number / 100.0
    scale = _UNITS.get(unit.lower())
    if scale is None:
        raise ChunkcError(f"budget {text}: unknown unit {unit!r}; use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB")
    nbytes = number * scale
    if not math.isfinite(nbytes) or nbytes < 1:
        raise ChunkcError(f"budget {text}: must be at least 1 byte")
    return int(nbytes)


def _fraction(number: float, text: str) -> float:
    if not math.isfinite(number) or not (0 < number <= 1):
        raise ChunkcError(f"budget {text}: a plain number is a fraction of the unchunked peak and must be in "
                          "(0, 1]; for bytes give a unit (64MiB, 1.5GB), for a percentage a % (30%)")
    return float(number)


__all__ = ["parse_budget", "FORMS"]
