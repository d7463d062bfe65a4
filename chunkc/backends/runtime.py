"""The small runtime that generated NumPy/CuPy code imports.

Generated array code calls each op's reference implementation (the one the
interpreter runs) as ``ref.<op>(xp, *arrays, **attrs)``, so the same source runs
on NumPy and on CuPy: the array module ``xp`` is a parameter of the program.
"""

from __future__ import annotations

import importlib
import itertools
import linecache
import types
from typing import Any

from ..errors import ChunkcError, UnsupportedOpError
from ..ir.registry import lookup


class References:
    """``references.softmax`` is the NumPy reference of op ``softmax`` (looked up once);
    ``references.small_ufunc_buffers(xp)`` is the context the programs run their body in."""

    @staticmethod
    def small_ufunc_buffers(xp):
        from ..ir.reference import small_ufunc_buffers
        return small_ufunc_buffers(xp)

    @staticmethod
    def take_rows(xp, x, axis, have, need, size, fill=0.0):
        """Rows of a halo loop's value (chunkc.passes.halo.take_rows)."""
        from ..passes.halo import take_rows
        return take_rows(xp, x, axis, have, need, size, fill)

    @staticmethod
    def softmax_merge(xp, acc, part):
        """An accumulator's merge (chunkc.passes.accumulate.COMBINERS)."""
        from ..passes.accumulate import softmax_merge
        softmax_merge(xp, acc, part)

    def widened(self, name: str, out_dtypes: tuple[str, ...]):
        """Op ``name``'s reference run widened, its outputs rounded to ``out_dtypes`` (bf16, f8...)."""
        from ..ir.reference import widened
        return widened(lookup(name), out_dtypes)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        op = lookup(name)
        if op.reference is None:
            raise UnsupportedOpError(f"op {name} has no array reference; the numpy/cupy backends cannot run it")
        setattr(self, name, op.reference)
        return op.reference


references = References()


def array_module(name: str) -> Any:
    """The array module of a backend name: ``numpy`` or ``cupy`` (checked for a GPU)."""
    if name == "numpy":
        import numpy
        return numpy
    if name == "cupy":
        try:
            cupy = importlib.import_module("cupy")
        except ImportError:
            raise ChunkcError("backend 'cupy' needs CuPy: pip install cupy-cuda12x (and an NVIDIA GPU)") from None
        if not cupy.is_available():
            raise ChunkcError("backend 'cupy': CuPy is installed but no CUDA device is available")
        return cupy
    raise ChunkcError(f"unknown array backend {name!r}; use 'numpy' or 'cupy'")


_loads = itertools.count()


def load_source(source: str, module_name: str) -> types.ModuleType:
    """Run generated ``source`` as a fresh module whose lines tracebacks and pdb can show.

    The module is registered in ``sys.modules`` under a name unique to its source, as an
    imported module is: ``torch.compile`` (dynamo) resolves a function's globals through
    its module's name, and fails on a module it cannot import.  Its code objects are its own
    (:func:`own_code`), even when the same source was loaded before."""
    import sys
    digest = f"{abs(hash(source)):x}"
    filename = f"<chunkc:{module_name}:{digest}>"
    module = types.ModuleType(f"{module_name}_{digest}")
    module.__file__ = filename
    code = own_code(compile(source, filename, "exec"))
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(code, module.__dict__)  # our own generated code; it holds no text from the model
    sys.modules[module.__name__] = module
    return module


def own_code(code: types.CodeType, mark: tuple[str, int] | None = None) -> types.CodeType:
    """``code`` and every code object nested in it, each carrying one more constant, unused
    and unique to this load (``mark``), so that no code object of this load compares equal to
    one of another load.  Python compares code objects by value and dynamo caches decoded
    instructions by that value: two loads of one program shared their nested chunk functions'
    code, and the second ran compiled code installed in the first one's globals (NameError
    ``__compiled_fn_...``; docs/backends.md, "Each load has code of its own")."""
    mark = mark if mark is not None else ("chunkc load", next(_loads))  # not a str: never a docstring
    consts = tuple(own_code(c, mark) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_consts=consts + (mark,))


def load_weights(path) -> dict:
    """The arrays of a program's ``.npz`` weights file, by attribute name."""
    import numpy
    with numpy.load(path) as arrays:
        return dict(arrays)


def load_file(path, prefix: str) -> types.ModuleType:
    """Import a generated source file (written by ``write_program``) as a fresh module."""
    import importlib.util
    import pathlib
    import sys

    path = pathlib.Path(path)
    if not path.exists():
        raise ChunkcError(f"{path} does not exist")
    name = f"{prefix}_{abs(hash(str(path.resolve()))):x}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(own_code(compile(path.read_text(), str(path), "exec")), module.__dict__)  # as load_source
    if not hasattr(module, "load"):
        raise ChunkcError(f"{path} is not a program written by chunkc (it has no load function)")
    return module


__all__ = ["References", "references", "array_module", "load_source", "load_file", "load_weights", "own_code"]
