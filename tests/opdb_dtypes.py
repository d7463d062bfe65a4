"""Op infos of chunkc/ir/ops/extra_dtypes.py: bitcast and cast_e8m0.

References are independent: PyTorch's ``Tensor.view(dtype)`` for bitcast, ONNX's own float8_e8m0
conversion (``onnx.numpy_helper.to_float8e8m0``) for cast_e8m0.
"""

from __future__ import annotations

import numpy as np
import torch

from chunkc import ops as O
from opdb import L, OpInfo, S, T, ints, rnd, to_numpy

_TORCH = {"i32": torch.int32, "f32": torch.float32, "u8": torch.uint8, "i8": torch.int8, "i16": torch.int16,
          "f16": torch.float16, "i64": torch.int64, "f64": torch.float64}


def _bitcast_samples(rng):
    return [S(rnd(rng, (3, 4)), dtype="i32"), S(ints(rng, (2, 5), -100, 100, "int32"), dtype="f32"),
            S(ints(rng, (6,), -100, 100, "int8"), dtype="u8"), S(rnd(rng, (), "float64"), dtype="i64"),
            S(rnd(rng, (4, 3), "float16"), dtype="i16")]


def _bitcast_ref(x, dtype):
    return to_numpy(T(x).view(_TORCH[str(dtype)]))


def _e8m0_samples(rng):
    special = np.array([0.0, -0.0, 1.0, 3.0, 0.75, -6.5, 2.0**127 * 1.5, 1e-40, np.inf, -np.inf, np.nan, 2.0**-127],
                       np.float32)
    return [S(rnd(rng, (4, 5), lo=-100, hi=100)), S(special), S(special, round_mode="nearest"),
            S(special, round_mode="down"), S(special, saturate=False), S(rnd(rng, (3, 6), "float16", 1e-3, 1e3))]


def _e8m0_ref(x, round_mode="up", saturate=True):
    from onnx.numpy_helper import to_float8e8m0
    return to_float8e8m0(np.asarray(x, np.float32), saturate=saturate, round_mode=round_mode)


def _bitcast_graph(s):
    x = s.inp("f32", (L, 3), -4, 4)
    i = s.inp("i16", (2, L), -300, 300, name="i")
    return O.bitcast(x, dtype="i32"), O.bitcast(i, dtype="f16"), O.bitcast(i, dtype="u16")


def _e8m0_graph(s):
    x = s.inp("f32", (L, 3), -100, 100)
    return O.cast_e8m0(x), O.cast_e8m0(x, round_mode="nearest", saturate=False)


OPINFOS = [
    OpInfo("bitcast", _bitcast_samples, _bitcast_ref, graphs=[_bitcast_graph]),
    OpInfo("cast_e8m0", _e8m0_samples, _e8m0_ref, graphs=[_e8m0_graph]),
]
