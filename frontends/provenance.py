"""From an exporter's records to a :class:`~chunkc.ir.source.SourceInfo`; shared by both frontends.

torch.export records, for every FX node, the module stack (``nn_module_stack``:
module paths and classes, outermost first) and the Python stack
(``stack_trace``: frames, outermost first).  The ONNX exporter of
``torch.onnx.export(..., dynamo=True)`` copies the same records into each
node's ``metadata_props`` (``pkg.torch.onnx.name_scopes``, ``class_hierarchy``,
``stack_trace``).  This module only reads text; it imports neither torch nor onnx.

Which frame is "the model's own code" (:func:`choose_frame`):

1. Frames inside PyTorch itself (a ``torch/`` package directory) are never the
   model's code: they are kept only when nothing else is there.
2. A *leaf* module (one with no submodule of its own in the export: ``Linear``,
   ``LayerNorm``, transformers' ``Conv1D``) is a library layer; the line that
   tells where in the model it runs is its call site in the module around it.
   So the module that picks the frame is the innermost *composite* module of the
   node's stack (one that has submodules; the root counts as composite).
3. The chosen frame is the innermost frame in the file that defines that
   module's class, found by matching the class's dotted module name against the
   frame's file path (``transformers.models.gpt2.modeling_gpt2.GPT2Attention``
   -> ``.../transformers/models/gpt2/modeling_gpt2.py``; nothing is imported).
   This skips helper files the module calls into (transformers'
   ``masking_utils.py`` for a causal mask: the line is then the model's
   ``create_causal_mask(...)`` call) while keeping helper *functions* defined in
   the model's own file (``eager_attention_forward``).
4. When no frame is in that file (a class defined in ``__main__``, say), the
   next composite module outward is tried; then the innermost frame outside
   PyTorch; then the innermost frame at all.

torch.export keeps only the frames of ``forward`` methods, so code in a helper
function shows as the helper's call in the forward that calls it.

File names are stored the way Python names modules (:func:`portable_path`): a
file in an installed package is written from the package down
(``transformers/models/gpt2/modeling_gpt2.py``), one under a ``sys.path`` entry
relative to it, any other as recorded.  The text form stays the same on every
machine, and :mod:`linecache` still finds the file (it searches ``sys.path``
for relative names).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from typing import Iterable, Sequence

from chunkc.ir.source import SourceInfo

_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
_TORCH_DIR = re.compile(r"(^|/)torch/")
_PACKAGES_DIR = re.compile(r".*/(?:site|dist)-packages/")
# torch.export's placeholder entry for nodes it made itself (size checks): not a module of the model
_EMPTY_STACK_HOOK = "_empty_nn_module_stack_from_metadata_hook"


@dataclass(frozen=True)
class Frame:
    file: str
    line: int
    function: str


def parse_stack_trace(text: str | None) -> list[Frame]:
    """The frames of a Python stack trace (``File "f.py", line 3, in fn``), outermost first."""
    return [Frame(f, int(line), fn) for f, line, fn in _FRAME.findall(text or "")]


def is_framework_file(path: str) -> bool:
    """Whether ``path`` is inside a ``torch/`` package directory."""
    return bool(_TORCH_DIR.search(path.replace("\\", "/")))


def module_stack(entries: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(module path, qualified class name) pairs, outermost first, without torch.export's placeholder."""
    return [(path, cls) for path, cls in entries if path != _EMPTY_STACK_HOOK and cls != _EMPTY_STACK_HOOK]


def composite_modules(paths: Iterable[str]) -> set[str]:
    """The module paths that contain another one (plus the root ``''``): the non-leaf modules."""
    paths = set(paths)
    out = {""}
    for p in paths:
        parts = p.split(".")
        for k in range(1, len(parts)):
            prefix = ".".join(parts[:k])
            if prefix in paths:
                out.add(prefix)
    return out


def _defined_in(frame: Frame, qualified_class: str) -> bool:
    """Whether ``frame``'s file is where ``qualified_class`` (``pkg.mod.Class``) is defined."""
    file = frame.file.replace("\\", "/")
    parts = qualified_class.split(".")[:-1]
    for k in range(len(parts), 0, -1):  # 'pkg.mod.<locals>.Inner': try pkg/mod.py, then pkg.py
        stem = "/".join(parts[:k])
        for candidate in (stem + ".py", stem + "/__init__.py"):
            if file == candidate or file.endswith("/" + candidate):
                return True
    return False


def choose_frame(frames: Sequence[Frame], stack: Sequence[tuple[str, str]], composite: set[str]) -> Frame | None:
    """The frame of the model's own code for one node (rules in the module docstring)."""
    model = [f for f in frames if not is_framework_file(f.file)]
    for path, cls in reversed(stack):
        if path not in composite:
            continue
        mine = [f for f in model if _defined_in(f, cls)]
        if mine:
            return mine[-1]
    if model:
        return model[-1]
    return frames[-1] if frames else None


def portable_path(path: str) -> str:
    """``path`` from its package down, or relative to the ``sys.path`` entry it lies under."""
    text = path.replace("\\", "/")
    m = _PACKAGES_DIR.match(text)
    if m:
        return text[m.end():]
    if os.path.isabs(text):
        roots = [r.replace("\\", "/").rstrip("/") + "/" for r in sys.path if r and os.path.isabs(r)]
        under = [r for r in roots if text.startswith(r)]
        if under:
            return text[len(max(under, key=len)):]
    return path


def short_class(qualified: str) -> str:
    return qualified.rsplit(".", 1)[-1]


def source_info(stack: Sequence[tuple[str, str]], frames: Sequence[Frame], composite: set[str],
                onnx_node: str = "", doc: str = "") -> SourceInfo:
    """The record for one node from its module stack and Python frames."""
    module, cls = stack[-1] if stack else ("", "")
    frame = choose_frame(frames, stack, composite)
    return SourceInfo(module=module, module_class=short_class(cls) if cls else "",
                      file=portable_path(frame.file) if frame else "", line=frame.line if frame else 0,
                      onnx_node=onnx_node, doc=doc)


__all__ = ["Frame", "parse_stack_trace", "is_framework_file", "module_stack", "composite_modules",
           "choose_frame", "portable_path", "short_class", "source_info"]
