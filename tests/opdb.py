"""The op database: sample inputs and an independent reference for every op.

In the style of Thunder's OpInfo (``thunder/tests/opinfos.py``): one
:class:`OpInfo` per registered op, holding

* ``samples(rng)``: a few :class:`Sample` s (inputs as NumPy arrays, attributes),
  covering broadcasting, keepdim, negative axes and several dtypes where they
  mean something;
* ``ref(*inputs, **attrs)``: an independent reference, PyTorch where it has the
  op (``torch.nn.functional`` or ``torch``), NumPy otherwise.  It returns an
  array-like or a tuple of them, in the dtype the op should produce;
* ``graphs``: small graphs around the op (builders of a :class:`SampleGraph`)
  for what one node on concrete arrays cannot show: symbolic sizes (in shapes
  and attributes), weights (0-d weights written as numbers, dtype promotion
  with a wider weight), non-contiguous inputs, ops with several outputs.
  Attribute-free ops with one to three inputs get automatic ones
  (:func:`graph_samples`);
* optional hooks: ``compare`` (for results with an unspecified order),
  ``sliced_attrs`` (attributes to rewrite for a slice of a carried axis, beyond
  the op's ``shape_attr``, which the test rewrites as code generators do),
  ``big`` (larger samples for the memory test), ``raises`` (the NumPy
  reference must refuse, as opaque's).

The database drives every test of ops: ``tests/test_ops.py`` runs the samples
through the interpreter (values, types, dimension records, views, memory);
``tests/test_op_backends.py`` runs the samples and the sample graphs on the
NumPy, PyTorch and CuPy backends.

Extending it: ops registered by ``chunkc/ir/ops/extra_*.py`` modules get their
entries in a module ``tests/opdb_<anything>.py`` that defines a list
``OPINFOS``; :func:`all_infos` picks those up, and ``tests/test_ops.py``
names every registered op that has no entry.
"""

from __future__ import annotations

import functools
import importlib
import math
import pathlib
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

import chunkc
from chunkc import ops as O
from chunkc.errors import ChunkcError
from chunkc.ir.registry import REQUIRED, all_ops

# -- records ---------------------------------------------------------------------------------------


@dataclass
class Sample:
    inputs: tuple
    attrs: dict
    desc: str = ""

    def __repr__(self) -> str:
        shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in self.inputs)
        return f"Sample({shapes}; {self.attrs}{'; ' + self.desc if self.desc else ''})"


@dataclass
class OpInfo:
    name: str
    samples: Callable[[np.random.Generator], list[Sample]]
    ref: Callable[..., Any] | None
    compare: Callable[[list, list, Sample], None] | None = None
    sliced_attrs: Callable[[dict, int, int, int], dict] | None = None  # (attrs, output, axis, length)
    big: Callable[[np.random.Generator], list[Sample]] | None = None
    raises: type | None = None
    tol: dict = field(default_factory=dict)  # numpy dtype name -> (rtol, atol)
    graphs: list[Callable[["SampleGraph"], tuple]] = field(default_factory=list)  # see graph_sample


TOL = {"float64": (1e-10, 1e-10), "float32": (1e-5, 1e-5), "float16": (1e-2, 1e-2)}


def S(*inputs, desc: str = "", **attrs) -> Sample:
    return Sample(tuple(inputs), attrs, desc)


# -- input makers ------------------------------------------------------------------------------------


def rnd(rng, shape, dtype="float32", lo=-2.0, hi=2.0) -> np.ndarray:
    return rng.uniform(lo, hi, size=shape).astype(dtype)


def ints(rng, shape, lo=-5, hi=6, dtype="int64") -> np.ndarray:
    return rng.integers(lo, hi, size=shape).astype(dtype)


def nonzero_ints(rng, shape, lo=-5, hi=6, dtype="int64") -> np.ndarray:
    a = ints(rng, shape, lo, hi, dtype)
    a[a == 0] = 1
    return a


def bools(rng, shape) -> np.ndarray:
    return rng.random(shape) < 0.5


def T(a):
    """NumPy -> torch (a copy, so torch never writes into a sample)."""
    return torch.from_numpy(np.array(a, copy=True))


def to_numpy(x):
    if isinstance(x, (tuple, list)):
        return tuple(to_numpy(v) for v in x)
    if isinstance(x, torch.Tensor):
        return x.detach().numpy()
    return np.asarray(x)


def torch_ref(fn):
    """A reference that runs ``fn`` on torch tensors made from the sample's arrays."""
    def ref(*arrays, **attrs):
        return to_numpy(fn(*(T(a) for a in arrays), **attrs))
    return ref


_OPINFOS: dict[str, OpInfo] = {}


def add(info: OpInfo) -> OpInfo:
    if info.name in _OPINFOS:
        raise ValueError(f"two op infos for {info.name}")
    _OPINFOS[info.name] = info
    return info


@functools.lru_cache(maxsize=None)
def all_infos() -> dict[str, OpInfo]:
    """This module's infos plus those of every ``tests/opdb_*.py`` module."""
    out = dict(_OPINFOS)
    here = pathlib.Path(__file__).parent
    for path in sorted(here.glob("opdb_*.py")):
        module = importlib.import_module(path.stem)
        for info in getattr(module, "OPINFOS", ()):
            if info.name in out:
                raise ValueError(f"{path.name}: op {info.name} already has an op info")
            out[info.name] = info
    return out


# -- running samples ---------------------------------------------------------------------------------


def rng_for(name: str) -> np.random.Generator:
    """The same random inputs for an op on every run and every backend."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def samples_of(name: str) -> list[Sample]:
    return all_infos()[name].samples(rng_for(name))


def build(name: str, inputs, attrs) -> tuple[chunkc.Graph, chunkc.Node]:
    """A graph of one node of op ``name`` on inputs typed like ``inputs``."""
    g = chunkc.Graph(name)
    values = [g.add_input(f"x{i}", a.dtype, a.shape) for i, a in enumerate(inputs)]
    node = g.add_node(name, values, attrs)
    g.set_outputs(*node.outputs)
    return g, node


def as_tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def assert_close(actual, expected, info: OpInfo | None = None, what: str = "") -> None:
    """Exact for integers and bools, within the op's tolerance (TOL by dtype) for floats."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}shape {actual.shape} != {expected.shape}"
    if actual.dtype.kind in "biu" and expected.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    rtol, atol = {**TOL, **(info.tol if info else {})}.get(actual.dtype.name, TOL["float32"])
    np.testing.assert_allclose(actual.astype("float64"), expected.astype("float64"), rtol=rtol, atol=atol,
                               equal_nan=True, err_msg=what)


# -- elementwise: unary ---------------------------------------------------------------------------

_UNARY = {
    # name: (torch function, input range, accepts integers)
    "neg": (torch.neg, (-2, 2), True),
    "abs": (torch.abs, (-2, 2), True),
    "exp": (torch.exp, (-3, 3), False),
    "log": (torch.log, (0.1, 4), False),
    "sqrt": (torch.sqrt, (0.1, 4), False),
    "rsqrt": (torch.rsqrt, (0.1, 4), False),
    "reciprocal": (torch.reciprocal, (0.2, 3), False),
    "sin": (torch.sin, (-3, 3), False),
    "cos": (torch.cos, (-3, 3), False),
    "tan": (torch.tan, (-1.2, 1.2), False),
    "atan": (torch.atan, (-4, 4), False),
    "tanh": (torch.tanh, (-3, 3), False),
    "erf": (torch.erf, (-2, 2), False),
    "log1p": (torch.log1p, (-0.9, 3), False),
    "expm1": (torch.expm1, (-2, 2), False),
    "sigmoid": (torch.sigmoid, (-6, 6), False),
    "relu": (torch.relu, (-2, 2), True),
    "silu": (F.silu, (-4, 4), False),
    "hardsigmoid": (F.hardsigmoid, (-5, 5), False),
    "hardswish": (F.hardswish, (-5, 5), False),
    "mish": (F.mish, (-5, 25), False),
    "floor": (torch.floor, (-3, 3), False),
    "ceil": (torch.ceil, (-3, 3), False),
    "round": (torch.round, (-3, 3), False),
    "sign": (torch.sign, (-2, 2), True),
}


def _unary_samples(lo, hi, with_ints):
    def samples(rng):
        out = [S(rnd(rng, (3, 4, 5), lo=lo, hi=hi)), S(rnd(rng, (2, 7), "float16", lo=lo, hi=hi)),
               S(rnd(rng, (), lo=lo, hi=hi), desc="0-d")]
        if with_ints:
            out.append(S(ints(rng, (4, 6))))
        return out
    return samples


def _unary_big(lo, hi):
    return lambda rng: [S(rnd(rng, (64, 128, 64), lo=lo, hi=hi)), S(rnd(rng, (128, 256, 32), "float16", lo=lo, hi=hi))]


for _name, (_fn, (_lo, _hi), _ints) in _UNARY.items():
    add(OpInfo(_name, _unary_samples(_lo, _hi, _ints), torch_ref(_fn), big=_unary_big(_lo, _hi)))


def _round_samples(rng):
    halves = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 0.49, -0.51], "float32")
    return [S(halves, desc="halves go to even"), S(rnd(rng, (3, 5), lo=-4, hi=4))]


_OPINFOS["round"].samples = _round_samples


def _param_unary(name, fn, params, lo=-4.0, hi=4.0):
    def samples(rng):
        out = []
        for p in params:
            out.append(S(rnd(rng, (3, 4, 5), lo=lo, hi=hi), **p))
            out.append(S(rnd(rng, (2, 9), "float16", lo=lo, hi=hi), **p))
        return out

    def big(rng):
        return [S(rnd(rng, (64, 128, 64), lo=lo, hi=hi), **p) for p in params]
    add(OpInfo(name, samples, torch_ref(fn), big=big))


_param_unary("gelu", lambda x, approximate: F.gelu(x, approximate=approximate),
             [{"approximate": "none"}, {"approximate": "tanh"}])
_param_unary("leaky_relu", lambda x, negative_slope: F.leaky_relu(x, negative_slope),
             [{"negative_slope": 0.01}, {"negative_slope": 2.5}, {"negative_slope": -0.5}])
_param_unary("elu", lambda x, alpha: F.elu(x, alpha), [{"alpha": 1.0}, {"alpha": 0.3}, {"alpha": 2.0}])
_param_unary("softplus", lambda x, beta, threshold: F.softplus(x, beta, threshold),
             [{"beta": 1.0, "threshold": 20.0}, {"beta": 2.0, "threshold": 1.5}], lo=-6.0, hi=6.0)


def _special_values():
    return np.array([[0.0, np.nan, np.inf, -np.inf], [1.5, -2.0, np.nan, 3.0]], "float32")


