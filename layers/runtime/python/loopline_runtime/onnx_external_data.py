"""Whether an ONNX model keeps any tensor outside its own bytes ("external data": a file path onnxruntime would
open relative to wherever it runs). A served model is exactly the pinned bytes, so such a model is refused.

The serving layer has onnxruntime but not the `onnx` package, so this walks the protobuf wire format itself, along
the fields that can hold a tensor (initializers, node attributes, subgraphs, sparse tensors, functions) and skipping
everything else by its length: a tensor is external when it sets `data_location = EXTERNAL` or `external_data`.
"""

from __future__ import annotations

# message name -> {field number: message name of that (length-delimited) field}
_MESSAGES: dict[str, dict[int, str]] = {
    "Model": {7: "Graph", 25: "Function"},
    "Graph": {1: "Node", 5: "Tensor", 15: "SparseTensor"},
    "Node": {5: "Attribute"},
    "Function": {7: "Node"},
    "Attribute": {5: "Tensor", 6: "Graph", 10: "Tensor", 11: "Graph", 22: "SparseTensor", 23: "SparseTensor"},
    "SparseTensor": {1: "Tensor", 2: "Tensor"},
    "Tensor": {},
}
_TENSOR_EXTERNAL_DATA = 13  # repeated StringStringEntryProto (location, offset, length)
_TENSOR_DATA_LOCATION = 14  # enum: 0 DEFAULT, 1 EXTERNAL
_MAX_DEPTH = 64  # subgraphs nest; a deeper model is refused rather than walked without end


class MalformedModel(ValueError):
    """The bytes are not a well-formed protobuf message."""


def uses_external_data(model: bytes) -> bool:
    """True when any tensor of the ONNX model `model` refers to data outside these bytes."""
    return _walk(memoryview(model), "Model", 0)


def _walk(data: memoryview, message: str, depth: int) -> bool:
    if depth > _MAX_DEPTH:
        raise MalformedModel("the model nests subgraphs deeper than 64 levels")
    children = _MESSAGES[message]
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            if message == "Tensor" and field == _TENSOR_DATA_LOCATION and value == 1:
                return True
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise MalformedModel("a field runs past the end of the model")
            if message == "Tensor" and field == _TENSOR_EXTERNAL_DATA:
                return True
            if field in children and _walk(data[at:at + length], children[field], depth + 1):
                return True
            at += length
        elif wire == 1:
            at += 8
        elif wire == 5:
            at += 4
        else:
            raise MalformedModel(f"unsupported protobuf wire type {wire}")
    return False


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise MalformedModel("a truncated or over-long varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
