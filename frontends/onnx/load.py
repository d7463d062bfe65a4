"""Reading a model: a ModelProto, serialized bytes, or a path.

A truncated or corrupt file is refused with a ChunkcError naming the file;
initializers whose data live outside the file (external data) are refused
with a message that says how to inline them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import onnx
from google.protobuf.message import DecodeError

from chunkc.errors import ChunkcError, UnsupportedOpError

from .node import label


@dataclass
class LoadedModel:
    model: onnx.ModelProto
    source: str  # the file's path, or a description such as "<ModelProto main>"


def load_model(model_or_path) -> LoadedModel:
    if isinstance(model_or_path, onnx.ModelProto):
        return LoadedModel(model_or_path, f"<ModelProto {label(model_or_path.graph.name or 'unnamed')}>")
    if isinstance(model_or_path, (bytes, bytearray, memoryview)):
        return LoadedModel(_parse(bytes(model_or_path), "<bytes>"), "<bytes>")
    if isinstance(model_or_path, (str, os.PathLike)):
        path = os.fspath(model_or_path)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ChunkcError(f"cannot read ONNX file {path!r}: {exc.strerror or exc}") from None
        return LoadedModel(_parse(data, path), path)
    raise TypeError(f"from_onnx takes an onnx.ModelProto, bytes or a path, not {type(model_or_path).__name__}")


def _parse(data: bytes, source: str) -> onnx.ModelProto:
    if not data:
        raise ChunkcError(f"ONNX file {source!r} is empty")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ChunkcError(f"ONNX file {source!r} is not a valid ONNX protobuf (truncated or corrupt?): {exc}") from None
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise ChunkcError(f"ONNX file {source!r} does not hold an ONNX model (no IR version or no graph); "
                          "it may be truncated, corrupt or another kind of file")
    return model


def refuse_external_data(model: onnx.ModelProto, source: str) -> None:
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            where = dict((e.key, e.value) for e in init.external_data).get("location", "?")
            raise UnsupportedOpError(
                f"{source}: initializer {init.name!r} keeps its data in an external file ({where!r}); chunkc reads "
                "self-contained models only: load it with onnx.load(path) and save it again with "
                "onnx.save(model, path, save_as_external_data=False) (models under 2 GB), then import that")