for _name, _fn in (("isnan", torch.isnan), ("isinf", torch.isinf)):
    add(OpInfo(_name, lambda rng: [S(_special_values()), S(_special_values().astype("float16")),
                                   S(ints(rng, (3, 4)))], torch_ref(_fn)))

add(OpInfo("logical_not", lambda rng: [S(bools(rng, (3, 4))), S(rnd(rng, (2, 5)).round()), S(ints(rng, (4,), -1, 2))],
           torch_ref(torch.logical_not)))


# -- elementwise: binary ----------------------------------------------------------------------------

_SHAPES = [((3, 4, 5), (3, 4, 5)), ((3, 4, 5), (4, 1)), ((2, 1, 5), (1, 3, 1)), ((4,), ())]


def _binary_samples(kind: str, lo=-3.0, hi=3.0, ints_too=True, second=None):
    """kind: 'arith' | 'cmp' | 'logical'; ``second`` makes the right operand (e.g. nonzero)."""
    def samples(rng):
        mk2 = second or (lambda rng, shape, dt: rnd(rng, shape, dt, lo, hi))
        out = [S(rnd(rng, a, lo=lo, hi=hi), mk2(rng, b, "float32"), desc=f"{a} with {b}") for a, b in _SHAPES]
        out.append(S(rnd(rng, (2, 3, 4), "float16", lo, hi), mk2(rng, (3, 1), "float16")))
        if ints_too:
            mk2i = (lambda rng, shape: nonzero_ints(rng, shape)) if second else (lambda rng, shape: ints(rng, shape))
            out.append(S(ints(rng, (3, 4)), mk2i(rng, (3, 4))))
            out.append(S(rnd(rng, (3, 4), lo=lo, hi=hi), mk2i(rng, (4,)), desc="f32 with i64 -> f32"))
        if kind == "cmp":
            a = ints(rng, (3, 4), -2, 3).astype("float32")
            out.append(S(a, a[:, ::-1].copy(), desc="ties"))
        if kind == "logical":
            out.append(S(bools(rng, (3, 4)), bools(rng, (4,))))
        return out
    return samples


def _nonzero(rng, shape, dt):
    a = rnd(rng, shape, dt, 0.5, 3.0)
    return a * np.where(rng.random(shape) < 0.5, -1, 1).astype(dt)


def _bin_big(rng):
    return [S(rnd(rng, (64, 128, 64), lo=0.5, hi=2.0), rnd(rng, (128, 1), lo=0.5, hi=2.0)),
            S(rnd(rng, (128, 64, 64), "float16", lo=0.5, hi=2.0), ints(rng, (64,), 1, 3))]


for _name, _fn in (("add", torch.add), ("sub", torch.sub), ("mul", torch.mul), ("maximum", torch.maximum),
                   ("minimum", torch.minimum)):
    add(OpInfo(_name, _binary_samples("arith"), torch_ref(_fn), big=_bin_big))


def _div_ref(a, b):
    ta, tb = T(a), T(b)
    if ta.dtype.is_floating_point or tb.dtype.is_floating_point:
        return to_numpy(torch.div(ta, tb))
    return to_numpy(torch.div(ta, tb, rounding_mode="trunc"))  # chunkc: integers truncate (ONNX Div)


add(OpInfo("div", _binary_samples("arith", second=_nonzero), _div_ref, big=_bin_big))
for _name, _fn in (("fmod", torch.fmod), ("remainder", torch.remainder), ("floor_divide", torch.floor_divide)):
    add(OpInfo(_name, _binary_samples("arith", second=_nonzero), torch_ref(_fn), big=_bin_big))


def _pow_samples(rng):
    return [S(rnd(rng, (3, 4, 5), lo=0.1, hi=2.0), rnd(rng, (4, 1), lo=-2, hi=2)),
            S(rnd(rng, (2, 3), "float16", lo=0.5, hi=2.0), rnd(rng, (3,), "float16", lo=-1, hi=2)),
            S(ints(rng, (3, 4), -3, 4), ints(rng, (3, 4), 0, 4)),
            S(rnd(rng, (5,), lo=0.1, hi=3.0), np.array(2, "int64"), desc="integer exponent")]


add(OpInfo("pow", _pow_samples, torch_ref(torch.pow), big=_bin_big))


def _atan2_samples(rng):
    axes = np.array([0.0, -0.0, 1.0, -1.0, 0.0, 2.0, -3.0], "float32")
    return _binary_samples("arith", ints_too=False)(rng) + [
        S(axes, axes[::-1].copy(), desc="on the axes, signed zeros"),
        S(rnd(rng, (3, 4)), ints(rng, (4,)), desc="f32 with i64 -> f32")]


add(OpInfo("atan2", _atan2_samples, torch_ref(torch.atan2), big=_bin_big))
for _name, _fn in (("eq", torch.eq), ("ne", torch.ne), ("lt", torch.lt), ("le", torch.le), ("gt", torch.gt),
                   ("ge", torch.ge)):
    add(OpInfo(_name, _binary_samples("cmp"), torch_ref(_fn)))
for _name, _fn in (("logical_and", torch.logical_and), ("logical_or", torch.logical_or),
                   ("logical_xor", torch.logical_xor)):
    add(OpInfo(_name, _binary_samples("logical", ints_too=False), torch_ref(_fn)))


def _where_samples(rng):
    return [S(bools(rng, (3, 4)), rnd(rng, (3, 4)), rnd(rng, (3, 4))),
            S(bools(rng, (4, 1)), rnd(rng, (2, 4, 5)), rnd(rng, (5,)), desc="all broadcast"),
            S(bools(rng, (3,)), rnd(rng, (3,), "float16"), rnd(rng, (3,), "float16")),
            S(bools(rng, (2, 3)), ints(rng, (2, 3)), ints(rng, (1, 3)))]


add(OpInfo("where", _where_samples, torch_ref(torch.where),
           big=lambda rng: [S(bools(rng, (256, 1)), rnd(rng, (64, 256, 64)), rnd(rng, (64,)))]))


def _masked_fill_samples(rng):
    return [S(rnd(rng, (3, 4)), bools(rng, (3, 4)), value=-1.5),
            S(rnd(rng, (2, 3, 4)), bools(rng, (3, 1)), value=float("-inf"), desc="broadcast mask"),
            S(rnd(rng, (2, 5), "float16"), bools(rng, (5,)), value=0.0),
            S(ints(rng, (3, 4)), bools(rng, (3, 4)), value=7)]


add(OpInfo("masked_fill", _masked_fill_samples, torch_ref(lambda x, m, value: x.masked_fill(m, value)),
           big=lambda rng: [S(rnd(rng, (64, 256, 64)), bools(rng, (256, 1)), value=0.0)]))

_TORCH_DT = {"f32": torch.float32, "f16": torch.float16, "f64": torch.float64, "i64": torch.int64,
             "i32": torch.int32, "bool": torch.bool, "u8": torch.uint8, "i8": torch.int8, "i16": torch.int16}


def _cast_samples(rng):
    return [S(rnd(rng, (3, 4), lo=-4, hi=4), dtype="f16"), S(rnd(rng, (3, 4), lo=-4, hi=4), dtype="i32"),
            S(ints(rng, (5,)), dtype="f32"), S(rnd(rng, (2, 3)).round(), dtype="bool"),
            S(bools(rng, (4,)), dtype="i64"), S(rnd(rng, (2, 2), "float16"), dtype="f32")]


add(OpInfo("cast", _cast_samples, torch_ref(lambda x, dtype: x.to(_TORCH_DT[dtype]))))


def _clamp_samples(rng):
    return [S(rnd(rng, (3, 4, 5)), min=-0.5, max=0.7), S(rnd(rng, (3, 4)), min=0.0), S(rnd(rng, (6,), "float16"), max=1),
            S(ints(rng, (3, 4)), min=-2, max=3)]


add(OpInfo("clamp", _clamp_samples, torch_ref(lambda x, min=None, max=None: torch.clamp(x, min, max))))


# -- contractions ----------------------------------------------------------------------------------------


def _matmul_samples(rng):
    return [S(rnd(rng, (3, 4)), rnd(rng, (4, 5))), S(rnd(rng, (2, 3, 4)), rnd(rng, (4,)), desc="matrix-vector"),
            S(rnd(rng, (4,)), rnd(rng, (2, 4, 5)), desc="vector-matrix"), S(rnd(rng, (4,)), rnd(rng, (4,)), desc="dot"),
            S(rnd(rng, (2, 1, 3, 4)), rnd(rng, (3, 4, 5)), desc="broadcast batch"),
            S(rnd(rng, (2, 3, 8), "float16"), rnd(rng, (2, 8, 4), "float16"))]


add(OpInfo("matmul", _matmul_samples, torch_ref(torch.matmul), tol={"float16": (2e-2, 5e-2)},
           big=lambda rng: [S(rnd(rng, (8, 256, 64)), rnd(rng, (8, 64, 256)))]))
add(OpInfo("bmm", lambda rng: [S(rnd(rng, (2, 3, 4)), rnd(rng, (2, 4, 5))), S(rnd(rng, (3, 1, 6)), rnd(rng, (3, 6, 2)))],
           torch_ref(torch.bmm)))


def _linear_samples(rng):
    return [S(rnd(rng, (2, 3, 8)), rnd(rng, (5, 8)), rnd(rng, (5,))), S(rnd(rng, (4, 8)), rnd(rng, (6, 8))),
            S(rnd(rng, (8,)), rnd(rng, (3, 8)), rnd(rng, (3,)), desc="1-d input")]


add(OpInfo("linear", _linear_samples, torch_ref(F.linear),
           big=lambda rng: [S(rnd(rng, (4, 512, 64)), rnd(rng, (256, 64)), rnd(rng, (256,)))]))


def _addmm_samples(rng):
    return [S(rnd(rng, (5,)), rnd(rng, (3, 4)), rnd(rng, (4, 5))),
            S(rnd(rng, (3, 5)), rnd(rng, (3, 4)), rnd(rng, (4, 5)), beta=0.5, alpha=2.0),
            S(rnd(rng, (3, 1)), rnd(rng, (3, 4)), rnd(rng, (4, 5)), beta=0.0)]


add(OpInfo("addmm", _addmm_samples,
           torch_ref(lambda bias, a, b, beta=1.0, alpha=1.0: torch.addmm(bias, a, b, beta=beta, alpha=alpha)),
           big=lambda rng: [S(rnd(rng, (512, 256)), rnd(rng, (512, 64)), rnd(rng, (64, 256)), beta=0.5, alpha=2.0),
                            S(rnd(rng, (256,)), rnd(rng, (512, 64)), rnd(rng, (64, 256)))]))


