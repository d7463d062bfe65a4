"""Where a node came from in the user's model: module path, module class, file and line.

Every :class:`~chunkc.ir.graph.Node` has ``node.source``: a :class:`SourceInfo`,
or ``None`` when nothing is known (graphs built by hand).  Both frontends fill
it; passes carry it (``Graph.copy`` and ``rewrite.rebuild`` keep it, and the
nodes a rewrite creates get the source of the node they replace).  Messages
and views use it to speak in the model's terms::

    describe(node)   # 'node mul_130 (mul) in model.h.2.attn (GPT2Attention), modeling_gpt2.py:231'

The text form prints it as a trailing ``#@`` comment on the node's line
(:func:`format_source`) and reads it back (:func:`parse_source`)::

    %mul_130: f32[1, 12, L, L] = mul(%a, %b)  #@ model.h.2.attn (GPT2Attention) "/src/modeling_gpt2.py":231

Grammar of the comment's body (after ``#@``; whitespace between items)::

    source  = [ path ] [ "(" path ")" ] [ string ":" int ] { ( "onnx" | "doc" ) "=" string } ;
    path    = word | string ;       (* word: letters, digits, "_" in "."-separated parts *)
    string  = JSON string ;

All text in a record comes from a model file, so it is cleaned when the record
is made (control characters become ``?``; only ``doc`` keeps line breaks) and
is only ever shown quoted or as a comment that cannot end its line early.
"""

from __future__ import annotations

import json
import linecache
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from .graph import Node

_MAX_TEXT = 300  # longest module path, class, file or ONNX name kept
_MAX_DOC = 2000
_WORD = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<word>[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)
  | (?P<punct>[():=])
