"""Tensor types: an element type and a shape of (possibly symbolic) sizes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .dtypes import DType, dtype as to_dtype
from .sizes import Size, evaluate, format_size, normalize, product


@dataclass(frozen=True)
class TensorType:
    dtype: DType
    shape: tuple[Size, ...]

    def __post_init__(self):
        object.__setattr__(self, "dtype", to_dtype(self.dtype))
        shape = tuple(normalize(s) for s in self.shape)
        for s in shape:
            if (s < 0) if isinstance(s, int) else bool(s.is_negative):
                raise ValueError(f"negative size {format_size(s)} in shape {shape}")
        object.__setattr__(self, "shape", shape)

    @property
    def rank(self) -> int:
        return len(self.shape)

    def numel(self) -> Size:
        return product(self.shape)

    def concrete_shape(self, bindings: Mapping[str, int] | None = None) -> tuple[int, ...]:
        return tuple(evaluate(s, bindings) for s in self.shape)

    def nbytes(self, bindings: Mapping[str, int] | None = None) -> int:
        n = self.dtype.itemsize
        for s in self.shape:
            n *= evaluate(s, bindings)
        return n

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dt) -> "TensorType":
        return TensorType(to_dtype(dt), self.shape)

    def __str__(self) -> str:
        return f"{self.dtype.short}[{', '.join(format_size(s) for s in self.shape)}]"
