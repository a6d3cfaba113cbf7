"""Training a million rows within the train function's memory: tree models without one-hot columns, compact
dataset loads that give the model the same numbers, and a clear refusal above the measured size."""

from __future__ import annotations

import io
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from loopline_runtime.config import FeatureType, Task
from loopline_runtime.datasets import DatasetCatalog, DatasetVersion
from loopline_runtime.errors import TrainingFailed
from loopline_runtime.modeling import build_pipeline
from loopline_runtime.schema import FeatureSchema
from loopline_runtime.storage import ObjectStore
from loopline_runtime.training import MEASURED_CELLS, MEASURED_MEMORY_MB, check_training_size

SCHEMA = FeatureSchema(
    target="churned", task=Task.CLASSIFICATION,
    features={"tenure": FeatureType.NUMERIC, "plan": FeatureType.CATEGORICAL, "paperless": FeatureType.BOOLEAN,
              "signup": FeatureType.DATE})


def _rows(n: int = 300, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n)
    frame = pd.DataFrame({
        "tenure": [str(t) for t in tenure],
        "plan": rng.choice(["basic", "plus", "pro", "team"], n).tolist(),
        "paperless": rng.choice(["yes", "no"], n).tolist(),
        "signup": [f"2023-{m:02d}-{d:02d}" for m, d in zip(rng.integers(1, 13, n), rng.integers(1, 29, n),
                                                          strict=True)],
        "churned": np.where(tenure < 24, "yes", "no"),
    }, dtype=object)
    frame.loc[[1, 5], "tenure"] = None
    frame.loc[[2, 6], "plan"] = None
    return frame


def _encoders(pipeline: Any) -> list[Any]:
    columns = pipeline.named_steps["columns"]
    return [step for _, transformer, _ in columns.transformers for _, step in getattr(transformer, "steps", [])]


@pytest.mark.parametrize("estimator", [HistGradientBoostingClassifier(max_iter=5), RandomForestClassifier(5)])
def test_tree_models_get_float32_ordinal_codes_not_one_hot_columns(estimator: Any) -> None:
    # given a tree model
    frame = _rows()

    # when its pipeline is fitted
    pipeline = build_pipeline(SCHEMA, estimator).fit(frame.drop(columns="churned"), frame["churned"])

    # then categories are one float32 code per column, an unseen level has a code of its own, nothing is scaled
    encoders = _encoders(pipeline)
    assert not any(isinstance(e, OneHotEncoder) for e in encoders)
    (ordinal,) = [e for e in encoders if isinstance(e, OrdinalEncoder)]
    # the form skl2onnx converts (issue 11's agreement): use_encoded_value, not native categorical_features
    assert ordinal.handle_unknown == "use_encoded_value" and ordinal.unknown_value == -1
    assert ordinal.dtype is np.float32
    assert pipeline[:-1].transform(frame.drop(columns="churned")).shape[1] == 1 + 1 + 1 + 5
    unseen = frame.drop(columns="churned").head(1).assign(plan="enterprise")
    assert pipeline.predict(unseen)[0] in {"yes", "no"}


def test_linear_models_keep_scaled_one_hot_inputs() -> None:
    # given a linear model (it needs one column per level and comparable scales)
    frame = _rows()

    # when
    pipeline = build_pipeline(SCHEMA, LogisticRegression()).fit(frame.drop(columns="churned"), frame["churned"])

    # then it keeps one-hot encoding
    assert any(isinstance(e, OneHotEncoder) for e in _encoders(pipeline))


def test_a_compact_load_gives_the_model_the_same_inputs_as_a_text_load() -> None:
    # given a dataset version in S3
    frame = _rows(500)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="lean-test")
        store = ObjectStore("lean-test", boto3.client("s3", region_name="us-east-1"))
        catalog = DatasetCatalog(store)
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        store.put_bytes("datasets/ds-x/data.csv", buffer.getvalue().encode())
        dataset = DatasetVersion("ds-x", {"schema": SCHEMA.to_dict(), "rows": len(frame)})

        # when it is loaded as text and compactly
        text, compact = catalog.load(dataset), catalog.load(dataset, compact=True)

    # then the compact frame is smaller, and a fitted pipeline sees identical model inputs from both
    assert compact.memory_usage(deep=True).sum() < text.memory_usage(deep=True).sum() / 2
    pipeline = build_pipeline(SCHEMA, HistGradientBoostingClassifier(max_iter=5, random_state=0))
    pipeline.fit(text.drop(columns="churned"), text["churned"])
    np.testing.assert_array_equal(pipeline[:-1].transform(text.drop(columns="churned")),
                                  pipeline[:-1].transform(compact.drop(columns="churned")))


def test_a_window_larger_than_measured_fails_before_any_data_is_loaded() -> None:
    # given a window of dataset versions with more cells than the train function was measured to handle
    columns = len(SCHEMA.features) + 1
    rows = MEASURED_CELLS // columns + 1
    datasets = [DatasetVersion("ds-a", {"rows": rows // 2}), DatasetVersion("ds-b", {"rows": rows - rows // 2})]

    # when / then: a TrainingFailed naming the size, the limit and what to change
    with pytest.raises(TrainingFailed, match=r"training\.window .* MemorySize"):
        check_training_size(datasets, SCHEMA, memory_mb=MEASURED_MEMORY_MB)
    # and twice the memory trains twice the cells
    check_training_size(datasets, SCHEMA, memory_mb=2 * MEASURED_MEMORY_MB)
