"""The scikit-learn serving form: for a candidate whose config chose `serving: scikit-learn` because a step cannot
be compiled to ONNX. The pinned joblib artifact, checked against its pinned sha256, is unpickled (with the model
code it was trained from, checked against the manifest's sha256) on the predict variant that has the dependencies
layer. It consumes exactly the feeds the compiled form would (the same numpy coercion of a request), so requests,
the gate and monitoring go through one path; only the model behind it differs.

Unpickling runs code named in the artifact: acceptable only because the artifact is the team's own, written by the
train function, pinned by the gate and verified byte for byte before load, and only when chosen explicitly.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from loopline_runtime.compiled_model import Prediction
from loopline_runtime.errors import ArtifactIntegrityError
from loopline_runtime.feature_schema import FeatureSchema, Task, model_input_columns
from loopline_runtime.model_code import load_recorded_code
from loopline_runtime.model_inputs import ModelInput

FORM = "scikit-learn"


class ScikitLearnGraph:
    """The trained pipeline after its coercion step, behind the compiled graph's interface (inputs, levels, run)."""

    form = FORM

    def __init__(self, pipeline: Any, schema: FeatureSchema) -> None:
        coercer = pipeline.named_steps["coerce"]
        self.model = pipeline[1:]  # everything after the coercion, which `model_inputs` does in numpy
        categorical = set(model_input_columns(schema.features)[1])
        self.task = schema.task
        self.inputs = tuple(ModelInput(column, column, "string" if column in categorical else "float")
                            for column in coercer.feature_names_out_)
        self.levels: dict[str, list[str]] = dict(getattr(coercer, "levels_", {}))
        classes = getattr(pipeline, "classes_", None)
        self.classes = [c.item() if isinstance(c, np.generic) else c for c in classes] if classes is not None \
            else None

    def run(self, feeds: dict[str, np.ndarray]) -> Prediction:
        import pandas as pd

        from loopline_runtime.prediction import predict_with_probabilities

        frame = pd.DataFrame({
            item.column: (np.asarray(feeds[item.name]).reshape(-1).astype(object) if item.kind == "string"
                          else np.asarray(feeds[item.name], dtype=np.float64).reshape(-1))
            for item in self.inputs
        })
        predictions, probabilities, classes = predict_with_probabilities(self.model, frame)
        if self.task is Task.REGRESSION:
            return Prediction(np.asarray(predictions, dtype=np.float64))
        return Prediction(np.asarray(predictions), None if probabilities is None else np.asarray(probabilities),
                          list(classes) if classes is not None else self.classes)


def load_scikit_learn_graph(version: str, manifest: dict[str, Any], artifact: bytes) -> ScikitLearnGraph:
    """Unpickle the verified artifact of a model whose config chose the scikit-learn serving form.

    Raises:
        ArtifactIntegrityError: this function has no scikit-learn (deploy the predict variant with the
            dependencies layer), another scikit-learn version, or model code that is not what it was trained with.
    """
    try:
        import joblib
        import sklearn
    except ImportError:
        raise ArtifactIntegrityError(
            f"model {version} serves in the scikit-learn form (serving: scikit-learn) but this function has no "
            "scikit-learn: the predict function gets it when deployed with `loopline params` (ServingForm="
            "scikit-learn adds the dependencies layer); batch scoring runs on the serving layer and scores compiled "
            "(ONNX) models only"
        ) from None
    trained_with = manifest.get("libraries", {}).get("scikit-learn")
    if trained_with and trained_with != sklearn.__version__:
        raise ArtifactIntegrityError(f"model {version} was trained with scikit-learn {trained_with} but this "
                                     f"runtime has {sklearn.__version__}; retrain it or deploy the matching layer")
    load_recorded_code(version, manifest.get("code"))
    pipeline = joblib.load(io.BytesIO(artifact))
    return ScikitLearnGraph(pipeline, FeatureSchema.from_dict(manifest["schema"]))
