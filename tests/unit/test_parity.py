"""Compiled serving: every candidate family x task converts to ONNX, and the ONNX path (numpy coercion +
onnxruntime) predicts what the scikit-learn pipeline predicts, on the bundled example data sets and on a generated
table with missing values, unseen categories, booleans and dates."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from loopline.examples import example_datasets
from loopline_runtime.compilation import (
    PROBABILITY_TOLERANCE,
    REGRESSION_TOLERANCE,
    compile_and_check,
    compile_pipeline,
)
from loopline_runtime.compiled_model import CompiledGraph
from loopline_runtime.config import parse_config
from loopline_runtime.errors import InvalidRequest
from loopline_runtime.feature_schema import FeatureSchema, FeatureType, Task
from loopline_runtime.model_inputs import InputSpec, columns_to_inputs, records_to_inputs
from loopline_runtime.modeling import ESTIMATORS, build_pipeline
from loopline_runtime.prediction import predict_with_probabilities
from loopline_runtime.schema import coerce_target, frame_columns, infer_schema, read_csv
from tests.support.tables import every_feature_type_pipeline

SEED = 7
FAMILIES = ("linear", "random_forest", "hist_gradient_boosting")


def _as_uploaded(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as the pipeline stores it: written as CSV and read back as text cells (what the gate reads)."""
    return pd.read_csv(io.BytesIO(frame.to_csv(index=False).encode()), dtype=str, keep_default_na=True)


def _example(name: str) -> tuple[pd.DataFrame, FeatureSchema]:
    example = example_datasets()[name]
    frame = read_csv(example.load().to_csv(index=False).encode(), source=name)
    config = parse_config({"name": name, "target": example.target, "gate": {"threshold": 0.5},
                           "alarm": {"threshold": 0.5}})
    return _as_uploaded(frame), infer_schema(frame, config)


def _generated_table(task: Task, rows: int = 1200) -> tuple[pd.DataFrame, FeatureSchema]:
    """Numbers, booleans, dates and categories with gaps everywhere, rare levels, and an all-empty column."""
    rng = np.random.default_rng(SEED)
    tenure = rng.integers(0, 72, rows).astype(float)
    plan = rng.choice(["basic", "plus", "pro", "gold-rare", "silver-rare"], rows, p=[0.4, 0.3, 0.296, 0.002, 0.002])
    frame = pd.DataFrame({
        "tenure months": tenure,
        "monthly/charge": rng.normal(60, 20, rows).round(2),
        "plan": plan,
        "region": [f"r{i}" for i in rng.integers(0, 80, rows)],  # many levels: some grouped as infrequent
        "paperless": rng.choice(["yes", "no", "Y", "false"], rows),
        "signup": pd.Series(pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 2000, rows), "D"))
        .dt.strftime("%Y-%m-%d"),
        "notes": [None] * rows,
    })
    for column in ["tenure months", "monthly/charge", "plan", "region", "paperless", "signup"]:
        frame.loc[rng.random(rows) < 0.08, column] = None
    signal = tenure / 72 + (plan == "pro") * 0.5 + rng.normal(0, 0.2, rows)
    frame["target"] = np.where(signal > 0.7, "churn", "stay") if task is Task.CLASSIFICATION else signal * 100
    schema = FeatureSchema(target="target", task=task, features={
        "tenure months": FeatureType.NUMERIC, "monthly/charge": FeatureType.NUMERIC, "plan": FeatureType.CATEGORICAL,
        "region": FeatureType.CATEGORICAL, "paperless": FeatureType.BOOLEAN, "signup": FeatureType.DATE,
        "notes": FeatureType.CATEGORICAL})
    return _as_uploaded(frame), schema