def _einsum_samples(rng):
    return [S(rnd(rng, (2, 3, 4)), rnd(rng, (2, 5, 4)), equation="bqd,bkd->bqk"),
            S(rnd(rng, (3, 4)), rnd(rng, (4, 5)), equation="ij,jk->ik"),
            S(rnd(rng, (3, 4)), equation="ij->ji"), S(rnd(rng, (3,)), rnd(rng, (4,)), equation="i,j->ij"),
            S(rnd(rng, (4, 4)), equation="ii->i", desc="diagonal"),
            S(rnd(rng, (2, 3, 4)), rnd(rng, (2, 4, 5)), rnd(rng, (2, 5, 3)), equation="bij,bjk,bkl->bil"),
            S(rnd(rng, (3, 1)), rnd(rng, (3, 4)), equation="ij,ij->ij", desc="size-1 broadcast"),
            S(rnd(rng, (2, 3, 4), "float16"), rnd(rng, (2, 3, 4), "float16"), equation="bij,bij->bi")]


add(OpInfo("einsum", _einsum_samples, lambda *xs, equation: to_numpy(torch.einsum(equation, *(T(x) for x in xs))),
           tol={"float16": (2e-2, 5e-2)},
           big=lambda rng: [S(rnd(rng, (4, 128, 32)), rnd(rng, (4, 256, 32)), equation="bqd,bkd->bqk")]))


# -- reductions -------------------------------------------------------------------------------------------


def _dims(axes, ndim):
    return tuple(range(ndim)) if axes is None else ((axes,) if isinstance(axes, int) else axes)


def _reduce_samples(dtypes=("float32", "float16"), with_ints=False, with_bools=False, lo=-2.0, hi=2.0):
    def samples(rng):
        out = []
        for axes, kd in ((None, False), (1, False), (-1, True), ((0, 2), False), ((0, -1), True), ((), False)):
            out.append(S(rnd(rng, (3, 4, 5), dtypes[0], lo, hi), axes=axes, keepdim=kd))
        for dt in dtypes[1:]:
            out.append(S(rnd(rng, (4, 6), dt, lo, hi), axes=1, keepdim=False))
        if with_ints:
            out.append(S(ints(rng, (3, 4), -3, 4, "int32"), axes=0, keepdim=False))
        if with_bools:
            out.append(S(bools(rng, (3, 4)), axes=-1, keepdim=True))
        out.append(S(rnd(rng, (), dtypes[0], lo, hi), axes=None, keepdim=False, desc="0-d"))
        return out
    return samples


def _reduce_ref(fn):
    def ref(x, axes=None, keepdim=False, **kw):
        t = T(x)
        dims = _dims(axes, t.ndim)
        if not dims:  # torch reads dim=() as "all axes": reduce a new size-1 axis instead
            res = fn(t.unsqueeze(0), (0,), keepdim, **kw)
            return to_numpy(res.squeeze(0) if keepdim else res)
        return to_numpy(fn(t, dims, keepdim, **kw))
    return ref


def _prod_ref(t, dims, keepdim):
    for d in sorted((d % t.ndim for d in dims), reverse=True):  # torch.prod takes one dim at a time
        t = torch.prod(t, dim=d, keepdim=keepdim)
    return t


def _reduce_big(rng):
    return [S(rnd(rng, (64, 256, 64)), axes=-1, keepdim=False), S(rnd(rng, (64, 256, 64), "float16"), axes=(0,), keepdim=True)]


add(OpInfo("sum", _reduce_samples(with_ints=True, with_bools=True),
           _reduce_ref(lambda t, d, k: torch.sum(t, dim=d, keepdim=k)), big=_reduce_big))
add(OpInfo("mean", _reduce_samples(), _reduce_ref(lambda t, d, k: torch.mean(t, dim=d, keepdim=k)), big=_reduce_big))
add(OpInfo("amax", _reduce_samples(with_ints=True), _reduce_ref(lambda t, d, k: torch.amax(t, dim=d, keepdim=k))))
add(OpInfo("amin", _reduce_samples(with_ints=True), _reduce_ref(lambda t, d, k: torch.amin(t, dim=d, keepdim=k))))
add(OpInfo("prod", _reduce_samples(with_ints=True, lo=0.5, hi=1.5), _reduce_ref(_prod_ref)))


def _bool_reduce_samples(rng):
    out = [S(bools(rng, (3, 4, 5)), axes=a, keepdim=k) for a, k in ((None, False), (1, True), ((0, 2), False))]
    out.append(S(rnd(rng, (3, 4)).round(), axes=-1, keepdim=False, desc="floats"))
    return out


add(OpInfo("any", _bool_reduce_samples, _reduce_ref(lambda t, d, k: torch.any(t, dim=d, keepdim=k))))
add(OpInfo("all", _bool_reduce_samples, _reduce_ref(lambda t, d, k: torch.all(t, dim=d, keepdim=k))))


def _var_samples(rng):
    out = [S(rnd(rng, (3, 4, 5)), axes=a, keepdim=k, correction=c)
           for a, k, c in ((None, False, 1), (1, True, 0), ((0, -1), False, 1), (-1, False, 2))]
    out.append(S(rnd(rng, (4, 6), "float16"), axes=1, keepdim=False, correction=1))
    return out


add(OpInfo("var", _var_samples,
           _reduce_ref(lambda t, d, k, correction=1: torch.var(t, dim=d, keepdim=k, correction=correction)),
           big=lambda rng: [S(rnd(rng, (64, 256, 64)), axes=-1, keepdim=False, correction=1)]))


def _arg_samples(rng):
    return [S(rnd(rng, (3, 4, 5)), axis=-1, keepdim=False), S(rnd(rng, (3, 4, 5)), axis=1, keepdim=True),
            S(rnd(rng, (6,), "float16"), axis=0, keepdim=False), S(ints(rng, (3, 4), -50, 50), axis=0, keepdim=False)]


add(OpInfo("argmax", _arg_samples, torch_ref(lambda x, axis, keepdim: torch.argmax(x, dim=axis, keepdim=keepdim))))
add(OpInfo("argmin", _arg_samples, torch_ref(lambda x, axis, keepdim: torch.argmin(x, dim=axis, keepdim=keepdim))))


def _softmax_samples(rng):
    return [S(rnd(rng, (3, 4, 5), lo=-5, hi=5), axis=-1), S(rnd(rng, (3, 4, 5)), axis=0),
            S(rnd(rng, (2, 7), "float16"), axis=1), S(np.array([[0.0, -np.inf, 1.0]], "float32"), axis=-1)]


def _softmax_big(rng):
    return [S(rnd(rng, (16, 256, 256)), axis=-1), S(rnd(rng, (16, 256, 256)), axis=1)]


add(OpInfo("softmax", _softmax_samples, torch_ref(lambda x, axis: torch.softmax(x, dim=axis)), big=_softmax_big))
add(OpInfo("log_softmax", _softmax_samples, torch_ref(lambda x, axis: torch.log_softmax(x, dim=axis)),
           big=_softmax_big))


def _cumsum_samples(rng):
    return [S(rnd(rng, (3, 4, 5)), axis=1), S(rnd(rng, (3, 4)), axis=-1), S(ints(rng, (3, 4), dtype="int32"), axis=0),
            S(bools(rng, (5,)), axis=0), S(rnd(rng, (2, 6), "float16"), axis=1)]


add(OpInfo("cumsum", _cumsum_samples, torch_ref(lambda x, axis: torch.cumsum(x, dim=axis)),
           big=lambda rng: [S(rnd(rng, (64, 256, 64)), axis=1)]))


def _cumprod_samples(rng):
    return [S(rnd(rng, (3, 4, 5)), axis=1), S(rnd(rng, (3, 4)), axis=-1), S(ints(rng, (3, 4), dtype="int32"), axis=0)]


add(OpInfo("cumprod", _cumprod_samples, torch_ref(lambda x, axis: torch.cumprod(x, dim=axis).to(x.dtype))))


# -- shape ops ----------------------------------------------------------------------------------------------


def _reshape_samples(rng):
    return [S(rnd(rng, (2, 3, 4)), shape=(6, 4)), S(rnd(rng, (6, 8)), shape=(6, 2, 4), desc="split an axis"),
            S(rnd(rng, (2, 3, 4)), shape=(2, -1)), S(rnd(rng, (4, 6)), shape=(2, 12), desc="split and merge"),
            S(rnd(rng, (2, 1, 6)), shape=(2, 6, 1)), S(ints(rng, (12,)), shape=(3, 4)),
            S(rnd(rng, (6, 4)), shape=(24,)), S(rnd(rng, (1,)), shape=())]


add(OpInfo("reshape", _reshape_samples, torch_ref(lambda x, shape: x.reshape(shape))))
add(OpInfo("permute", lambda rng: [S(rnd(rng, (2, 3, 4)), dims=(2, 0, 1)), S(rnd(rng, (2, 3)), dims=(-1, 0)),
                                   S(ints(rng, (2, 3, 4, 5)), dims=(0, 2, 1, 3))],
           torch_ref(lambda x, dims: x.permute(dims))))
add(OpInfo("expand", lambda rng: [S(rnd(rng, (3, 1)), shape=(3, 4)), S(rnd(rng, (3, 1)), shape=(2, 3, 5)),
                                  S(rnd(rng, (1, 4)), shape=(3, -1)), S(rnd(rng, ()), shape=(2, 2))],
           torch_ref(lambda x, shape: x.expand(shape))))


def _squeeze_ref(x, axes=None):
    if axes is None:
        return to_numpy(T(x).squeeze())
    return to_numpy(T(x).squeeze(axes))


add(OpInfo("squeeze", lambda rng: [S(rnd(rng, (2, 1, 3, 1))), S(rnd(rng, (2, 1, 3, 1)), axes=1),
                                   S(rnd(rng, (2, 1, 3, 1)), axes=(-1, 0), desc="a non-1 axis is kept"),
                                   S(rnd(rng, (1, 1)))], _squeeze_ref))
add(OpInfo("unsqueeze", lambda rng: [S(rnd(rng, (2, 3)), axis=0), S(rnd(rng, (2, 3)), axis=-1),
                                     S(rnd(rng, (2, 3)), axis=1), S(rnd(rng, ()), axis=0)],
           torch_ref(lambda x, axis: x.unsqueeze(axis))))


def _slice_ref(x, axis, start=None, end=None, step=1):
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, end, step)
    return to_numpy(T(x)[tuple(index)])


add(OpInfo("slice", lambda rng: [S(rnd(rng, (5, 6)), axis=1, start=1, end=4), S(rnd(rng, (5, 6)), axis=0, start=-3),
                                 S(rnd(rng, (5, 6, 2)), axis=-2, start=0, end=6, step=2),
                                 S(rnd(rng, (7,)), axis=0, end=-2, step=3),
                                 S(rnd(rng, (4, 5)), axis=1, start=0, end=2**63 - 1, desc="the whole axis: carries")],
           _slice_ref))


def _strided(rng):
    return np.swapaxes(rnd(rng, (4, 3)), 0, 1)


