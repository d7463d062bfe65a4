"""PyTorch element types -> chunkc DTypes (one table, no string matching)."""

from __future__ import annotations

import torch

from chunkc.errors import UnsupportedOpError
from chunkc.ir.dtypes import DType

TORCH_TO_CHUNKC: dict[torch.dtype, DType] = {
    torch.float64: DType.float64,
    torch.float32: DType.float32,
    torch.float16: DType.float16,
    torch.bfloat16: DType.bfloat16,
    torch.int64: DType.int64,
    torch.int32: DType.int32,
    torch.int16: DType.int16,
    torch.int8: DType.int8,
    torch.uint8: DType.uint8,
    torch.bool: DType.bool,
}


def to_chunkc(dt: torch.dtype, where: str = "") -> DType:
    try:
        return TORCH_TO_CHUNKC[dt]
    except KeyError:
        known = ", ".join(str(k).removeprefix("torch.") for k in TORCH_TO_CHUNKC)
        raise UnsupportedOpError(f"{where + ': ' if where else ''}element type {dt} has no chunkc equivalent "
                                 f"(chunkc knows {known}); cast the model or input first") from None