def _with_unseen_values(holdout: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """Serving sees categories training never saw, and gaps in every column."""
    holdout = holdout.copy()
    for name, kind in schema.features.items():
        if kind is FeatureType.CATEGORICAL:
            holdout.loc[holdout.index[:15], name] = "never-seen-in-training"
        holdout.loc[holdout.index[15:20], name] = None
    return holdout


CASES = [(name, family) for name in ("breast-cancer", "iris", "wine", "diabetes") for family in FAMILIES]
CASES += [(f"generated-{task.value}", family) for task in Task for family in FAMILIES]


def _case(name: str) -> tuple[pd.DataFrame, FeatureSchema]:
    if name.startswith("generated-"):
        return _generated_table(Task(name.removeprefix("generated-")))
    return _example(name)


@pytest.mark.parametrize(("dataset", "family"), CASES, ids=[f"{d}-{f}" for d, f in CASES])
def test_the_compiled_model_predicts_what_scikit_learn_predicts(dataset: str, family: str) -> None:
    # given a pipeline of this family fitted on three quarters of the data
    frame, schema = _case(dataset)
    shuffled = frame.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    cut = len(shuffled) * 3 // 4
    train, holdout = shuffled.iloc[:cut], shuffled.iloc[cut:]
    y = coerce_target(train[schema.target], schema.task)
    pipeline = build_pipeline(schema, ESTIMATORS[(family, schema.task)](SEED)).fit(train[list(schema.features)], y)
    holdout = _with_unseen_values(holdout, schema) if dataset.startswith("generated-") else holdout

    # when it is compiled and the holdout goes through the serving path (numpy coercion + onnxruntime)
    compilation = compile_and_check(pipeline, schema, holdout)
    assert compilation.onnx_bytes is not None, compilation.record.get("error")
    graph = CompiledGraph(compilation.onnx_bytes)
    X = holdout[list(schema.features)]
    served = graph.run(columns_to_inputs(frame_columns(X), InputSpec(schema, graph.inputs, graph.levels)))
    expected, proba, classes = predict_with_probabilities(pipeline, X)

    # then the labels are equal and the numbers within the stated tolerance, as the recorded check says
    assert compilation.record["parity"]["passed"], compilation.record["parity"]
    if schema.task is Task.CLASSIFICATION:
        assert served.classes == [c.item() if hasattr(c, "item") else c for c in classes]
        assert list(served.predictions) == list(expected)
        assert served.probabilities is not None
        assert np.abs(served.probabilities - proba).max() <= PROBABILITY_TOLERANCE
    else:
        want = np.asarray(expected, dtype=float)
        assert (np.abs(served.predictions - want) <= REGRESSION_TOLERANCE * np.maximum(1, np.abs(want))).all()


def test_a_model_that_does_not_convert_is_recorded_not_raised() -> None:
    # given a fitted pipeline whose estimator skl2onnx has no converter for
    frame, schema = _generated_table(Task.CLASSIFICATION, rows=200)
    y = coerce_target(frame[schema.target], schema.task)
    pipeline = build_pipeline(schema, _Unconvertible()).fit(frame[list(schema.features)], y)

    # when
    compilation = compile_and_check(pipeline, schema, frame)

    # then there is no compiled form, and the record says why
    assert compilation.onnx_bytes is None
    assert not compilation.servable
    assert "_Unconvertible" in compilation.record["error"]


class _Unconvertible(LogisticRegression):
    """A LogisticRegression by another name: skl2onnx converts by type, so this has no converter."""


def test_hist_gradient_boosting_compiles_without_changing_the_fitted_model() -> None:
    # given a fitted HistGradientBoosting pipeline
    frame, schema = _generated_table(Task.REGRESSION, rows=300)
    y = coerce_target(frame[schema.target], schema.task)
    pipeline = build_pipeline(schema, ESTIMATORS[("hist_gradient_boosting", schema.task)](SEED))
    pipeline.fit(frame[list(schema.features)], y)
    before = pipeline.predict(frame[list(schema.features)])

    # when it is compiled twice (the converter cast is undone after each conversion)
    first, second = compile_pipeline(pipeline, schema), compile_pipeline(pipeline, schema)

    # then both graphs predict alike and the model predicts as before
    spec_inputs = columns_to_inputs(frame_columns(frame[list(schema.features)]), InputSpec(
        schema, CompiledGraph(first).inputs, CompiledGraph(first).levels))
    assert np.array_equal(CompiledGraph(first).run(spec_inputs).predictions,
                          CompiledGraph(second).run(spec_inputs).predictions)
    assert np.array_equal(pipeline.predict(frame[list(schema.features)]), before)


ODD_VALUES = [None, True, 0, -0.0, 1e308, 2**70, "", " ", "NaN", "inf", "1e400", "12", "yes", "2024-13-45",
              "9999-12-31", "x" * 1000, "caf\u00e9", "2024-01-01T00:00:00+05:00", "1_000", "01/02/2024"]


@pytest.fixture(scope="module")
def served_model() -> tuple[FeatureSchema, Any, CompiledGraph]:
    """A fitted and compiled pipeline over every feature type (module-scoped: fitted once for the value sweep)."""
    schema, pipeline = every_feature_type_pipeline(SEED)
    return schema, pipeline, CompiledGraph(compile_pipeline(pipeline, schema))


@pytest.mark.parametrize("field", ["n", "c", "b", "d"])
@pytest.mark.parametrize("value", ODD_VALUES, ids=lambda v: repr(v)[:20])
def test_whatever_request_validation_accepts_the_compiled_model_predicts_like_scikit_learn(
        served_model: tuple[FeatureSchema, Any, CompiledGraph], field: str, value: Any) -> None:
    # given a request with one odd JSON value (the API's 400s come from validation, never from the model)
    schema, pipeline, graph = served_model
    record = {"n": 1.0, "c": "a", "b": True, "d": "2024-01-05", field: value}
    spec = InputSpec(schema, graph.inputs, graph.levels)
    try:
        feeds = records_to_inputs([record], spec, max_records=1)
    except InvalidRequest:
        return  # rejected with a message: a 400

    # when
    served = graph.run(feeds)

    # then it answers, and as the scikit-learn pipeline answers for the same record
    assert served.probabilities is not None
    assert np.isfinite(served.probabilities).all()
    expected = pipeline.predict_proba(pd.DataFrame([record], columns=list(schema.features), dtype=object))
    assert np.abs(served.probabilities - expected).max() <= PROBABILITY_TOLERANCE


def test_request_validation_names_every_problem(served_model: tuple[FeatureSchema, Any, CompiledGraph]) -> None:
    # given records with a missing field, an unknown field and wrong-typed values
    schema, _, graph = served_model
    spec = InputSpec(schema, graph.inputs, graph.levels)
    records = [{"n": "abc", "c": "a", "b": "maybe", "d": "2024-01-05", "extra": 1}, {"n": 1.0, "c": "a", "b": True}]

    # when / then
    with pytest.raises(InvalidRequest) as raised:
        records_to_inputs(records, spec, max_records=10)
    message = str(raised.value)
    assert "records[0].n must be a number, got 'abc'" in message
    assert "records[0].b must be true or false, got 'maybe'" in message
    assert "records[0] has unknown field(s) extra" in message
    assert "records[1] is missing field(s) d" in message
    with pytest.raises(InvalidRequest, match="send at most 1 per request"):
        records_to_inputs(records, spec, max_records=1)


def test_integer_class_labels_are_scored_like_scikit_learns() -> None:
    # given a classifier trained on integer labels (wine's cultivars 0, 1, 2), compiled
    from loopline_runtime.metrics import REGISTRY, all_scores

    frame, schema = _example("wine")
    y = coerce_target(frame[schema.target], schema.task)
    X = frame[list(schema.features)]
    pipeline = build_pipeline(schema, ESTIMATORS[("linear", schema.task)](SEED)).fit(X, y)
    graph = CompiledGraph(compile_pipeline(pipeline, schema))

    # when its predictions are scored
    served = graph.run(columns_to_inputs(frame_columns(X), InputSpec(schema, graph.inputs, graph.levels)))
    scores = all_scores(schema.task, y, served.predictions, served.probabilities, served.classes)

    # then every metric of the task is there, as for scikit-learn's own predictions
    expected = all_scores(schema.task, y, *predict_with_probabilities(pipeline, X))
    multiclass = {name for name, metric in REGISTRY.items() if metric.task is schema.task} - {"f1_positive"}
    assert scores.keys() == expected.keys() == multiclass  # f1_positive: binary targets only
    assert scores == pytest.approx(expected)