add(OpInfo("contiguous", lambda rng: [S(rnd(rng, (3, 4))), S(_strided(rng), desc="transposed")],
           torch_ref(lambda x: x.contiguous())))
add(OpInfo("copy", lambda rng: [S(rnd(rng, (3, 4))), S(_strided(rng), desc="transposed"), S(ints(rng, (2,)))],
           torch_ref(lambda x: x.clone()), big=lambda rng: [S(rnd(rng, (64, 256, 64)))]))


# -- normalization ----------------------------------------------------------------------------------------------


def _layer_norm_samples(rng):
    return [S(rnd(rng, (2, 3, 8)), rnd(rng, (8,)), rnd(rng, (8,))),
            S(rnd(rng, (2, 3, 4, 5)), rnd(rng, (4, 5)), num_axes=2, eps=1e-3),
            S(rnd(rng, (4, 6), lo=3, hi=5), desc="no affine, large mean"),
            S(rnd(rng, (3, 16), "float16"), rnd(rng, (16,), "float16"), rnd(rng, (16,), "float16"))]


def _layer_norm_ref(x, weight=None, bias=None, num_axes=1, eps=1e-5):
    t = T(x)
    return to_numpy(F.layer_norm(t, t.shape[t.ndim - num_axes:], None if weight is None else T(weight),
                                 None if bias is None else T(bias), eps))


add(OpInfo("layer_norm", _layer_norm_samples, _layer_norm_ref,
           big=lambda rng: [S(rnd(rng, (16, 512, 128)), rnd(rng, (128,)), rnd(rng, (128,))),
                            S(rnd(rng, (16, 512, 128), "float16"), rnd(rng, (128,), "float16"))]))


def _rms_norm_samples(rng):
    return [S(rnd(rng, (2, 3, 8)), rnd(rng, (8,))), S(rnd(rng, (2, 3, 4, 5)), num_axes=2, eps=1e-3),
            S(rnd(rng, (3, 16), "float16"), rnd(rng, (16,), "float16"), eps=1e-5)]


def _rms_norm_ref(x, weight=None, num_axes=1, eps=None):
    t = T(x)
    return to_numpy(F.rms_norm(t, t.shape[t.ndim - num_axes:], None if weight is None else T(weight), eps))


add(OpInfo("rms_norm", _rms_norm_samples, _rms_norm_ref,
           big=lambda rng: [S(rnd(rng, (16, 512, 128)), rnd(rng, (128,)))]))


def _group_norm_samples(rng):
    return [S(rnd(rng, (2, 6, 5)), rnd(rng, (6,)), rnd(rng, (6,)), num_groups=3),
            S(rnd(rng, (2, 4, 3, 3)), num_groups=2, eps=1e-3), S(rnd(rng, (1, 4, 6)), rnd(rng, (4,)), num_groups=4),
            S(rnd(rng, (2, 8, 4), "float16"), num_groups=2)]


def _group_norm_ref(x, weight=None, bias=None, num_groups=1, eps=1e-5):
    return to_numpy(F.group_norm(T(x), num_groups, None if weight is None else T(weight),
                                 None if bias is None else T(bias), eps))


add(OpInfo("group_norm", _group_norm_samples, _group_norm_ref,
           big=lambda rng: [S(rnd(rng, (2, 64, 64, 64)), rnd(rng, (64,)), rnd(rng, (64,)), num_groups=8)]))


def _batch_norm_samples(rng):
    c = 4
    stats = lambda dt="float32": (rnd(rng, (c,), dt), rnd(rng, (c,), dt, 0.5, 2.0))  # noqa: E731
    return [S(rnd(rng, (2, c, 5)), *stats(), rnd(rng, (c,)), rnd(rng, (c,))),
            S(rnd(rng, (2, c, 3, 3)), *stats(), eps=1e-3), S(rnd(rng, (3, c)), *stats(), rnd(rng, (c,))),
            S(rnd(rng, (2, c, 6), "float16"), *stats("float16"))]


def _batch_norm_ref(x, mean, var, weight=None, bias=None, eps=1e-5):
    opt = lambda a: None if a is None else T(a)  # noqa: E731
    return to_numpy(F.batch_norm(T(x), T(mean), T(var), opt(weight), opt(bias), training=False, eps=eps))


add(OpInfo("batch_norm", _batch_norm_samples, _batch_norm_ref,
           big=lambda rng: [S(rnd(rng, (4, 64, 64, 64)), rnd(rng, (64,)), rnd(rng, (64,), lo=0.5, hi=2),
                              rnd(rng, (64,)), rnd(rng, (64,)))]))


# -- joining and splitting ------------------------------------------------------------------------------------


def _concat_samples(rng):
    return [S(rnd(rng, (2, 3)), rnd(rng, (2, 5)), axis=1), S(rnd(rng, (1, 3)), rnd(rng, (2, 3)), rnd(rng, (4, 3)), axis=0),
            S(rnd(rng, (2, 3, 4)), rnd(rng, (2, 1, 4)), axis=-2), S(rnd(rng, (2, 3)), ints(rng, (2, 2)), axis=1,
                                                                    desc="i64 promotes to f32"),
            S(rnd(rng, (3,), "float16"), axis=0, desc="one input")]


add(OpInfo("concat", _concat_samples, lambda *xs, axis: to_numpy(torch.cat([T(x) for x in xs], dim=axis)),
           big=lambda rng: [S(rnd(rng, (64, 128, 64)), rnd(rng, (64, 64, 64)), axis=1)]))


def _split_samples(rng):
    return [S(rnd(rng, (6, 4)), sizes=(2, 4), axis=0), S(rnd(rng, (2, 9, 3)), sizes=(3, 3, 3), axis=1),
            S(rnd(rng, (2, 5)), sizes=(1, 0, 4), axis=-1, desc="an empty part"), S(ints(rng, (4,)), sizes=(4,), axis=0)]


add(OpInfo("split", _split_samples, lambda x, sizes, axis: to_numpy(torch.split(T(x), list(sizes), dim=axis))))


def _stack_samples(rng):
    return [S(rnd(rng, (2, 3)), rnd(rng, (2, 3)), axis=0), S(rnd(rng, (2, 3)), rnd(rng, (2, 3)), rnd(rng, (2, 3)), axis=-1),
            S(rnd(rng, (4,)), axis=1), S(rnd(rng, (2, 3)), rnd(rng, (2, 3)), axis=1)]


add(OpInfo("stack", _stack_samples, lambda *xs, axis: to_numpy(torch.stack([T(x) for x in xs], dim=axis)),
           big=lambda rng: [S(rnd(rng, (64, 128, 64)), rnd(rng, (64, 128, 64)), axis=1)]))


# -- indexing ----------------------------------------------------------------------------------------------------


def _take_samples(rng):
    return [S(rnd(rng, (5, 4)), ints(rng, (3,), 0, 5), axis=0), S(rnd(rng, (2, 5, 3)), ints(rng, (2, 4), -5, 5), axis=1),
            S(rnd(rng, (3, 6)), np.array(2, "int64"), axis=-1, desc="0-d index drops the axis"),
            S(ints(rng, (7,)), ints(rng, (2, 3), 0, 7, "int32"), axis=0)]


def _take_ref(x, idx, axis=0):
    t = T(x)
    n = t.shape[axis]
    flat = T(np.asarray(idx) % n).reshape(-1).to(torch.int64)
    picked = torch.index_select(t, axis % t.ndim, flat)
    shape = t.shape[:axis % t.ndim] + tuple(np.shape(idx)) + t.shape[axis % t.ndim + 1:]
    return to_numpy(picked.reshape(shape))


add(OpInfo("take", _take_samples, _take_ref,
           big=lambda rng: [S(rnd(rng, (1000, 256)), ints(rng, (8, 128), 0, 1000), axis=0)]))


def _gather_samples(rng):
    return [S(rnd(rng, (3, 5)), ints(rng, (3, 4), 0, 5), axis=1), S(rnd(rng, (4, 3)), ints(rng, (2, 3), 0, 4), axis=0),
            S(rnd(rng, (3, 5, 2)), ints(rng, (2, 5, 2), 0, 2), axis=-1, desc="index shorter than x off the axis"),
            S(rnd(rng, (2, 6, 3)), ints(rng, (2, 2, 3), 0, 6), axis=1)]


add(OpInfo("gather", _gather_samples, lambda x, index, axis: to_numpy(torch.gather(T(x), axis, T(index)))))
add(OpInfo("embedding", lambda rng: [S(rnd(rng, (10, 4)), ints(rng, (2, 3), 0, 10)), S(rnd(rng, (6, 3)), ints(rng, (5,), 0, 6)),
                                     S(rnd(rng, (6, 3), "float16"), np.array(4, "int64"), desc="0-d ids")],
           lambda w, ids: to_numpy(F.embedding(T(ids), T(w))),
           big=lambda rng: [S(rnd(rng, (1000, 256)), ints(rng, (8, 128), 0, 1000))]))



def _toeplitz_ref(table, rows, cols, base):
    positions = base - np.arange(rows)[:, None] + np.arange(cols)[None, :]
    return to_numpy(T(table)[..., torch.from_numpy(positions)])


add(OpInfo("toeplitz", lambda rng: [S(rnd(rng, (9,)), rows=5, cols=5, base=4), S(rnd(rng, (2, 3, 12)), rows=4, cols=7, base=5),
                                    S(ints(rng, (10,), -5, 5), rows=2, cols=3, base=7, desc="integers, a corner of the table"),
                                    S(rnd(rng, (4, 9), "float16"), rows=1, cols=9, base=0, desc="one row")],
           _toeplitz_ref, big=lambda rng: [S(rnd(rng, (4, 1023)), rows=512, cols=512, base=511)]))

# -- convolution ---------------------------------------------------------------------------------------------------


def _torch_pads(padding):
    """(begin, end) pairs per spatial axis -> F.pad's list (last axis first)."""
    out = []
    for b, e in reversed(padding):
        out += [b, e]
    return out


def _conv_ref(x, w, b=None, stride=None, padding=None, dilation=None, groups=1):
    nsp = x.ndim - 2
    t = T(x)
    if padding is not None:
        t = F.pad(t, _torch_pads(padding))
    fn = (F.conv1d, F.conv2d, F.conv3d)[nsp - 1]
    return to_numpy(fn(t, T(w), None if b is None else T(b), stride=stride or 1, dilation=dilation or 1, groups=groups))


