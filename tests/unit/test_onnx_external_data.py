"""A compiled model that keeps a tensor in an external data file is never loaded: onnxruntime would read a file
named inside the model, relative to wherever it runs, instead of the pinned bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from loopline_runtime.compiled_model import CompiledGraph
from loopline_runtime.errors import ArtifactIntegrityError
from loopline_runtime.onnx_external_data import uses_external_data


def _external(name: str, location: str) -> TensorProto:
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[2])
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    return tensor


def _model(graph: onnx.GraphProto) -> bytes:
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _identity_of(tensor: TensorProto, *, as_constant: bool = False) -> onnx.GraphProto:
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    if as_constant:  # the tensor inside a node attribute, not an initializer
        node = helper.make_node("Constant", [], ["y"], value=tensor)
        return helper.make_graph([node], "g", [], [output])
    return helper.make_graph([helper.make_node("Identity", [tensor.name], ["y"])], "g", [], [output], [tensor])


@pytest.mark.parametrize("as_constant", [False, True])
def test_a_model_with_an_external_data_tensor_is_refused_before_onnxruntime_opens_anything(
    as_constant: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a file next to where the function runs, and a model whose tensor names it as its external data
    (tmp_path / "weights.bin").write_bytes(np.array([1.0, 2.0], dtype=np.float32).tobytes())
    monkeypatch.chdir(tmp_path)
    model = _model(_identity_of(_external("w", "weights.bin"), as_constant=as_constant))

    # when / then it is refused, naming why
    with pytest.raises(ArtifactIntegrityError, match="external data"):
        CompiledGraph(model)


def test_a_model_holding_its_tensors_itself_has_no_external_data() -> None:
    # given a model whose initializer is in its own bytes
    tensor = numpy_helper.from_array(np.array([1.0, 2.0], dtype=np.float32), "w")

    # then it is not flagged
    assert uses_external_data(_model(_identity_of(tensor))) is False
