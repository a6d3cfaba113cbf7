"""The model search cross-validates on a bounded, seeded, stratified sample and refits the winner on every row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopline_runtime import modeling
from loopline_runtime.config import FeatureType, ModelCandidate, Task
from loopline_runtime.modeling import search_model, search_sample
from loopline_runtime.schema import FeatureSchema

SEED = 42


@pytest.fixture
def table() -> tuple[FeatureSchema, pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(SEED)
    rows = 300
    x = rng.normal(size=rows)
    X = pd.DataFrame({"x": x.astype(str), "noise": rng.normal(size=rows).astype(str)}, dtype=object)
    y = pd.Series(np.where(x + rng.normal(0, 0.3, rows) > 0.8, "yes", "no"))  # imbalanced: about 1 in 4
    schema = FeatureSchema(target="label", task=Task.CLASSIFICATION,
                           features={"x": FeatureType.NUMERIC, "noise": FeatureType.NUMERIC})
    return schema, X, y


def test_small_tables_are_searched_whole(table: tuple[FeatureSchema, pd.DataFrame, pd.Series]) -> None:
    _, X, y = table
    X_sample, y_sample = search_sample(X, y, Task.CLASSIFICATION, SEED, max_rows=len(X))
    assert X_sample is X and y_sample is y


def test_the_sample_is_bounded_seeded_and_keeps_the_class_shares(
        table: tuple[FeatureSchema, pd.DataFrame, pd.Series]) -> None:
    _, X, y = table
    X_sample, y_sample = search_sample(X, y, Task.CLASSIFICATION, SEED, max_rows=100)
    assert len(X_sample) == len(y_sample) == 100
    assert list(X_sample.index) == list(y_sample.index)
    assert abs((y_sample == "yes").mean() - (y == "yes").mean()) <= 0.01
    again, _ = search_sample(X, y, Task.CLASSIFICATION, SEED, max_rows=100)
    assert list(again.index) == list(X_sample.index)


def test_a_class_too_rare_to_stratify_falls_back_to_a_plain_sample() -> None:
    X = pd.DataFrame({"x": [str(i) for i in range(50)]}, dtype=object)
    y = pd.Series(["a"] * 49 + ["b"])
    X_sample, y_sample = search_sample(X, y, Task.CLASSIFICATION, SEED, max_rows=20)
    assert len(X_sample) == len(y_sample) == 20


def test_regression_samples_without_stratifying() -> None:
    X = pd.DataFrame({"x": [str(i) for i in range(50)]}, dtype=object)
    y = pd.Series(np.arange(50, dtype=float))
    X_sample, _ = search_sample(X, y, Task.REGRESSION, SEED, max_rows=20)
    assert len(X_sample) == 20


def test_search_cross_validates_on_the_sample_and_refits_on_all_rows(
        table: tuple[FeatureSchema, pd.DataFrame, pd.Series], monkeypatch: pytest.MonkeyPatch) -> None:
    schema, X, y = table
    seen: list[int] = []
    cross_validate = modeling._cross_validate

    def spy(schema: FeatureSchema, name: str, params: dict[str, Any], X: pd.DataFrame, *args: Any) -> float:
        seen.append(len(X))
        return cross_validate(schema, name, params, X, *args)

    monkeypatch.setattr(modeling, "_cross_validate", spy)
    result = search_model(schema, X, y, metric="f1", seed=SEED, time_budget_seconds=10_000,
                          candidates=[ModelCandidate(name="linear")], max_search_rows=120)
    assert seen and set(seen) == {120}
    assert result.search_rows == 120
    scaler = result.pipeline.named_steps["columns"].named_transformers_["numeric"].named_steps["scale"]
    assert scaler.n_samples_seen_ == len(X)  # the winner is refit on every training row


def test_search_on_a_table_within_the_bound_uses_every_row(
        table: tuple[FeatureSchema, pd.DataFrame, pd.Series]) -> None:
    schema, X, y = table
    result = search_model(schema, X, y, metric="f1", seed=SEED, time_budget_seconds=10_000,
                          candidates=[ModelCandidate(name="linear")])
    assert result.search_rows == len(X)
