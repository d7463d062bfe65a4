"""Reading a model: a ModelProto, serialized bytes, or a path.

A truncated or corrupt file is refused with a ChunkcError naming the file.
Tensors whose data live in other files (ONNX *external data*: what
``torch.onnx.export`` writes by default, and every model over 2 GB) are read
when the model comes as a path and each data file lies in the model's folder
or below it; a location that is absolute or leads out of that folder (``..``,
a symbolic link) is refused, and so is external data in a model given as a
ModelProto or bytes (there is no folder to read from).
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
    folder: str | None = None  # the model file's folder (external data is read from it)


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
        return LoadedModel(_parse(data, path), path, os.path.dirname(os.path.abspath(path)))
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


def load_external_data(loaded: LoadedModel) -> None:
    """Read every tensor's external data into the model (see the module docstring)."""
    external = [t for t in _tensors(loaded.model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    if not external:
        return
    source = loaded.source
    if loaded.folder is None:
        where = dict((e.key, e.value) for e in external[0].external_data).get("location", "?")
        raise UnsupportedOpError(
            f"{source}: tensor {label(external[0].name)} keeps its data in an external file ({label(where)}), and a "
            "model given as a ModelProto or bytes has no folder to read it from: pass the model's path, or load "
            "it with onnx.load(path) (which reads the data) first")
    folder = os.path.realpath(loaded.folder)
    opened: dict[str, bytes] = {}
    for tensor in external:
        info = dict((e.key, e.value) for e in tensor.external_data)
        path = _data_path(source, tensor.name, info.get("location", ""), folder)
        if path not in opened:
            try:
                with open(path, "rb") as f:
                    opened[path] = f.read()
            except OSError as exc:
                raise ChunkcError(f"{source}: tensor {label(tensor.name)} keeps its data in "
                                  f"{label(info.get('location', ''))}, which cannot be read: "
                                  f"{exc.strerror or exc}") from None
        data = opened[path]
        try:
            offset = int(info.get("offset", 0))
            length = int(info["length"]) if "length" in info else len(data) - offset
        except ValueError:
            raise ChunkcError(f"{source}: tensor {label(tensor.name)}: external data offset/length are not "
                              "integers") from None
        if offset < 0 or length < 0 or offset + length > len(data):
            raise ChunkcError(f"{source}: tensor {label(tensor.name)} reads bytes {offset}..{offset + length} of "
                              f"{label(info.get('location', ''))}, which has {len(data)} bytes (truncated file?)")
        tensor.raw_data = data[offset:offset + length]
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def _data_path(source: str, tensor: str, location: str, folder: str) -> str:
    """The data file's real path; refuses a location that leaves the model's folder."""
    bad = (not location or os.path.isabs(location) or location.startswith(("/", "\\"))
           or ".." in location.replace("\\", "/").split("/") or "\x00" in location)
    path = os.path.realpath(os.path.join(folder, location)) if not bad else ""
    if bad or os.path.commonpath([folder, path]) != folder:
        raise UnsupportedOpError(
            f"{source}: tensor {label(tensor)} keeps its data in {label(location)}, which is not a file in the "
            f"model's folder ({label(folder)}); chunkc reads external data only from the model's folder or below "
            "it: move the data file there and set its location relative to the model")
    return path


def _tensors(graph: onnx.GraphProto):
    """Every tensor of a graph: initializers and tensor attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            if a.HasField("g"):
                yield from _tensors(a.g)
            for g in a.graphs:
                yield from _tensors(g)
