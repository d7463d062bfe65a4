"""Importing this package registers every op record (one module per family).

Modules named ``extra_*.py`` in this folder (ops added by importers and other
extensions) are imported after the core families, so ``all_ops()`` lists them
whatever was imported first.
"""

import importlib
import pkgutil

from . import (  # noqa: F401
    attention, attention_keys, concat, conv, creation, elementwise, index, linalg, misc, norm, opaque, pool, reduce, resize, shape,
)

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name.startswith("extra_"):
        importlib.import_module(f"{__name__}.{_info.name}")
