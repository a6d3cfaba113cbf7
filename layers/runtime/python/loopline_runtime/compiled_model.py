"""The compiled (ONNX) model as it serves: onnxruntime + numpy, no scikit-learn, no pickle.

The ONNX file describes itself: its metadata names the model-input column behind each ONNX input, the kept
categories per categorical feature, the task and the classes (written by `compilation.compile_pipeline`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import onnxruntime as ort

from loopline_runtime.errors import ArtifactIntegrityError
from loopline_runtime.feature_schema import FeatureSchema, Task
from loopline_runtime.model_inputs import InputSpec, ModelInput
from loopline_runtime.onnx_external_data import MalformedModel, uses_external_data

METADATA_KEY = "loopline"  # ONNX metadata_props key holding the JSON below
FORM = "onnx"


@dataclass(frozen=True)
class Prediction:
    """One pass through a model: predictions, and for classifiers the class probabilities and classes."""

    predictions: np.ndarray
    probabilities: np.ndarray | None = None
    classes: list[Any] | None = None


class CompiledGraph:
    """An onnxruntime session over one ONNX model plus what its metadata says about its inputs and outputs."""

    def __init__(self, onnx_bytes: bytes) -> None:
        try:
            external = uses_external_data(onnx_bytes)
        except MalformedModel as exc:
            raise ArtifactIntegrityError(f"the compiled model is not a well-formed ONNX model ({exc})") from None
        if external:  # onnxruntime would open a file named inside the model: what serves is only the pinned bytes
            raise ArtifactIntegrityError("the compiled model keeps tensors in external data files; a served model "
                                         "must hold all its tensors in its own (pinned) bytes")
        options = ort.SessionOptions()
        # one request at a time per Lambda environment: extra threads only cost start-up and memory
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        meta = json.loads(self.session.get_modelmeta().custom_metadata_map[METADATA_KEY])
        self.task = Task(meta["task"])
        self.inputs = tuple(ModelInput(column, name, kind) for column, name, kind in meta["inputs"])
        self.levels: dict[str, list[str]] = meta["levels"]
        self.classes: list[Any] | None = meta.get("classes")
        self._outputs = [output.name for output in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> Prediction:
        if self.task is Task.REGRESSION:
            (values,) = self.session.run(self._outputs[:1], feeds)
            return Prediction(np.asarray(values, dtype=np.float64).reshape(-1))
        # outputs: label, probabilities; like predict_with_probabilities, the prediction is the most probable class
        probabilities = np.asarray(self.session.run(self._outputs[1:2], feeds)[0], dtype=np.float64)
        classes = list(self.classes or [])
        # an array of the classes' own type (int64 for integer labels), as scikit-learn's predict returns
        return Prediction(np.asarray(classes)[np.argmax(probabilities, axis=1)], probabilities, classes)


@dataclass(frozen=True)
class CompiledModel:
    """A registered model in its compiled form, with the manifest it was registered with."""

    version: str
    manifest: dict[str, Any]
    # the ONNX graph; for a model whose config chose `serving: scikit-learn`, the verified pipeline behind the same
    # interface (sklearn_serving.ScikitLearnGraph)
    graph: CompiledGraph | Any

    @property
    def form(self) -> str:
        """Which form answers: "onnx", or "scikit-learn" where the config chose it."""
        return str(getattr(self.graph, "form", FORM))

    @cached_property
    def schema(self) -> FeatureSchema:
        """The schema the model was trained with (parsed once per loaded model, not per request)."""
        return FeatureSchema.from_dict(self.manifest["schema"])

    @cached_property
    def input_spec(self) -> InputSpec:
        return InputSpec(self.schema, self.graph.inputs, self.graph.levels)

    def predict(self, feeds: dict[str, np.ndarray]) -> Prediction:
        return self.graph.run(feeds)