def _conv_samples(rng):
    return [
        S(rnd(rng, (2, 3, 7)), rnd(rng, (4, 3, 3)), rnd(rng, (4,)), desc="1-d"),
        S(rnd(rng, (2, 4, 6, 7)), rnd(rng, (6, 2, 3, 2)), stride=(2, 1), padding=((1, 1), (0, 1)), dilation=(1, 2),
          groups=2, desc="2-d, groups, asymmetric padding"),
        S(rnd(rng, (1, 3, 8, 8)), rnd(rng, (5, 3, 1, 1)), rnd(rng, (5,)), desc="1x1: spatial axes carry"),
        S(rnd(rng, (2, 3, 8, 12)), rnd(rng, (4, 3, 4, 4)), stride=(4, 4), desc="patchify: spatial carry, ratio 4"),
        S(rnd(rng, (1, 2, 4, 5, 6)), rnd(rng, (3, 2, 2, 3, 2)), rnd(rng, (3,)), padding=((1, 0), (1, 1), (0, 0)),
          desc="3-d"),
        S(rnd(rng, (2, 4, 9)), rnd(rng, (4, 1, 3)), padding=((1, 1),), groups=4, desc="depthwise"),
    ]


def _conv_big(rng):
    return [S(rnd(rng, (2, 16, 64, 64)), rnd(rng, (32, 16, 3, 3)), rnd(rng, (32,)), padding=((1, 1), (1, 1))),
            S(rnd(rng, (1, 16, 128, 64)), rnd(rng, (16, 4, 3, 3)), stride=(2, 2), padding=((1, 0), (1, 1)), groups=4)]


add(OpInfo("conv", _conv_samples, _conv_ref, big=_conv_big, tol={"float32": (1e-5, 2e-5)}))


def _conv_t_ref(x, w, b=None, stride=None, padding=None, output_padding=None, dilation=None, groups=1):
    nsp = x.ndim - 2
    fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[nsp - 1]
    y = fn(T(x), T(w), None if b is None else T(b), stride=stride or 1, output_padding=output_padding or 0,
           groups=groups, dilation=dilation or 1)
    if padding is not None:  # PyTorch pads symmetrically: crop (begin, end) by hand
        index = (slice(None), slice(None)) + tuple(slice(pb, y.shape[2 + a] - pe) for a, (pb, pe) in enumerate(padding))
        y = y[index]
    return to_numpy(y)


def _conv_t_samples(rng):
    return [
        S(rnd(rng, (2, 3, 5)), rnd(rng, (3, 4, 3)), rnd(rng, (4,)), desc="1-d"),
        S(rnd(rng, (2, 4, 3, 4)), rnd(rng, (4, 3, 2, 2)), stride=(2, 2), desc="2x upsampling: spatial carry, ratio 1/2"),
        S(rnd(rng, (1, 4, 4, 5)), rnd(rng, (4, 2, 3, 3)), rnd(rng, (4,)), stride=(2, 3), padding=((1, 0), (1, 2)),
          output_padding=(1, 0), dilation=(1, 2), groups=2, desc="groups, padding, output_padding"),
        S(rnd(rng, (1, 2, 3, 3, 2)), rnd(rng, (2, 2, 2, 2, 2)), stride=(1, 2, 1), desc="3-d"),
    ]


add(OpInfo("conv_transpose", _conv_t_samples, _conv_t_ref, tol={"float32": (1e-5, 2e-5)},
           big=lambda rng: [S(rnd(rng, (2, 16, 32, 32)), rnd(rng, (16, 32, 3, 3)), rnd(rng, (32,)), stride=(2, 2),
                              padding=((1, 1), (1, 1)), output_padding=(1, 1))]))


# -- pooling ------------------------------------------------------------------------------------------------------------


def _pool_fn(kind, nsp):
    return getattr(F, f"{kind}{nsp}d")


def _max_pool_ref(x, kernel, stride=None, padding=None, dilation=None, ceil_mode=False):
    nsp = len(kernel)
    t = T(x)
    pads = padding or ((0, 0),) * nsp
    sym = all(b == e for b, e in pads)
    if not sym:
        t = F.pad(t, _torch_pads(pads), value=-math.inf)
    return to_numpy(_pool_fn("max_pool", nsp)(t, kernel, stride or kernel, [b for b, _ in pads] if sym else 0,
                                               dilation or 1, ceil_mode))


def _max_pool_samples(rng):
    return [S(rnd(rng, (2, 3, 8)), kernel=(2,)),
            S(rnd(rng, (2, 3, 7, 6)), kernel=(3, 2), stride=(2, 1), padding=((1, 1), (1, 1)), ceil_mode=True),
            S(rnd(rng, (1, 2, 8, 9)), kernel=(3, 3), stride=(2, 2), dilation=(2, 1), padding=((0, 1), (1, 0)),
              desc="asymmetric padding, dilation"),
            S(rnd(rng, (2, 4, 8, 8)), kernel=(2, 2), desc="tiling windows: spatial carry"),
            S(rnd(rng, (1, 2, 4, 4, 6)), kernel=(2, 2, 3), stride=(1, 2, 3)),
            S(rnd(rng, (3, 6, 6), "float16"), kernel=(2, 2), desc="unbatched")]


add(OpInfo("max_pool", _max_pool_samples, _max_pool_ref,
           big=lambda rng: [S(rnd(rng, (4, 32, 128, 128)), kernel=(3, 3), stride=(2, 2), padding=((1, 1), (1, 1)))]))


def _avg_pool_ref(x, kernel, stride=None, padding=None, ceil_mode=False, count_include_pad=True):
    nsp = len(kernel)
    t = T(x)
    pads = padding or ((0, 0),) * nsp
    if all(b == e for b, e in pads):
        return to_numpy(_pool_fn("avg_pool", nsp)(t, kernel, stride or kernel, [b for b, _ in pads], ceil_mode,
                                                   count_include_pad))
    assert count_include_pad and not ceil_mode, "asymmetric samples: zero padding that counts"
    return to_numpy(_pool_fn("avg_pool", nsp)(F.pad(t, _torch_pads(pads)), kernel, stride or kernel))


def _avg_pool_samples(rng):
    return [S(rnd(rng, (2, 3, 8)), kernel=(3,), stride=(2,), padding=((1, 1),)),
            S(rnd(rng, (2, 3, 7, 6)), kernel=(3, 2), stride=(2, 1), padding=((1, 1), (1, 1)), ceil_mode=True,
              count_include_pad=False),
            S(rnd(rng, (2, 3, 7, 6)), kernel=(3, 3), stride=(2, 2), padding=((1, 1), (1, 1)), ceil_mode=True),
            S(rnd(rng, (1, 2, 8, 9)), kernel=(3, 3), padding=((0, 1), (1, 0)), stride=(2, 2), desc="asymmetric"),
            S(rnd(rng, (2, 4, 8, 6)), kernel=(2, 3), desc="tiling windows: spatial carry"),
            S(rnd(rng, (1, 2, 4, 4, 6)), kernel=(2, 2, 2), stride=(1, 2, 2), padding=((1, 1), (0, 0), (1, 1)))]


add(OpInfo("avg_pool", _avg_pool_samples, _avg_pool_ref,
           big=lambda rng: [S(rnd(rng, (4, 32, 128, 128)), kernel=(3, 3), stride=(2, 2), padding=((1, 1), (1, 1)))]))


def _adaptive_ref(x, output_size):
    return to_numpy(_pool_fn("adaptive_avg_pool", len(output_size))(T(x), output_size))


add(OpInfo("adaptive_avg_pool",
           lambda rng: [S(rnd(rng, (2, 3, 7)), output_size=(3,)), S(rnd(rng, (2, 3, 7, 9)), output_size=(3, 4)),
                        S(rnd(rng, (2, 3, 4, 4)), output_size=(1, 1)), S(rnd(rng, (1, 2, 3, 4, 5)), output_size=(2, 3, 4)),
                        S(rnd(rng, (2, 3, 5, 4), "float16"), output_size=(2, 2))],
           _adaptive_ref, big=lambda rng: [S(rnd(rng, (16, 256, 32, 32)), output_size=(7, 7))]))


# -- resizing ---------------------------------------------------------------------------------------------------------------


def _interp_ref(x, size, mode="nearest", align_corners=False):
    nsp = len(size)
    if mode == "linear":
        tmode = ("linear", "bilinear", "trilinear")[nsp - 1]
        return to_numpy(F.interpolate(T(x), size=size, mode=tmode, align_corners=align_corners))
    return to_numpy(F.interpolate(T(x), size=size, mode={"nearest": "nearest", "nearest_exact": "nearest-exact"}[mode]))


def _interp_samples(rng):
    out = []
    for mode in ("nearest", "nearest_exact"):
        out += [S(rnd(rng, (2, 3, 5)), size=(12,), mode=mode), S(rnd(rng, (1, 2, 14, 6)), size=(20, 4), mode=mode),
                S(rnd(rng, (1, 2, 3, 4, 5)), size=(5, 4, 7), mode=mode)]
    out.append(S(rnd(rng, (1, 2, 7, 5)), size=(14, 10), desc="2x nearest"))
    out.append(S(rnd(rng, (1, 2, 6, 5)), size=(24, 5), mode="nearest_exact", desc="4x on one axis (it carries)"))
    for ac in (False, True):
        out += [S(rnd(rng, (2, 3, 5)), size=(9,), mode="linear", align_corners=ac),
                S(rnd(rng, (1, 2, 5, 6)), size=(8, 4), mode="linear", align_corners=ac),
                S(rnd(rng, (1, 2, 3, 4, 3)), size=(5, 2, 6), mode="linear", align_corners=ac)]
    out.append(S(rnd(rng, (1, 2, 4, 4), "float16"), size=(7, 9), mode="linear"))
    out.append(S(rnd(rng, (1, 2, 4, 4)), size=(1, 9), mode="linear", align_corners=True, desc="one output row"))
    return out


add(OpInfo("interpolate", _interp_samples, _interp_ref,
           big=lambda rng: [S(rnd(rng, (4, 32, 64, 64)), size=(128, 128)),
                            S(rnd(rng, (4, 32, 64, 64)), size=(96, 128), mode="linear"),
                            S(rnd(rng, (64, 64, 256)), size=(512,), mode="linear")]))


_NP_PAD = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pad_ref(x, pads, mode="constant", value=0.0):
    """PyTorch when the pads fit F.pad's shape rules, else NumPy's pad (as independent of chunkc)."""
    lead = 0
    while lead < len(pads) and tuple(pads[lead]) == (0, 0):
        lead += 1
    padded = len(pads) - lead
    fits = mode == "constant" or (1 <= padded <= 3 and x.ndim - padded in (1, 2))
    if fits and padded:
        return to_numpy(F.pad(T(x), _torch_pads(pads[lead:]), mode=mode, value=value if mode == "constant" else None))
    if any(p < 0 for pair in pads for p in pair):
        raise AssertionError("negative pads need the PyTorch path")
    kw = {"constant_values": value} if mode == "constant" else {}
    return np.pad(x, pads, mode=_NP_PAD[mode], **kw)


