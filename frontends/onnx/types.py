"""ONNX element types and shapes in chunkc's terms.

A dimension with ``dim_value`` is an int; one with ``dim_param`` becomes a
symbolic size.  A ``dim_param`` that is a size expression over identifiers
(``2*seq``) is parsed as one (by chunkc's AST-based parser, never evaluated);
any other text is sanitized into a symbol name.  A dimension with neither gets
a fresh name built from the value and the axis.
"""

from __future__ import annotations

import keyword

import onnx
from onnx import TensorProto

from chunkc.errors import UnsupportedOpError
from chunkc.ir.dtypes import DType
from chunkc.ir.graph import sanitize_name
from chunkc.ir.sizes import Size, normalize, parse_size, sym

ONNX_TO_DTYPE: dict[int, DType] = {
    TensorProto.FLOAT: DType.float32,
    TensorProto.DOUBLE: DType.float64,
    TensorProto.FLOAT16: DType.float16,
    TensorProto.BFLOAT16: DType.bfloat16,
    TensorProto.FLOAT8E4M3FN: DType.float8_e4m3fn,
    TensorProto.FLOAT8E4M3FNUZ: DType.float8_e4m3fnuz,
    TensorProto.FLOAT8E5M2: DType.float8_e5m2,
    TensorProto.FLOAT8E5M2FNUZ: DType.float8_e5m2fnuz,
    TensorProto.FLOAT8E8M0: DType.float8_e8m0fnu,
    TensorProto.FLOAT4E2M1: DType.float4_e2m1fn,
    TensorProto.INT64: DType.int64,
    TensorProto.INT32: DType.int32,
    TensorProto.INT16: DType.int16,
    TensorProto.INT8: DType.int8,
    TensorProto.INT4: DType.int4,
    TensorProto.INT2: DType.int2,
    TensorProto.UINT64: DType.uint64,
    TensorProto.UINT32: DType.uint32,
    TensorProto.UINT16: DType.uint16,
    TensorProto.UINT8: DType.uint8,
    TensorProto.UINT4: DType.uint4,
    TensorProto.UINT2: DType.uint2,
    TensorProto.BOOL: DType.bool,
}
DTYPE_TO_ONNX = {d: k for k, d in ONNX_TO_DTYPE.items()}


def elem_type_name(elem_type: int) -> str:
    try:
        return TensorProto.DataType.Name(elem_type)
    except ValueError:
        return f"element type {elem_type}"


def is_supported_elem_type(elem_type: int) -> bool:
    return elem_type in ONNX_TO_DTYPE


def to_dtype(elem_type: int, where: str) -> DType:
    """chunkc's dtype for an ONNX element type, or a clear refusal naming ``where``."""
    try:
        return ONNX_TO_DTYPE[elem_type]
    except KeyError:
        known = ", ".join(sorted(elem_type_name(k) for k in ONNX_TO_DTYPE))
        raise UnsupportedOpError(f"{where}: element type {elem_type_name(elem_type)} has no chunkc dtype "
                                 f"(supported: {known})") from None


def identifier(text: str) -> str:
    """A sanitized identifier that is also not a Python keyword."""
    name = sanitize_name(text)
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name.startswith("__"):
        name = "v" + name
    return name


def symbol_size(dim_param: str) -> Size:
    """The size a ``dim_param`` names: a size expression, else a sanitized symbol."""
    text = dim_param.strip()
    try:
        size = parse_size(text)
    except (ValueError, TypeError, RecursionError):
        size = None
    if size is not None and not isinstance(size, int) and _symbols_are_identifiers(size):
        return size
    return sym(identifier(text))


def _symbols_are_identifiers(size) -> bool:
    return all(identifier(s.name) == s.name for s in size.free_symbols)


def shape_from_type(type_proto: onnx.TypeProto, what: str) -> tuple[Size, ...] | None:
    """The shape of a tensor TypeProto (None when it has no shape at all)."""
    tensor = type_proto.tensor_type
    if not tensor.HasField("shape"):
        return None
    dims: list[Size] = []
    for axis, d in enumerate(tensor.shape.dim):
        which = d.WhichOneof("value")
        if which == "dim_value" and d.dim_value >= 0:
            dims.append(int(d.dim_value))
        elif which == "dim_param" and d.dim_param:
            dims.append(symbol_size(d.dim_param))
        else:
            dims.append(sym(identifier(f"{what}_dim{axis}")))
    return tuple(normalize(s) for s in dims)
