"""Element types. One table maps chunkc's names to NumPy and PyTorch names.

NumPy has no bfloat16, float8, float4 or sub-byte integer types; chunkc takes
them from ``ml_dtypes`` (the library JAX and ONNX use), whose scalar types are
NumPy dtypes: ``DType.bfloat16.numpy`` is ``np.dtype(ml_dtypes.bfloat16)``.
Each enum member is named like its NumPy/ml_dtypes dtype (and its PyTorch
dtype where PyTorch has one), so ``dtype(np.dtype(...))`` finds it by name.
An element of a sub-byte type (int4, float4...) takes one byte in memory, as
ml_dtypes stores it.
"""

from __future__ import annotations

import enum

import numpy as np


class DType(enum.Enum):
    # value: (short text name, itemsize in bytes, is floating point, kind)
    # kind: "numpy" (NumPy's own dtype) or "ml" (an ml_dtypes dtype)
    float64 = ("f64", 8, True, "numpy")
    float32 = ("f32", 4, True, "numpy")
    float16 = ("f16", 2, True, "numpy")
    bfloat16 = ("bf16", 2, True, "ml")
    float8_e4m3fn = ("f8e4m3fn", 1, True, "ml")
    float8_e4m3fnuz = ("f8e4m3fnuz", 1, True, "ml")
    float8_e5m2 = ("f8e5m2", 1, True, "ml")
    float8_e5m2fnuz = ("f8e5m2fnuz", 1, True, "ml")
    float8_e8m0fnu = ("f8e8m0fnu", 1, True, "ml")
    float4_e2m1fn = ("f4e2m1fn", 1, True, "ml")
    int64 = ("i64", 8, False, "numpy")
    int32 = ("i32", 4, False, "numpy")
    int16 = ("i16", 2, False, "numpy")
    int8 = ("i8", 1, False, "numpy")
    int4 = ("i4", 1, False, "ml")
    int2 = ("i2", 1, False, "ml")
    uint64 = ("u64", 8, False, "numpy")
    uint32 = ("u32", 4, False, "numpy")
    uint16 = ("u16", 2, False, "numpy")
    uint8 = ("u8", 1, False, "numpy")
    uint4 = ("u4", 1, False, "ml")
    uint2 = ("u2", 1, False, "ml")
    bool = ("bool", 1, False, "numpy")

    @property
    def short(self) -> str:
        return self.value[0]

    @property
    def itemsize(self) -> int:
        return self.value[1]

    @property
    def is_floating(self) -> bool:
        return self.value[2]

    @property
    def mantissa_bits(self) -> int | None:
        """Explicit mantissa bits of a floating-point type (f32: 23, bf16: 7); None for integers."""
        if not self.is_floating:
            return None
        import ml_dtypes  # its finfo covers NumPy's floats and its own
        return int(ml_dtypes.finfo(self.numpy).nmant)

    @property
    def is_unsigned(self) -> bool:
        return self.name.startswith("uint")

    @property
    def from_ml_dtypes(self) -> bool:
        """Whether NumPy holds this type through ml_dtypes (NumPy ufuncs cover it only in part)."""
        return self.value[3] == "ml"

    @property
    def numpy(self) -> np.dtype:
        return _numpy_dtype(self)

    @property
    def wide(self) -> np.dtype:
        """A NumPy-native dtype that holds every value of this type exactly (itself when native):
        f32 for the small floats, i8/u8 for the sub-byte integers."""
        if not self.from_ml_dtypes:
            return self.numpy
        if self.is_floating:
            return np.dtype(np.float32)
        return np.dtype(np.uint8 if self.is_unsigned else np.int8)

    def __repr__(self) -> str:
        return f"chunkc.{self.name}"

    def __str__(self) -> str:
        return self.short


_NUMPY: dict[DType, np.dtype] = {}


def _numpy_dtype(dt: DType) -> np.dtype:
    found = _NUMPY.get(dt)
    if found is None:
        if dt.from_ml_dtypes:
            import ml_dtypes
            found = np.dtype(getattr(ml_dtypes, dt.name))
        else:
            found = np.dtype(dt.name)
        _NUMPY[dt] = found
    return found


_BY_NUMPY: dict[np.dtype, DType] = {}  # filled on first use (dtype())
_BY_NAME = {}
for _d in DType:
    _BY_NAME[_d.short] = _d
    _BY_NAME[_d.name] = _d


def dtype(x) -> DType:
    """Accept a DType, its short or long name, a NumPy (or ml_dtypes) dtype, or a torch dtype."""
    if isinstance(x, DType):
        return x
    if isinstance(x, str):
        name = x.removeprefix("torch.")
        if name in _BY_NAME:
            return _BY_NAME[name]
        raise TypeError(f"unknown dtype {x!r}; known: {', '.join(d.short for d in DType)}")
    try:
        np_dt = np.dtype(x)
    except TypeError:
        np_dt = None
    if np_dt is not None:
        # keyed by the NumPy dtype itself: the NumPy references ask this at every call, and
        # ``np.dtype.name`` builds its string in Python each time, whose allocations go on
        # growing over a program's first calls (tracemalloc counted 1.5-5 KiB in a run)
        found = _BY_NUMPY.get(np_dt)
        if found is None and np_dt.name in _BY_NAME:
            found = _BY_NUMPY[np_dt] = _BY_NAME[np_dt.name]
        if found is not None:
            return found
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
    if a.is_floating and a.itemsize == b.itemsize:
        return DType.float32 if a.itemsize < 4 else a  # two formats of one width (f16, bf16): f32 holds both
    return a if a.itemsize >= b.itemsize else b


float64, float32, float16, bfloat16 = DType.float64, DType.float32, DType.float16, DType.bfloat16
int64, int32, int16, int8, uint8, bool_ = DType.int64, DType.int32, DType.int16, DType.int8, DType.uint8, DType.bool
uint16, uint32, uint64 = DType.uint16, DType.uint32, DType.uint64