def _pad_samples(rng):
    return [S(rnd(rng, (2, 3, 4)), pads=((0, 0), (1, 2), (0, 3)), value=1.5),
            S(rnd(rng, (2, 5)), pads=((1, 0), (-1, 2)), desc="negative pads crop"),
            S(rnd(rng, (2, 3, 5)), pads=((0, 0), (0, 0), (2, 3)), mode="reflect"),
            S(rnd(rng, (1, 2, 4, 5)), pads=((0, 0), (0, 0), (3, 1), (2, 2)), mode="reflect"),
            S(rnd(rng, (2, 3, 4)), pads=((0, 0), (2, 1), (1, 3)), mode="replicate"),
            S(rnd(rng, (1, 2, 4, 5)), pads=((0, 0), (0, 0), (2, 4), (5, 1)), mode="circular"),
            S(rnd(rng, (4, 3, 5)), pads=((1, 2), (0, 0), (2, 2)), mode="reflect", desc="NumPy reference"),
            S(ints(rng, (3, 3)), pads=((1, 1), (2, 0)), value=-1)]


add(OpInfo("pad", _pad_samples, _pad_ref,
           big=lambda rng: [S(rnd(rng, (16, 32, 62, 62)), pads=((0, 0), (0, 0), (1, 1), (1, 1))),
                            S(rnd(rng, (16, 32, 60, 60)), pads=((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")]))


# -- creation and masks ----------------------------------------------------------------------------------------------------


def _arange_ref(start=0, end=None, step=1, dtype=None):
    return to_numpy(torch.arange(start, end, step, dtype=None if dtype is None else _TORCH_DT[dtype]))


add(OpInfo("arange", lambda rng: [S(end=5), S(start=2, end=11, step=3), S(start=5, end=-3, step=-2),
                                  S(start=0.5, end=2.0, step=0.25), S(end=4, dtype="f32"), S(start=3, end=3)],
           _arange_ref, big=lambda rng: [S(end=1 << 18)]))


def _full_ref(shape, value, dtype=None):
    return to_numpy(torch.full(shape, value, dtype=None if dtype is None else _TORCH_DT[dtype]))


add(OpInfo("full", lambda rng: [S(shape=(2, 3), value=1.5), S(shape=(4,), value=3), S(shape=(2, 2), value=True),
                                S(shape=(), value=-1.0, dtype="f16"), S(shape=(3, 1), value=2, dtype="f32")],
           _full_ref, big=lambda rng: [S(shape=(256, 1024), value=0.5)]))


def _full_like_ref(x, value, dtype=None):
    return to_numpy(torch.full_like(T(x), value, dtype=None if dtype is None else _TORCH_DT[dtype]))


add(OpInfo("full_like", lambda rng: [S(rnd(rng, (2, 3)), value=0.0), S(ints(rng, (4,)), value=7),
                                     S(rnd(rng, (3, 2)), value=1, dtype="i64"), S(rnd(rng, (2, 4, 3)), value=float("-inf"))],
           _full_like_ref, big=lambda rng: [S(rnd(rng, (256, 1024)), value=0.5)]))


def _tri_samples(rng):
    return [S(rnd(rng, (4, 5))), S(rnd(rng, (2, 3, 4, 4)), diagonal=1), S(rnd(rng, (3, 5, 3)), diagonal=-1),
            S(bools(rng, (4, 4))), S(ints(rng, (2, 3, 3)), diagonal=2)]


for _name, _fn in (("triu", torch.triu), ("tril", torch.tril)):
    add(OpInfo(_name, _tri_samples, torch_ref((lambda f: lambda x, diagonal=0: f(x, diagonal))(_fn)),
               big=lambda rng: [S(rnd(rng, (16, 256, 256)), diagonal=0)]))


# -- attention -----------------------------------------------------------------------------------------------------------------


def _sdpa_ref(q, k, v, mask=None, is_causal=False, scale=None):
    return to_numpy(F.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=None if mask is None else T(mask),
                                                   is_causal=is_causal, scale=scale))


def _sdpa_samples(rng):
    B, H, L, S_, E = 2, 3, 5, 6, 4
    q, k, v = rnd(rng, (B, H, L, E)), rnd(rng, (B, H, S_, E)), rnd(rng, (B, H, S_, 3))
    causal_mask = bools(rng, (L, S_))
    causal_mask[:, 0] = True  # every query attends at least one key
    return [S(q, k, v), S(q, k, v, bools(rng, (B, 1, L, S_)) | np.eye(L, S_, dtype=bool), desc="bool mask, head-broadcast"),
            S(q, k, v, rnd(rng, (L, S_)), scale=0.3, desc="float mask"),
            S(rnd(rng, (B, H, L, E)), rnd(rng, (B, H, L, E)), rnd(rng, (B, H, L, E)), is_causal=True),
            S(q, k, v, causal_mask, desc="2-d bool mask"),
            S(q, rnd(rng, (B, 1, S_, E)), rnd(rng, (B, 1, S_, 3)), desc="shared k/v across heads"),
            S(rnd(rng, (L, E)), rnd(rng, (S_, E)), rnd(rng, (S_, E)), desc="no batch"),
            S(q, k, v, np.zeros((B, 1, 1, S_), bool) | (np.arange(S_) < 4), desc="key padding mask"),
            S(q, k, v, np.arange(L)[:, None] != 2, desc="a fully masked query row gives zeros"),
            S(rnd(rng, (2, 4, 8), "float16"), rnd(rng, (2, 6, 8), "float16"), rnd(rng, (2, 6, 8), "float16"))]


def _sdpa_big(rng):
    B, H, L, E = 1, 4, 256, 32
    return [S(rnd(rng, (B, H, L, E)), rnd(rng, (B, H, L, E)), rnd(rng, (B, H, L, E))),
            S(rnd(rng, (B, H, L, E)), rnd(rng, (B, H, L, E)), rnd(rng, (B, H, L, E)), bools(rng, (B, 1, L, L)) | np.eye(L, dtype=bool)),
            S(rnd(rng, (B, H, L, E)), rnd(rng, (B, H, L, E)), rnd(rng, (B, H, L, E)), is_causal=True)]


add(OpInfo("scaled_dot_product_attention", _sdpa_samples, _sdpa_ref, big=_sdpa_big, tol={"float16": (2e-2, 2e-2)}))


# -- reordering ----------------------------------------------------------------------------------------------------------------

add(OpInfo("flip", lambda rng: [S(rnd(rng, (3, 4)), axes=0), S(rnd(rng, (2, 3, 4)), axes=(0, -1)), S(ints(rng, (5,)), axes=(0,))],
           torch_ref(lambda x, axes: torch.flip(x, (axes,) if isinstance(axes, int) else axes)),
           big=lambda rng: [S(rnd(rng, (64, 256, 64)), axes=1)]))


def _roll_ref(x, shifts, axes=None):
    return to_numpy(torch.roll(T(x), shifts, axes))


add(OpInfo("roll", lambda rng: [S(rnd(rng, (3, 4)), shifts=1, axes=0), S(rnd(rng, (3, 4, 5)), shifts=(2, -1), axes=(1, -1)),
                                S(rnd(rng, (3, 4)), shifts=5), S(rnd(rng, (3, 4)), shifts=4, axes=1, desc="a full turn"),
                                S(rnd(rng, (4, 4)), shifts=(1, 1), axes=(0, 0), desc="one axis twice")],
           _roll_ref, big=lambda rng: [S(rnd(rng, (64, 256, 64)), shifts=3, axes=1)]))
add(OpInfo("tile", lambda rng: [S(rnd(rng, (2, 3)), repeats=(2, 1)), S(rnd(rng, (2, 3)), repeats=(3,)),
                                S(rnd(rng, (1, 3)), repeats=(2, 4, 1), desc="a new leading axis"),
                                S(rnd(rng, (2, 3)), repeats=(1, 1)), S(ints(rng, (3,)), repeats=(2, 2))],
           torch_ref(lambda x, repeats: torch.tile(x, repeats)),
           big=lambda rng: [S(rnd(rng, (64, 128, 64)), repeats=(1, 2, 1))]))


def _distinct(rng, shape, dtype="float32"):
    """Distinct values (sorting and topk break ties in no specified order)."""
    n = int(np.prod(shape))
    values = rng.permutation(n).reshape(shape)
    return (values / 8.0).astype(dtype) if np.dtype(dtype).kind == "f" else values.astype(dtype)


def _topk_compare(actual, expected, sample):
    """Unsorted results may come in any order: compare sorted values, and indices through x."""
    x = sample.inputs[0]
    axis = sample.attrs.get("axis", -1)
    values, indices = actual
    np.testing.assert_array_equal(np.sort(values, axis=axis), np.sort(expected[0], axis=axis))
    np.testing.assert_array_equal(np.take_along_axis(x, indices, axis=axis), values)
    if sample.attrs.get("sorted", True):
        np.testing.assert_array_equal(values, expected[0])
        np.testing.assert_array_equal(indices, expected[1])


def _topk_ref(x, k, axis=-1, largest=True, sorted=True):
    return to_numpy(torch.topk(T(x), k, dim=axis, largest=largest, sorted=sorted))


add(OpInfo("topk", lambda rng: [S(_distinct(rng, (3, 8)), k=3), S(_distinct(rng, (6, 4)), k=2, axis=0, largest=False),
                                S(_distinct(rng, (2, 5, 3)), k=5, axis=1, sorted=False), S(_distinct(rng, (4,), "float16"), k=4),
                                S(_distinct(rng, (3, 5), "int64"), k=1, axis=-1)],
           _topk_ref, compare=_topk_compare,
           big=lambda rng: [S(_distinct(rng, (512, 512)), k=16), S(_distinct(rng, (512, 512)), k=16, sorted=False)]))


def _sort_ref(x, axis=-1, descending=False):
    return to_numpy(torch.sort(T(x), dim=axis, descending=descending))


add(OpInfo("sort", lambda rng: [S(_distinct(rng, (3, 8))), S(_distinct(rng, (6, 4)), axis=0, descending=True),
                                S(_distinct(rng, (2, 7, 3)), axis=1, descending=True), S(_distinct(rng, (5,), "int64"))],
           _sort_ref, big=lambda rng: [S(_distinct(rng, (512, 512))), S(_distinct(rng, (512, 512)), descending=True)]))


# -- opaque ----------------------------------------------------------------------------------------------------------------------

add(OpInfo("opaque", lambda rng: [S(rnd(rng, (2, 3)), target="aten::foo.default", result_types=("f32[2, 3]", "i64[4]")),
                                  S(target="my_ns::make", result_types=("f16[]",), desc="no inputs")],
           None, raises=ChunkcError))


# -- ops of chunkc/ir/ops/extra_onnx.py (the ONNX importer's helpers) ---------------------------------------------------------------

add(OpInfo("size_tensor", lambda rng: [S(values=(3, 4), shape=(2,)), S(values=(7,), shape=(), dtype="i32"),
                                       S(values=(1, 2, 3, 4, 5, 6), shape=(2, 3))],
           lambda values, shape=(), dtype="i64": np.array(values, dtype={"i64": "int64", "i32": "int32"}[str(dtype)]).reshape(shape)))

for _name, _fn, (_lo, _hi) in (("asin", torch.asin, (-0.9, 0.9)), ("acos", torch.acos, (-0.9, 0.9)),
                               ("asinh", torch.asinh, (-3, 3)), ("acosh", torch.acosh, (1.1, 4)),
                               ("atanh", torch.atanh, (-0.9, 0.9)), ("sinh", torch.sinh, (-3, 3)),
                               ("cosh", torch.cosh, (-3, 3))):
    add(OpInfo(_name, _unary_samples(_lo, _hi, False), torch_ref(_fn)))

add(OpInfo("bitwise_not", lambda rng: [S(ints(rng, (3, 4), -50, 50)), S(bools(rng, (5,))), S(ints(rng, (4,), 0, 200, "uint8"))],
           torch_ref(torch.bitwise_not)))


def _int_pair_samples(rng):
    return [S(ints(rng, (3, 4), -50, 50), ints(rng, (4,), -50, 50)), S(ints(rng, (2, 3), 0, 100, "int32"), ints(rng, (2, 3), 0, 100, "int32")),
            S(bools(rng, (3,)), bools(rng, (3,)))]


def _shift_samples(rng):
    return [S(ints(rng, (3, 4), 0, 50), ints(rng, (4,), 0, 4)), S(ints(rng, (5,), 0, 200, "uint8"), ints(rng, (5,), 0, 3, "uint8"))]


for _name, _fn in (("bitwise_and", torch.bitwise_and), ("bitwise_or", torch.bitwise_or), ("bitwise_xor", torch.bitwise_xor)):
    add(OpInfo(_name, _int_pair_samples, torch_ref(_fn)))
add(OpInfo("shift_left", _shift_samples, torch_ref(torch.bitwise_left_shift)))
add(OpInfo("shift_right", _shift_samples, torch_ref(torch.bitwise_right_shift)))


def _gather_nd_ref(data, indices, batch_dims=0):
    """ONNX GatherND by explicit loops."""
    b = batch_dims
    k = indices.shape[-1]
    out = np.empty(indices.shape[:-1] + data.shape[b + k:], data.dtype)
    for pos in np.ndindex(*indices.shape[:-1]):
        where = tuple(int(i) % data.shape[b + j] for j, i in enumerate(indices[pos]))
        out[pos] = data[pos[:b] + where]
    return out


add(OpInfo("gather_nd", lambda rng: [S(rnd(rng, (4, 5, 3)), ints(rng, (2, 2), 0, 4)),
                                     S(rnd(rng, (2, 4, 3)), ints(rng, (2, 3, 1), -4, 4), batch_dims=1)],
           _gather_nd_ref))


def _scatter_elements_ref(data, indices, updates, axis=0, reduction="none"):
    out = data.copy()
    for pos in np.ndindex(*indices.shape):
        target = list(pos)
        target[axis] = int(indices[pos]) % data.shape[axis]
        target = tuple(target)
        u = updates[pos]
        out[target] = {"none": lambda a: u, "add": lambda a: a + u, "mul": lambda a: a * u,
                       "max": lambda a: max(a, u), "min": lambda a: min(a, u)}[reduction](out[target])
    return out


def _scatter_samples(rng):
    perm = np.stack([rng.permutation(4)[:3] for _ in range(2)], axis=1)  # distinct targets per column
    return [S(rnd(rng, (4, 2)), perm.astype("int64"), rnd(rng, (3, 2)), axis=0),
            S(rnd(rng, (3, 5)), ints(rng, (3, 4), 0, 5), rnd(rng, (3, 4)), axis=1, reduction="add"),
            S(rnd(rng, (3, 5)), ints(rng, (2, 3), -5, 5), rnd(rng, (2, 3)), axis=-1, reduction="max")]


add(OpInfo("scatter_elements", _scatter_samples, _scatter_elements_ref))


def _scatter_nd_ref(data, indices, updates, reduction="none"):
    out = data.copy()
    k = indices.shape[-1]
    for pos in np.ndindex(*indices.shape[:-1]):
        target = tuple(int(i) % data.shape[j] for j, i in enumerate(indices[pos]))
        u = updates[pos]
        out[target] = {"none": lambda a: u, "add": lambda a: a + u, "mul": lambda a: a * u,
                       "max": lambda a: np.maximum(a, u), "min": lambda a: np.minimum(a, u)}[reduction](out[target])
    del k
    return out


add(OpInfo("scatter_nd", lambda rng: [S(rnd(rng, (4, 3)), np.array([[2], [0]]), rnd(rng, (2, 3))),
                                      S(rnd(rng, (4, 3)), np.array([[1, 2], [3, 0], [1, 2]]), rnd(rng, (3,)), reduction="add")],
           _scatter_nd_ref))


# -- sample graphs: symbolic sizes, weights, several nodes ---------------------------------------------------------
#
# A builder gets a SampleGraph and returns the values to check; every backend runs the graph at two sizes of
# L and compares each value with the interpreter's.  Inputs are declared with a value range, so that log,
# sqrt, acosh... get valid arguments and integer ops get small integers.

L = chunkc.sym("L")
GRAPH_SIZES = ({"L": 5}, {"L": 7})


class SampleGraph:
    """A graph under construction, with the value range of each input."""

    def __init__(self, name: str):
        self.graph = chunkc.Graph(name)
        self.ranges: list[tuple] = []

    def inp(self, dtype: str, shape, low: float = -1.0, high: float = 1.0, name: str = "x"):
        self.ranges.append((low, high))
        return self.graph.add_input(name, dtype, shape)

    def const(self, data, name="c"):
        return self.graph.add_constant(name, np.asarray(data))

    def arrays(self, sizes: dict[str, int], seed: int = 0) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        out = []
        for v, (low, high) in zip(self.graph.inputs, self.ranges):
            shape = v.type.concrete_shape(sizes)
            if v.dtype.name == "bool":
                out.append(rng.random(shape) < 0.5)
            elif v.dtype.is_floating:
                out.append(rng.uniform(low, high, size=shape).astype(v.dtype.numpy))
            else:
                out.append(rng.integers(int(low), int(high), size=shape).astype(v.dtype.numpy))
        return out


def graph_sample(*ops: str):
    """Attach the decorated builder to the op infos of ``ops``."""
    def deco(fn):
        for op in ops:
            _OPINFOS[op].graphs.append(fn)
        return fn
    return deco


DOMAINS = {"acosh": (1.1, 3.0), "log": (0.1, 2.0), "sqrt": (0.1, 2.0), "rsqrt": (0.1, 2.0), "log1p": (0.1, 2.0),
           "reciprocal": (0.2, 2.0), "atanh": (-0.9, 0.9), "asin": (-0.9, 0.9), "acos": (-0.9, 0.9)}


def _automatic(name: str, op) -> list:
    """Builders for ops without required attributes: 1 to 3 inputs, float or integer, broadcasting.
    Marked ``automatic``: a variant the op refuses (an integer input to a float op) is skipped."""
    if any(v is REQUIRED for v in op.attrs.values()):
        return []
    lo, hi = DOMAINS.get(name, (-1.0, 1.0))
    shapes = {(1, 1): [("f32", (2, L, 4))], (2, 2): [("f32", (2, L, 4)), ("f32", (L, 4))],
              (3, 3): [("bool", (L, 4)), ("f32", (2, L, 4)), ("f32", (L, 1))]}.get(tuple(op.num_inputs))
    if shapes is None:
        return []
    out = []
    for int_variant in (False, True):
        def build(s, int_variant=int_variant, shapes=shapes):
            xs = []
            for i, (dt, shape) in enumerate(shapes):
                if int_variant and dt == "f32":
                    xs.append(s.inp("i32", shape, 0, 8, name=f"x{i}"))
                else:
                    low = 0.5 if name in ("fmod", "remainder", "floor_divide", "div", "pow") and i == 1 else lo
                    xs.append(s.inp(dt, shape, low, hi, name=f"x{i}"))
            if int_variant and name in ("fmod", "remainder", "floor_divide", "div") and len(xs) == 2:
                s.ranges[1] = (1, 8)  # no integer division by zero
            return (s.graph.op(name, *xs),)
        build.automatic = True
        out.append(build)
    return out


def graph_samples(name: str, info: OpInfo | None = None) -> list:
    """The op's sample graphs: its own, or automatic ones."""
    info = info or all_infos()[name]
    return list(info.graphs) or _automatic(name, all_ops()[name])


@graph_sample("cast")
def _(s):
    x = s.inp("f32", (L, 3), -4, 4)
    return O.cast(x, dtype="f16"), O.cast(x, dtype="i32"), O.cast(x, dtype="f32")


@graph_sample("toeplitz")
def _(s):
    table = s.inp("f32", (2, L), name="table")
    k = s.const(np.arange(-4, 5, dtype=np.int64), "k")
    return (s.graph.op("toeplitz", table, rows=L, cols=1, base=L - 1), s.graph.op("toeplitz", k, rows=5, cols=5, base=4))


@graph_sample("clamp")
def _(s):
    x = s.inp("f32", (L, 3))
    return O.clamp(x, min=-0.2, max=0.3), O.clamp(x, max=0.1)


@graph_sample("masked_fill")
def _(s):
    x, m = s.inp("f32", (2, L, 3)), s.inp("bool", (L, 1), name="m")
    return (O.masked_fill(x, m, value=float("-inf")),)


@graph_sample("where", "add", "mul", "sub", "div", "lt")
def _(s):
    c, a = s.inp("bool", (L, 3), name="c"), s.inp("f32", (2, L, 3), 0.5, 1.0)
    k = s.const(np.float32(0.25), "k")
    k64 = s.const(np.float64(0.5), "k64")
    return O.where(c, a, k), a * 0.5, 1.0 - a, O.div(2.0, a), O.add(a, k64), O.lt(a, 0.75)


@graph_sample("matmul", "bmm", "linear", "addmm", "einsum")
def _(s):
    a = s.inp("f32", (2, L, 4), name="a")
    w = s.const(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32), "w")
    b = s.const(np.arange(5, dtype=np.float32), "b")
    m = s.const(np.random.default_rng(1).standard_normal((3, 1, 4, 2)).astype(np.float32), "m")
    sq = s.const(np.random.default_rng(2).standard_normal((2, 4, 4)).astype(np.float32), "sq")
    a2 = O.reshape(a, shape=(2 * L, 4))
    return (O.matmul(a, O.permute(w, dims=(1, 0))), O.matmul(O.unsqueeze(a, axis=0), m), O.bmm(a, sq),
            O.linear(a, w, b), O.linear(a, w), O.addmm(b, a2, O.permute(w, dims=(1, 0)), beta=0.5, alpha=2.0),
            O.einsum(a, sq, equation="blj,bjk->bkl"))


@graph_sample("sum", "mean", "amax", "amin", "prod", "any", "all", "var", "argmax", "argmin")
def _(s):
    x = s.inp("f32", (2, L, 4), 0.5, 1.5)
    i = s.inp("i32", (L, 3), 0, 5, name="i")
    b = O.gt(x, 1.0)
    return (O.sum(x, axes=(0, 2), keepdim=True), O.sum(i, axes=1), O.sum(x), O.mean(x, axes=-1),
            O.amax(x), O.amin(x, axes=(1,)), O.prod(x, axes=(0, 2)), O.prod(x, axes=1, keepdim=True),
            O.prod(i, axes=0), O.any(b, axes=2), O.all(b), O.var(x, axes=1, correction=0),
            O.var(x, axes=(0, 2), keepdim=True), O.argmax(x, axis=1, keepdim=True), O.argmin(x, axis=-1))


@graph_sample("softmax", "log_softmax", "cumsum", "cumprod")
def _(s):
    x, i = s.inp("f32", (2, L, 4), 0.5, 1.5), s.inp("i32", (L, 4), 0, 5, name="i")
    return (O.softmax(x, axis=1), O.log_softmax(x, axis=-1), O.cumsum(x, axis=1), O.cumsum(i, axis=0),
            s.graph.op("cumprod", x, axis=1), s.graph.op("cumprod", i, axis=0))


@graph_sample("reshape", "permute", "expand", "squeeze", "unsqueeze", "slice", "contiguous", "copy")
def _(s):
    x = s.inp("f32", (L, 1, 4))
    p = O.permute(x, dims=(2, 1, 0))
    return (O.reshape(x, shape=(2, L, 2)), O.reshape(p, shape=(-1,)), O.expand(x, shape=(3, L, 5, 4)),
            O.squeeze(x), O.squeeze(x, axes=(0,)), O.unsqueeze(x, axis=-1),
            O.slice(x, axis=2, start=1, end=None, step=2), O.slice(x, axis=0, start=1, end=L - 1),
            O.slice(x, axis=2, start=-3, end=-1), O.contiguous(p), O.copy(p))


@graph_sample("layer_norm", "rms_norm", "group_norm", "batch_norm")
def _(s):
    x = s.inp("f32", (2, 6, L))
    rng = np.random.default_rng(3)
    w6, b6 = s.const(rng.uniform(0.5, 1.5, 6).astype(np.float32), "w6"), s.const(rng.standard_normal(6).astype(np.float32), "b6")
    mean, var = s.const(rng.standard_normal(6).astype(np.float32), "mean"), s.const(rng.uniform(0.5, 2, 6).astype(np.float32), "var")
    t = O.permute(x, dims=(0, 2, 1))
    return (O.layer_norm(t, w6, b6), O.layer_norm(x, num_axes=2, eps=1e-3), O.rms_norm(t, w6),
            O.rms_norm(t, eps=1e-6), O.group_norm(x, w6, b6, num_groups=3), O.group_norm(x, num_groups=2),
            O.batch_norm(x, mean, var, w6, b6), O.batch_norm(x, mean, var))


@graph_sample("concat", "stack", "split")
def _(s):
    a, b = s.inp("f32", (2, L), name="a"), s.inp("f32", (3, L), name="b")
    p, q, r = O.split(b, sizes=(1, 1, 1), axis=0)
    only = O.split(a, sizes=(2,), axis=0)  # one output: the node's value itself
    head, tail = O.split(a, sizes=(1, L - 1), axis=1)
    return O.concat(a, b, axis=0), O.stack(p, q, r, axis=1), p, r, only, head, tail


@graph_sample("take", "gather", "embedding")
def _(s):
    x = s.inp("f32", (3, L, 4))
    idx = s.const(np.array([[0, 3], [-1, 2]], np.int64), "idx")
    g_idx = s.inp("i64", (3, L, 2), 0, 4, name="gi")
    table = s.const(np.random.default_rng(4).standard_normal((10, 5)).astype(np.float32), "table")
    ids = s.inp("i64", (2, L), 0, 10, name="ids")
    return O.take(x, idx, axis=2), O.take(x, s.const(np.int64(1), "one"), axis=0), O.gather(x, g_idx, axis=2), \
        O.embedding(table, ids)


@graph_sample("conv", "conv_transpose")
def _(s):
    x1, x2 = s.inp("f32", (2, 4, L), name="x1"), s.inp("f32", (1, 4, L, 6), name="x2")
    rng = np.random.default_rng(5)
    w1 = s.const(rng.standard_normal((6, 2, 3)).astype(np.float32), "w1")
    w2 = s.const(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), "w2")
    wt = s.const(rng.standard_normal((4, 3, 2, 2)).astype(np.float32), "wt")
    b6 = s.const(rng.standard_normal(6).astype(np.float32), "b6")
    return (O.conv(x1, w1, b6, stride=(1,), padding=((1, 1),), dilation=(2,), groups=2),
            O.conv(x2, w2, padding=((0, 1), (1, 2)), stride=(1, 2)),
            O.conv_transpose(x2, wt, stride=(2, 2)),
            O.conv_transpose(x2, wt, stride=(2, 1), padding=((1, 0), (0, 1)), output_padding=(1, 0)))


@graph_sample("max_pool", "avg_pool", "adaptive_avg_pool")
def _(s):
    x = s.inp("f32", (2, 3, 8, L))
    x5 = s.inp("f32", (2, 2, 2, 6, L), name="x5")
    return (O.max_pool(x, kernel=(2, 2)), O.max_pool(x, kernel=(3, 3), stride=(2, 1), padding=((1, 1), (1, 1)),
                                                      ceil_mode=True),
            O.max_pool(x5, kernel=(3,), padding=((1, 0),)), O.avg_pool(x, kernel=(2, 3), stride=(2, 1)),
            O.avg_pool(x, kernel=(3, 3), padding=((1, 1), (0, 1)), count_include_pad=False),
            O.avg_pool(x5, kernel=(2, 2), padding=((1, 0), (0, 0))),
            O.adaptive_avg_pool(x, output_size=(3, 2)), O.adaptive_avg_pool(x5, output_size=(2,)))


@graph_sample("interpolate", "pad")
def _(s):
    x = s.inp("f32", (2, 3, 4, L))
    x3 = s.inp("f32", (3, L, 5), name="x3")
    return (O.interpolate(x, size=(8, 3), mode="nearest"), O.interpolate(x, size=(7, 2), mode="nearest_exact"),
            O.interpolate(x, size=(6, 9), mode="linear"), O.interpolate(x, size=(5, 4), mode="linear", align_corners=True),
            O.interpolate(x3, size=(9,), mode="linear"),
            O.pad(x3, pads=((0, 0), (1, 2), (-1, 1)), value=0.5), O.pad(x3, pads=((0, 0), (0, 0), (2, 1)), mode="reflect"),
            O.pad(x, pads=((0, 0), (1, 0), (0, 2), (1, 1)), mode="replicate"),
            O.pad(x3, pads=((0, 0), (1, 1), (2, 0)), mode="circular"))


@graph_sample("arange", "full", "full_like", "triu", "tril")
def _(s):
    x = s.inp("f32", (2, L, L))
    g = s.graph
    return (g.op("arange", end=L), g.op("arange", start=1, end=2 * L, step=3), g.op("arange", end=2.5, step=0.5),
            g.op("full", shape=(2, L), value=1.5), g.op("full", shape=(L,), value=True), O.full_like(x, value=2),
            O.full_like(x, value=3, dtype="i64"), O.triu(x), O.tril(x, diagonal=-1))


@graph_sample("flip", "roll", "tile", "topk", "sort")
def _(s):
    x = s.inp("f32", (3, L, 4))
    v, i = O.topk(x, k=2, axis=-1)
    v2, i2 = O.topk(x, k=3, axis=0, largest=False)
    sv, si = O.sort(x, axis=1, descending=True)
    return (O.flip(x, axes=(0, 2)), O.roll(x, shifts=(1, -2), axes=(0, 2)), O.roll(x, shifts=3),
            O.tile(x, repeats=(2, 1, 1)), O.tile(x, repeats=(2, 1, 1, 3)), v, i, v2, i2, sv, si)


@graph_sample("scaled_dot_product_attention")
def _(s):
    q = s.inp("f32", (2, 3, L, 8), name="q")
    k = s.inp("f32", (2, 3, 7, 8), name="k")
    v = s.inp("f32", (2, 3, 7, 5), name="v")
    bm = s.inp("bool", (L, 7), name="bm")
    fm = s.inp("f32", (1, 1, L, 7), name="fm")
    kq = s.inp("f32", (2, 3, L, 8), name="kq")
    vq = s.inp("f32", (2, 3, L, 8), name="vq")
    sdpa = O.scaled_dot_product_attention
    return (sdpa(q, k, v), sdpa(q, k, v, bm), sdpa(q, k, v, fm, scale=0.3), sdpa(q, kq, vq, is_causal=True))


@graph_sample("size_tensor", "gather_nd", "scatter_elements", "scatter_nd", "shift_left", "shift_right")
def _(s):
    x = s.inp("f32", (L, 4, 3))
    g = s.graph
    out = [g.op("size_tensor", values=(L, 12, 2 * L, 1), shape=(2, 2)), g.op("size_tensor", values=(L - 1,), shape=())]
    idx = s.const(np.array([[0, 1], [-1, 3], [1, 0]], np.int64), "idx")
    out.append(g.op("gather_nd", x, idx))
    bidx = s.const(np.array([[[1], [3]], [[0], [-1]]], np.int64), "bidx")
    x2 = s.inp("f32", (2, 4, 3), name="x2")
    out.append(g.op("gather_nd", x2, bidx, batch_dims=1))
    data = s.inp("f32", (3, 4), name="data")
    ind = s.const(np.array([[1, 0], [2, -1]], np.int64), "ind")
    upd = s.inp("f32", (2, 2), name="upd")
    for red in ("none", "add", "max"):
        out.append(g.op("scatter_elements", data, ind, upd, axis=1, reduction=red))
    nd_ind = s.const(np.array([[0], [2], [0]], np.int64), "nd_ind")
    nd_upd = s.inp("f32", (3, 4), name="nd_upd")
    for red in ("none", "add", "mul", "min"):
        out.append(g.op("scatter_nd", data, nd_ind, nd_upd, reduction=red))
    a = s.inp("i32", (L, 3), 0, 64, name="ia")
    b = s.inp("i32", (L, 3), 0, 4, name="ib")
    out += [g.op("shift_left", a, b), g.op("shift_right", a, b)]
    return tuple(out)
