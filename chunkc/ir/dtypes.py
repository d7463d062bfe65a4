"""Element types. One table maps chunkc's names to NumPy and PyTorch names."""

from __future__ import annotations

import enum

import numpy as np


class DType(enum.Enum):
    # value: (short text name, itemsize in bytes, numpy name, is floating point)
    float64 = ("f64", 8, "float64", True)
    float32 = ("f32", 4, "float32", True)
    float16 = ("f16", 2, "float16", True)
    bfloat16 = ("bf16", 2, None, True)
    int64 = ("i64", 8, "int64", False)
    int32 = ("i32", 4, "int32", False)
    int16 = ("i16", 2, "int16", False)
    int8 = ("i8", 1, "int8", False)
    uint8 = ("u8", 1, "uint8", False)
    bool = ("bool", 1, "bool", False)

    @property
    def short(self) -> str:
        return self.value[0]

    @property
    def itemsize(self) -> int:
        return self.value[1]

    @property
    def is_floating(self) -> bool:
        return self.value[3]

    @property
    def numpy(self) -> np.dtype:
        if self.value[2] is None:
            raise TypeError(f"dtype {self.name} has no NumPy equivalent; cast to float32 first")
        return np.dtype(self.value[2])

    def __repr__(self) -> str:
        return f"chunkc.{self.name}"

    def __str__(self) -> str:
        return self.short


_BY_NAME = {}
for _d in DType:
    _BY_NAME[_d.short] = _d
    _BY_NAME[_d.name] = _d


def dtype(x) -> DType:
    """Accept a DType, its short or long name, a NumPy dtype, or a torch dtype."""
    if isinstance(x, DType):
        return x
    if isinstance(x, str):
        name = x.removeprefix("torch.")
        if name in _BY_NAME:
            return _BY_NAME[name]
        raise TypeError(f"unknown dtype {x!r}; known: {', '.join(d.short for d in DType)}")
    try:
        return _BY_NAME[np.dtype(x).name]
    except (TypeError, KeyError):
        pass
    name = str(x).removeprefix("torch.")
    if name in _BY_NAME:
        return _BY_NAME[name]
    raise TypeError(f"unknown dtype {x!r}; known: {', '.join(d.short for d in DType)}")


def promote(a: DType, b: DType) -> DType:
    """Result type of a binary op, following NumPy/PyTorch category rules."""
    if a == b:
        return a
    if a.is_floating != b.is_floating:
        return a if a.is_floating else b
    if a == DType.bool:
        return b
    if b == DType.bool:
        return a
    if {a, b} == {DType.float16, DType.bfloat16}:
        return DType.float32
    return a if a.itemsize >= b.itemsize else b


float64, float32, float16, bfloat16 = DType.float64, DType.float32, DType.float16, DType.bfloat16
int64, int32, int16, int8, uint8, bool_ = DType.int64, DType.int32, DType.int16, DType.int8, DType.uint8, DType.bool