""", re.VERBOSE)
_KEYS = {"onnx": "onnx_node", "doc": "doc"}  # keyword -> field


def _clean(text: str, limit: int, keep_newlines: bool = False) -> str:
    text = str(text)
    out = "".join(c if c.isprintable() or (keep_newlines and c in "\n\t") else "?" for c in text)
    return out if len(out) <= limit else out[: limit - 3] + "..."


@dataclass(frozen=True)
class SourceInfo:
    """The model code behind one node (every field may be empty: unknown)."""

    module: str = ""  # dotted module path in the model ("model.h.2.attn"); "" = the top level
    module_class: str = ""  # that module's class, short ("GPT2Attention")
    file: str = ""  # the source file of the model code that made the node
    line: int = 0  # 1-based line in ``file``; 0 when unknown
    onnx_node: str = ""  # ONNX models: the node's name
    doc: str = ""  # ONNX models: the node's doc string

    def __post_init__(self) -> None:
        for name in ("module", "module_class", "file", "onnx_node"):
            object.__setattr__(self, name, _clean(getattr(self, name), _MAX_TEXT))
        object.__setattr__(self, "doc", _clean(self.doc, _MAX_DOC, keep_newlines=True))
        line = self.line
        if isinstance(line, bool) or not isinstance(line, int) or line < 0:
            raise ValueError(f"SourceInfo line must be a non-negative int, got {line!r}")
        if not self.file:
            object.__setattr__(self, "line", 0)  # a line of no known file says nothing

    @property
    def location(self) -> str:
        """``modeling_gpt2.py:231`` (the file's base name), or '' without a file."""
        if not self.file:
            return ""
        base = os.path.basename(self.file.replace("\\", "/")) or self.file
        return f"{base}:{self.line}" if self.line else base

    @property
    def scope(self) -> str:
        """``model.h.2.attn (GPT2Attention)``; the class alone at the top level; '' when unknown."""
        if self.module and self.module_class:
            return f"{self.module} ({self.module_class})"
        return self.module or (f"({self.module_class})" if self.module_class else "")

    def where(self) -> str:
        """``model.h.2.attn (GPT2Attention), modeling_gpt2.py:231`` with the parts known."""
        parts = [p for p in (self.scope, self.location) if p]
        if not parts and self.onnx_node:
            parts.append(f"ONNX node {json.dumps(self.onnx_node)}")
        return ", ".join(parts)

    def code(self) -> str:
        """The source line's text when the file is a readable ``.py`` file, else ''."""
        if not self.line or not self.file.endswith(".py"):
            return ""
        return linecache.getline(self.file, self.line).strip()


def where(node: "Node") -> str:
    """Where ``node`` comes from (:meth:`SourceInfo.where`), or '' when unknown."""
    return node.source.where() if node.source is not None else ""


def describe(node: "Node", code: bool = True) -> str:
    """``node mul_130 (mul) in model.h.2.attn (GPT2Attention), modeling_gpt2.py:231 `<code>```.

    The part after the op is left out when the source is unknown; ``code`` adds
    the text of the source line when the file can be read.
    """
    text = f"node {node.name} ({node.op.name})"
    src = node.source
    if src is None:
        return text
    place = src.where()
    if place:
        text += (" in " if src.scope else " at ") + place
    line = src.code() if code else ""
    return text + (f" `{line}`" if line else "")


def span(nodes: Iterable["Node"]) -> str:
    """A run of nodes in the model's terms: ``model.h.2.attn → model.h.2.mlp; modeling_gpt2.py:215-301``.

    The first and last module (with the count of modules between), then for each
    file the range of lines its nodes come from, in order of first appearance.
    """
    modules: list[str] = []
    lines: dict[str, list[int]] = {}
    for n in nodes:
        src = n.source
        if src is None:
            continue
        mod = src.module or "(top level)"
        if not modules or modules[-1] != mod:
            modules.append(mod)
        if src.file and src.line:
            lines.setdefault(src.location.rsplit(":", 1)[0], []).append(src.line)
    if not modules:
        return ""
    distinct = list(dict.fromkeys(modules))
    text = modules[0] if len(distinct) == 1 else f"{modules[0]} → {modules[-1]}"
    if len(distinct) > 2:
        text += f" ({len(distinct)} modules)"
    if lines:
        text += "; " + ", ".join(f"{f}:{min(ls)}" + (f"-{max(ls)}" if max(ls) != min(ls) else "")
                                 for f, ls in lines.items())
    return text


_UNSAFE = re.compile(r"[^A-Za-z0-9_.]")


def comment_text(node: "Node") -> str:
    """``model.h.2.attn (GPT2Attention)`` for a comment in generated code, or ''.

    Only letters, digits, ``_`` and ``.`` of the model's text are kept (anything
    else becomes ``_``), so a comment never carries code or quotes from a model.
    """
    src = node.source
    if src is None or not src.scope:
        return ""
    module = _UNSAFE.sub("_", src.module)
    cls = _UNSAFE.sub("_", src.module_class)
    return f"{module} ({cls})" if module and cls else module or f"({cls})"


# -- the text form ---------------------------------------------------------------------------------


def _path(text: str) -> str:
    return text if _WORD.fullmatch(text) and text not in _KEYS else json.dumps(text)


def format_source(src: SourceInfo) -> str:
    """The body of a ``#@`` comment (see the module's grammar); '' for an empty record."""
    parts = []
    if src.module:
        parts.append(_path(src.module))
    if src.module_class:
        parts.append(f"({_path(src.module_class)})")
    if src.file:
        parts.append(f"{json.dumps(src.file)}:{src.line}")
    if src.onnx_node:
        parts.append(f"onnx={json.dumps(src.onnx_node)}")
    if src.doc:
        parts.append(f"doc={json.dumps(src.doc)}")
    return " ".join(parts)


class SourceSyntaxError(ValueError):
    """A ``#@`` comment that does not follow the grammar; ``offset`` is where in its body."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset


def parse_source(text: str) -> SourceInfo:
    """Read the body of a ``#@`` comment back (the inverse of :func:`format_source`)."""
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise SourceSyntaxError(f"unexpected character {text[pos]!r} in a source comment", pos)
        if m.lastgroup != "ws":
            kind = m.lastgroup if m.lastgroup != "punct" else m.group()
            tokens.append((kind, m.group(), pos))
        pos = m.end()
    tokens.append(("end", "", len(text)))
    k = 0

    def peek(offset: int = 0) -> tuple[str, str, int]:
        return tokens[min(k + offset, len(tokens) - 1)]

    def take(kind: str, what: str) -> tuple[str, str, int]:
        nonlocal k
        tok = peek()
        if tok[0] != kind:
            found = "the end of the comment" if tok[0] == "end" else repr(tok[1])
            raise SourceSyntaxError(f"expected {what} in the source comment, found {found}", tok[2])
        k += 1
        return tok

    def string(tok: tuple[str, str, int]) -> str:
        try:
            return json.loads(tok[1])
        except ValueError as exc:
            raise SourceSyntaxError(f"bad string in the source comment: {exc}", tok[2]) from None

    def path() -> str:
        tok = peek()
        if tok[0] in ("word", "string"):
            take(tok[0], "a module path")
            return tok[1] if tok[0] == "word" else string(tok)
        raise SourceSyntaxError("expected a module path or class name", tok[2])

    fields: dict[str, object] = {}
    # a word not followed by '=' is the module; so is a string not followed by ':' (a file is "f":line)
    if (peek()[0] == "word" and peek(1)[0] != "=") or (peek()[0] == "string" and peek(1)[0] != ":"):
        fields["module"] = path()
    if peek()[0] == "(":
        take("(", "'('")
        fields["module_class"] = path()
        take(")", "')' after the class name")
    if peek()[0] == "string":
        fields["file"] = string(take("string", "a file name"))
        take(":", "':' and the line number after the file name")
        tok = take("word", "a line number")
        if not tok[1].isdigit():
            raise SourceSyntaxError(f"expected a line number, found {tok[1]!r}", tok[2])
        fields["line"] = int(tok[1])
    while peek()[0] == "word":
        key = take("word", "onnx= or doc=")
        field = _KEYS.get(key[1])
        if field is None or field in fields:
            raise SourceSyntaxError(f"unexpected {key[1]!r} in the source comment (expected onnx= or doc=, "
                                    "each at most once)", key[2])
        take("=", f"'=' after {key[1]}")
        fields[field] = string(take("string", "a string"))
    take("end", "the end of the comment")
    return SourceInfo(**fields)  # type: ignore[arg-type]


__all__ = ["SourceInfo", "describe", "where", "span", "comment_text", "format_source", "parse_source",
           "SourceSyntaxError"]
