"""Identifiers for generated code: sanitized model names, prefixed when they could clash.

A name from the model is first passed through :func:`chunkc.ir.graph.sanitize_name`
(letters, digits and underscores only).  It is used as is when it is free; a name
that is a keyword, a builtin, a name the backend reserves, one already taken, or
one starting with an underscore gets a prefix (``v_`` for values) and, if still
taken, a numeric suffix.  Every identifier handed out is checked once more.
"""

from __future__ import annotations

import builtins
import keyword
from typing import Iterable

from ..errors import ChunkcError
from ..ir.graph import sanitize_name

_PYTHON_RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))


class Namer:
    """Hands out unique, safe identifiers within one namespace."""

    def __init__(self, reserved: Iterable[str] = ()):
        self.taken: set[str] = set(_PYTHON_RESERVED) | set(reserved)

    def claim(self, hint: str, prefix: str = "v_") -> str:
        base = sanitize_name(hint)
        if base.startswith("_") or base in self.taken:
            base = prefix + base
        name, k = base, 1
        while name in self.taken:
            name = f"{base}_{k}"
            k += 1
        check_identifier(name)
        self.taken.add(name)
        return name

    def release(self, name: str) -> None:
        """Give back a name whose scope ended (a chunk loop's temporaries)."""
        self.taken.discard(name)


def check_identifier(name: str) -> str:
    if not (name.isidentifier() and name.isascii() and not keyword.iskeyword(name)):
        raise ChunkcError(f"internal: {name!r} is not a safe identifier for generated code")
    return name


__all__ = ["Namer", "check_identifier"]
