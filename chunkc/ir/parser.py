"""Parse the text form of a graph (grammar: docs/ir.md; printer: chunkc.ir.printer).

A small tokenizer and a recursive-descent parser: no text ever reaches
``eval``.  Size expressions are handed to :func:`chunkc.ir.sizes.parse_size`,
which walks a restricted syntax tree.  Nodes are built through
:meth:`Graph.add_node`, so shape inference checks every statement, and the
type written for each result must equal the inferred one.  Every error is a
:class:`~chunkc.errors.ParseError` that gives the line and column, what was
expected, and the offending line with a caret under the fault; it also carries
``.line`` and ``.column`` attributes.
"""

from __future__ import annotations

import bisect
import difflib
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..errors import IRError, ParseError
from .dtypes import DType, dtype as to_dtype
from .graph import Graph, Value
from .registry import all_ops, has_op, lookup
from .sizes import parse_size, sizes_equal
from .source import SourceInfo, SourceSyntaxError, parse_source
from .types import TensorType

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<source>\#@[^\n]*)
  | (?P<comment>\#[^\n]*)
  | (?P<value>%[A-Za-z_][A-Za-z0-9_]*)
  | (?P<global>@[A-Za-z_][A-Za-z0-9_]*)
  | (?P<float>(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
  | (?P<int>\d+)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<punct>//|[()\[\]{},:=*+\-%])
""", re.VERBOSE)

# tokens that may appear inside a size expression (handed whole to parse_size)
_SIZE_PUNCT = {"(", ")", "*", "+", "-", "//", "%", ","}
_DTYPES = {d.short: d for d in DType}


@dataclass(frozen=True)
class Token:
    kind: str  # value, global, float, int, ident, string, source, eof, or the punctuation itself
    text: str
    pos: int  # offset in the source


def tokenize(src: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if m is None:
            what = "an unterminated string" if src[pos] == '"' else f"unexpected character {src[pos]!r}"
            raise _error(src, pos, what)
        kind = m.lastgroup
        if kind not in ("ws", "comment"):
            text = m.group()
            tokens.append(Token(text if kind == "punct" else kind, text, pos))
        pos = m.end()
    tokens.append(Token("eof", "", len(src)))
    return tokens


def _line_col(src: str, pos: int) -> tuple[int, int, str]:
    starts = [0] + [m.end() for m in re.finditer("\n", src)]
    k = bisect.bisect_right(starts, pos) - 1
    end = src.find("\n", starts[k])
    return k + 1, pos - starts[k] + 1, src[starts[k]: end if end >= 0 else len(src)]


def _error(src: str, pos: int, message: str) -> ParseError:
    line, col, text = _line_col(src, pos)
    err = ParseError(f"line {line}, column {col}: {message}\n    {text}\n    {' ' * (col - 1)}^")
    err.line, err.column = line, col
    return err


def _describe(tok: Token) -> str:
    if tok.kind == "eof":
        return "the end of the text"
    return repr(tok.text)


def parse_graph(text: str, weights: Mapping[str, Any] | None = None) -> Graph:
    """Build the graph written in ``text``.

    ``weights`` maps constant names to arrays: it gives the data of constants
    printed shape-only (and replaces inline data); each array must match the
    declared type.  Constants left without data are shape-only
    (``value.data is None``): printable and analysable, but not runnable.
    """
    graph = _Parser(text).graph_()
    if weights is not None:
        attach_weights(graph, weights)
    return graph


def parse_attribute(text: str) -> Any:
    """One attribute value in the text syntax (``(1, size(L), "tanh", f32)``...)."""
    p = _Parser(text)
    value = p.attr_value()
    p.expect("eof", "the end of the attribute value")
    return value


def attach_weights(graph: Graph, weights: Mapping[str, Any]) -> None:
    """Set the data of ``graph``'s constants from ``weights`` (name -> array).

    Every array must match its constant's declared type; a name that is not a
    constant of the graph is refused (it usually means the wrong weights file).
    """
    constants = {c.name: c for c in graph.constants}
    unknown = sorted(set(weights) - set(constants))
    if unknown:
        raise ParseError(f"graph {graph.name}: weights given for {', '.join(unknown)}, which the text does not "
                         "declare as constants (const %name: type)")
    for name, data in weights.items():
        c = constants[name]
        arr = np.asarray(data)
        try:
            dt = to_dtype(arr.dtype)
        except TypeError:
            dt = None
        if dt != c.dtype or arr.ndim != c.rank or not all(sizes_equal(a, b) for a, b in zip(arr.shape, c.shape)):
            raise ParseError(f"graph {graph.name}: the weights for %{name} have dtype {arr.dtype} and shape "
                             f"{tuple(arr.shape)}, but the text declares {c.type}")
        c.data = arr


class _Parser:
    def __init__(self, src: str):
        self.src = src
        self.tokens = tokenize(src)
        self.k = 0
        self.graph = Graph("main")
        self.env: dict[str, Value] = {}

    # -- token helpers -----------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.k]

    def advance(self) -> Token:
        t = self.tokens[self.k]
        if t.kind != "eof":
            self.k += 1
        return t

    def accept(self, kind: str) -> Token | None:
        return self.advance() if self.tok.kind == kind else None

    def expect(self, kind: str, what: str) -> Token:
        if self.tok.kind != kind:
            raise self.fail(f"expected {what}, found {_describe(self.tok)}")
        return self.advance()

    def fail(self, message: str, tok: Token | None = None) -> ParseError:
        return _error(self.src, (tok or self.tok).pos, message)

    # -- graph -------------------------------------------------------------------
    def graph_(self) -> Graph:
        kw = self.expect("ident", "'graph'")
        if kw.text != "graph":
            raise self.fail(f"expected 'graph', found {kw.text!r}", kw)
        name = self.expect("global", "the graph's name, such as @main")
        self.graph.name = name.text[1:]
        self.expect("(", "'(' before the graph inputs")
        if self.tok.kind != ")":
            while True:
                tok = self.expect("value", "a graph input such as %x")
                self.expect(":", f"':' and the type of {tok.text}")
                t = self.type_()
                self.define(tok, lambda n: self.graph.add_input(n, t.dtype, t.shape))
                if not self.accept(","):
                    break
        self.expect(")", "',' or ')' after a graph input")
        self.expect("{", "'{' to open the graph body")
        while True:
            tok = self.tok
            if tok.kind == "ident" and tok.text == "const":
                self.constant()
            elif tok.kind == "ident" and tok.text == "return":
                self.return_()
                break
            elif tok.kind == "value":
                self.node()
            elif tok.kind == "source":
                raise self.fail("a source comment (#@ ...) must end the line of a node statement")
            else:
                raise self.fail(f"expected a statement ('const', '%name: type = op(...)' or 'return'), "
                                f"found {_describe(tok)}")
        self.expect("}", "'}' after the return statement")
        self.expect("eof", "the end of the text after the graph's closing '}'")
        return self.graph

    def define(self, tok: Token, make) -> Value:
        """Create a value named exactly ``tok``'s name; refuse a name already used."""
        name = tok.text[1:]
        if self.graph.has_name(name):
            raise self.fail(f"name %{name} is already defined; every value and node name must be unique", tok)
        v = make(name)
        self.graph.rename(v, name)
        self.env[name] = v
        return v

    def use(self) -> Value:
        tok = self.expect("value", "a value such as %x")
        v = self.env.get(tok.text[1:])
        if v is None:
            raise self.fail(f"value {tok.text} is not defined here; values are defined before they are used", tok)
        return v

    # -- statements -----------------------------------------------------------------
    def constant(self) -> None:
        self.advance()  # const
        tok = self.expect("value", "the constant's name, such as %w")
        self.expect(":", f"':' and the type of {tok.text}")
        t = self.type_()
        data = None
        if self.accept("="):
            lit_tok = self.tok
            data = self.data(t, lit_tok)
        self.define(tok, lambda n: self.graph.add_constant(n, None, type=t) if data is None
                    else self.graph.add_constant(n, data))

    def node(self) -> None:
        results: list[tuple[Token, TensorType]] = []
        while True:
            tok = self.expect("value", "a result such as %y")
            self.expect(":", f"':' and the type of {tok.text}")
            results.append((tok, self.type_()))
            if not self.accept(","):
                break
        self.expect("=", "'=' or ',' after the results")
        op_tok = self.expect("ident", "an op name")
        if not has_op(op_tok.text):
            close = difflib.get_close_matches(op_tok.text, list(all_ops()), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; chunkc.ir.all_ops() lists the known ops"
            raise self.fail(f"unknown op {op_tok.text!r}{hint}", op_tok)
        self.expect("(", f"'(' and the inputs of {op_tok.text}")
        inputs: list[Value] = []
        if self.tok.kind != ")":
            inputs.append(self.use())
            while self.accept(","):
                inputs.append(self.use())
        self.expect(")", f"',' or ')' after an input of {op_tok.text}")
        attrs = self.attrs(op_tok.text) if self.tok.kind == "{" else {}
        name_tok = self.accept("global")
        node_name = name_tok.text[1:] if name_tok else results[0][0].text[1:]
        source = self.source_comment()
        self.build(op_tok, inputs, attrs, results, node_name, name_tok, source)

    def source_comment(self) -> SourceInfo | None:
        """The ``#@`` comment that ends a node's line, if there is one (grammar: chunkc.ir.source)."""
        tok = self.tok
        if tok.kind != "source":
            return None
        prev = self.tokens[self.k - 1]
        if "\n" in self.src[prev.pos + len(prev.text): tok.pos]:
            raise self.fail("a source comment (#@ ...) must be on the line of the node it describes")
        self.advance()
        try:
            return parse_source(tok.text[2:])
        except SourceSyntaxError as exc:
            raise _error(self.src, tok.pos + 2 + exc.offset, str(exc)) from None
        except ValueError as exc:
            raise _error(self.src, tok.pos, f"bad source comment: {exc}") from None

    def build(self, op_tok: Token, inputs, attrs, results, node_name: str, name_tok: Token | None,
              source: SourceInfo | None = None) -> None:
        g = self.graph
        out_names = [tok.text[1:] for tok, _ in results]
        for i, (tok, _) in enumerate(results):
            name = out_names[i]
            if g.has_name(name) or name in out_names[:i] or (i > 0 and name == node_name):
                raise self.fail(f"name %{name} is already defined; every value and node name must be unique", tok)
        if node_name != out_names[0] and g.has_name(node_name):
            raise self.fail(f"node name @{node_name} is already used; every value and node name must be unique",
                            name_tok)
        try:
            node = g.add_node(lookup(op_tok.text), inputs, attrs, name=node_name, output_names=out_names,
                              source=source)
        except IRError as exc:
            raise self.fail(str(exc), op_tok) from None
        if len(node.outputs) != len(results):
            raise self.fail(f"{op_tok.text} here has {len(node.outputs)} outputs, but the statement names "
                            f"{len(results)}", results[0][0])
        g.rename(node, node_name)
        for o, (tok, declared) in zip(node.outputs, results):
            g.rename(o, tok.text[1:])
            t = o.type
            if t.dtype != declared.dtype or t.rank != declared.rank or not all(
                    sizes_equal(a, b) for a, b in zip(t.shape, declared.shape)):
                raise self.fail(f"{tok.text} is declared {declared}, but {op_tok.text} infers {t}", tok)
            o.type = declared  # keep the text's spelling of equal sizes
            self.env[o.name] = o

    def return_(self) -> None:
        self.advance()  # return
        outs: list[Value] = []
        if self.tok.kind == "value":
            outs.append(self.use())
            while self.accept(","):
                outs.append(self.use())
        self.graph.set_outputs(*outs)

    # -- types and sizes ------------------------------------------------------------
    def type_(self) -> TensorType:
        tok = self.expect("ident", "a type such as f32[B, L, 768]")
        if tok.text not in _DTYPES:
            raise self.fail(f"unknown dtype {tok.text!r}; known: {', '.join(_DTYPES)}", tok)
        self.expect("[", f"'[' and the shape after {tok.text}")
        shape = []
        if self.tok.kind != "]":
            shape.append(self.size())
            while self.accept(","):
                shape.append(self.size())
        self.expect("]", "',' or ']' after a size")
        try:
            return TensorType(_DTYPES[tok.text], tuple(shape))
        except (ValueError, TypeError) as exc:
            raise self.fail(f"bad type: {exc}", tok) from None

    def size(self, closing: str = "]"):
        """One size expression: the tokens up to a ',' or ``closing`` outside parentheses."""
        start = self.tok
        depth = 0
        while True:
            t = self.tok
            if depth == 0 and t.kind in (",", closing):
                break
            if t.kind == "(":
                depth += 1
            elif t.kind == ")":
                if depth == 0:
                    break
                depth -= 1
            elif t.kind not in ("ident", "int", "value") and t.kind not in _SIZE_PUNCT:
                break
            self.advance()
        if self.tok is start:
            raise self.fail("expected a size (an integer or an expression such as 4*L)")
        text = self.src[start.pos: self.tok.pos].strip()
        try:
            return parse_size(text)
        except (ValueError, TypeError, ZeroDivisionError, RecursionError) as exc:
            raise self.fail(f"bad size {text!r}: {exc}", start) from None

    # -- attributes -----------------------------------------------------------------
    def attrs(self, op: str) -> dict[str, Any]:
        self.advance()  # {
        out: dict[str, Any] = {}
        if self.tok.kind != "}":
            while True:
                key = self.expect("ident", f"an attribute name of {op}")
                if key.text in out:
                    raise self.fail(f"attribute {key.text} is given twice", key)
                self.expect("=", f"'=' after attribute {key.text}")
                out[key.text] = self.attr_value()
                if not self.accept(","):
                    break
        self.expect("}", "',' or '}' after an attribute")
        return out

    def attr_value(self) -> Any:
        tok = self.tok
        if tok.kind == "(":
            return self.tuple_()
        if tok.kind == "string":
            self.advance()
            try:
                return json.loads(tok.text)
            except ValueError as exc:
                raise self.fail(f"bad string literal: {exc}", tok) from None
        if tok.kind == "ident":
            if tok.text == "size":
                self.advance()
                self.expect("(", "'(' after size")
                value = self.size(closing=")")
                self.expect(")", "')' to close size(...)")
                return value
            if tok.text == "none":
                self.advance()
                return None
            if tok.text in ("true", "false"):
                self.advance()
                return tok.text == "true"
            if tok.text in _DTYPES:
                self.advance()
                return _DTYPES[tok.text]
        number = self.number()
        if number is not None:
            return number
        raise self.fail("expected an attribute value (a number, true, false, none, a string, a dtype, "
                        f"size(...) or a tuple), found {_describe(tok)}")

    def tuple_(self) -> tuple:
        self.advance()  # (
        items: list[Any] = []
        if self.accept(")"):
            return ()
        items.append(self.attr_value())
        if self.tok.kind == ")":
            raise self.fail("expected ',' after the item of a 1-tuple, written (x,)")
        while self.accept(","):
            if self.tok.kind == ")":
                break
            items.append(self.attr_value())
        self.expect(")", "',' or ')' in a tuple")
        return tuple(items)

    def number(self) -> int | float | None:
        """An int, a float, inf or nan, with an optional leading '-'; None if none is here."""
        start = self.k
        negative = self.accept("-") is not None
        tok = self.tok
        if tok.kind == "int":
            value: int | float = int(tok.text)
        elif tok.kind == "float":
            value = float(tok.text)
        elif tok.kind == "ident" and tok.text in ("inf", "nan"):
            value = float(tok.text)
        else:
            self.k = start
            return None
        self.advance()
        return -value if negative else value

    # -- constant data ----------------------------------------------------------------
    def data(self, t: TensorType, tok: Token) -> np.ndarray:
        if not all(isinstance(s, int) for s in t.shape):
            raise self.fail(f"a constant with inline data needs a static shape, not {t}", tok)
        np_dtype = t.dtype.numpy
        nested = self.literal(t.dtype)
        shape = _nested_shape(nested)
        if shape is None or (shape != tuple(t.shape) and np.prod(t.shape) != 0):
            raise self.fail(f"the data has shape {shape if shape is not None else '(ragged)'}, "
                            f"but the constant is declared {t}", tok)
        try:
            # bf16, f8... go through f32 (i8/u8 for the sub-byte integers), which hold them exactly
            return np.array(nested, dtype=t.dtype.wide).reshape(t.shape).astype(np_dtype)
        except (OverflowError, ValueError) as exc:
            raise self.fail(f"the data does not fit {t}: {exc}", tok) from None

    def literal(self, dtype: DType):
        if self.accept("["):
            items = []
            if self.tok.kind != "]":
                items.append(self.literal(dtype))
                while self.accept(","):
                    items.append(self.literal(dtype))
            self.expect("]", "',' or ']' in the constant's data")
            return items
        tok = self.tok
        if dtype == DType.bool:
            if tok.kind == "ident" and tok.text in ("true", "false"):
                self.advance()
                return tok.text == "true"
            raise self.fail(f"expected true or false in bool data, found {_describe(tok)}")
        value = self.number()
        if value is None or (not dtype.is_floating and isinstance(value, float)):
            kind = "a number" if dtype.is_floating else "an integer"
            raise self.fail(f"expected {kind} in {dtype.short} data, found {_describe(tok)}")
        return value


def _nested_shape(nested) -> tuple[int, ...] | None:
    """The shape of nested lists, or None when they are ragged."""
    if not isinstance(nested, list):
        return ()
    if not nested:
        return (0,)
    inner = [_nested_shape(x) for x in nested]
    if any(s is None or s != inner[0] for s in inner):
        return None
    return (len(nested),) + inner[0]


__all__ = ["parse_graph", "parse_attribute", "attach_weights", "tokenize", "Token"]
