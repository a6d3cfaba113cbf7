"""The model: one Pipeline that copes with messy tabular input, chosen by a seeded, time-bounded search."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

from loopline_runtime.config import FeatureType, ModelCandidate, Task
from loopline_runtime.errors import TrainingFailed
from loopline_runtime.modeling import build_pipeline, search_model
from tests.support.tables import every_feature_type_pipeline

ROWS = 60
SEED = 42


@pytest.fixture
def mixed_schema() -> Any:
    from loopline_runtime.schema import FeatureSchema

    return FeatureSchema(
        target="churned",
        task=Task.CLASSIFICATION,
        features={
            "tenure": FeatureType.NUMERIC,
            "plan": FeatureType.CATEGORICAL,
            "paperless": FeatureType.BOOLEAN,
            "signup": FeatureType.DATE,
        },
    )


@pytest.fixture
def mixed_frame() -> tuple[pd.DataFrame, pd.Series]:
    """Raw text cells as they come from a CSV, with gaps in every column; the label follows tenure."""
    rng = np.random.default_rng(SEED)
    tenure = rng.integers(1, 72, ROWS)
    X = pd.DataFrame({
        "tenure": [str(t) for t in tenure],
        "plan": rng.choice(["basic", "plus", "pro"], ROWS).tolist(),
        "paperless": rng.choice(["yes", "no"], ROWS).tolist(),
        "signup": [f"2023-{m:02d}-{d:02d}" for m, d in zip(rng.integers(1, 13, ROWS), rng.integers(1, 29, ROWS),
                                                          strict=True)],
    }, dtype=object)
    for column, rows in {"tenure": [1, 7], "plan": [2, 8], "paperless": [3, 9], "signup": [4, 10]}.items():
        X.loc[rows, column] = None
    y = pd.Series(np.where(tenure < 24, "yes", "no"))
    return X, y


@pytest.fixture
def ticking_clock() -> Callable[[], float]:
    """A clock that advances one second per reading: elapsed times are deterministic, nothing waits."""
    ticks = itertools.count()
    return lambda: float(next(ticks))


def _candidates(*specs: tuple[str, dict[str, list[Any]]]) -> list[ModelCandidate]:
    return [ModelCandidate(name=name, params=params) for name, params in specs]  # type: ignore[arg-type]


def test_pipeline_handles_every_feature_type_with_gaps_and_unseen_categories(
    mixed_schema: Any, mixed_frame: tuple[pd.DataFrame, pd.Series]
) -> None:
    # given a pipeline fitted on rows with missing values in every column
    X, y = mixed_frame
    pipeline = build_pipeline(mixed_schema, LogisticRegression(max_iter=1000)).fit(X, y)
    new_rows = pd.DataFrame({
        "tenure": ["3", None, "not a number"],
        "plan": ["enterprise", None, "basic"],  # a plan never seen in training
        "paperless": ["no", None, "yes"],
        "signup": ["2024-06-30", None, "garbage"],
    }, dtype=object)

    # when
    predictions = pipeline.predict(new_rows)
    proba = pipeline.predict_proba(new_rows)

    # then every row gets a known class and a probability distribution
    assert set(predictions) <= {"yes", "no"}
    assert proba.shape == (3, 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    # dates are expanded into numeric parts; the categorical plan is one-hot encoded
    names = list(pipeline.named_steps["columns"].get_feature_names_out())
    assert "signup__year" in names and "signup__dayofweek" in names
    assert any(name.startswith("plan_") for name in names)


def test_pipeline_learns_the_signal(mixed_schema: Any, mixed_frame: tuple[pd.DataFrame, pd.Series]) -> None:
    # given
    X, y = mixed_frame
    pipeline = build_pipeline(mixed_schema, LogisticRegression(max_iter=1000)).fit(X, y)

    # when short and long tenures are predicted
    predictions = pipeline.predict(pd.DataFrame({"tenure": ["2", "70"], "plan": ["basic", "basic"],
                                                 "paperless": ["yes", "yes"], "signup": ["2023-05-01"] * 2}))

    # then the label follows tenure as in the data
    assert list(predictions) == ["yes", "no"]


def test_pipeline_without_usable_features_is_an_error(mixed_schema: Any) -> None:
    # given a schema whose features list is empty
    from loopline_runtime.schema import FeatureSchema

    empty = FeatureSchema(target="churned", task=Task.CLASSIFICATION, features={})

    # when / then
    with pytest.raises(TrainingFailed, match="no usable feature columns"):
        build_pipeline(empty, Ridge())


def test_search_is_reproducible_with_the_same_seed(
    mixed_schema: Any, mixed_frame: tuple[pd.DataFrame, pd.Series]
) -> None:
    # given two searches with the same seed over seeded estimators and sampled settings
    X, y = mixed_frame
    candidates = _candidates(("linear", {"C": [0.01, 10.0]}), ("random_forest", {"max_depth": [2]}))

    def run() -> Any:
        ticks = itertools.count()
        return search_model(mixed_schema, X, y, metric="f1", seed=SEED, time_budget_seconds=10_000,
                            candidates=candidates, clock=lambda: float(next(ticks)))

    # when
    first, second = run(), run()

    # then the same settings are tried, scored the same, and the same model is chosen
    assert first.leaderboard == second.leaderboard
    assert (first.candidate, first.params, first.cv_score) == (second.candidate, second.params, second.cv_score)
    assert list(first.pipeline.predict(X)) == list(second.pipeline.predict(X))
    # and it really searched: both families, several settings each
    assert {e["candidate"] for e in first.leaderboard} == {"linear", "random_forest"}
    assert len(first.leaderboard) > 2


def test_leaderboard_is_ranked_and_the_best_is_chosen(
    mixed_schema: Any, mixed_frame: tuple[pd.DataFrame, pd.Series], ticking_clock: Callable[[], float]
) -> None:
    # given
    X, y = mixed_frame

    # when
    result = search_model(mixed_schema, X, y, metric="f1", seed=SEED, time_budget_seconds=10_000,
                          candidates=_candidates(("linear", {"C": [0.001, 1.0, 10.0]})), clock=ticking_clock)

    # then
    scores = [entry["cv_score"] for entry in result.leaderboard]
    assert scores == sorted(scores, reverse=True)
    assert result.cv_score == scores[0]
    assert (result.candidate, result.params) == (result.leaderboard[0]["candidate"], result.leaderboard[0]["params"])
    assert result.budget_exhausted is False


def test_a_zero_budget_still_tries_every_candidate_once(
    mixed_schema: Any, mixed_frame: tuple[pd.DataFrame, pd.Series], ticking_clock: Callable[[], float]
) -> None:
    # given two families with several settings each, and no time at all
    X, y = mixed_frame
    candidates = _candidates(("linear", {"C": [0.01, 0.1, 10.0]}),
                             ("random_forest", {"n_estimators": [5], "max_depth": [2, 3]}))

    # when
    result = search_model(mixed_schema, X, y, metric="f1", seed=SEED, time_budget_seconds=0,
                          candidates=candidates, clock=ticking_clock)

    # then the first round (each family's default setting) ran and the search stopped there
    assert [(e["candidate"], e["params"]) for e in result.leaderboard] in (
        [("linear", {}), ("random_forest", {})], [("random_forest", {}), ("linear", {})])
    assert result.budget_exhausted is True


def test_a_failing_candidate_is_recorded_not_fatal(
    mixed_schema: Any, mixed_frame: tuple[pd.DataFrame, pd.Series], ticking_clock: Callable[[], float]
) -> None:
    # given a search space with an invalid setting (C must be positive)
    X, y = mixed_frame

    # when
    result = search_model(mixed_schema, X, y, metric="f1", seed=SEED, time_budget_seconds=10_000,
                          candidates=_candidates(("linear", {"C": [-1.0]})), clock=ticking_clock)

    # then the failure is on the leaderboard with its error, and the working setting is chosen
    failed = [e for e in result.leaderboard if "error" in e]
    assert [e["params"] for e in failed] == [{"C": -1.0}]
    assert "C" in failed[0]["error"]
    assert result.params == {}
    assert np.isfinite(result.cv_score)


def test_search_fails_with_a_reason_when_no_candidate_trains(
    mixed_schema: Any, mixed_frame: tuple[pd.DataFrame, pd.Series], ticking_clock: Callable[[], float]
) -> None:
    # given labels no estimator accepts
    X, _ = mixed_frame
    y = pd.Series([np.nan] * len(X))

    # when / then
    with pytest.raises(TrainingFailed, match="no model candidate could be trained on this data"):
        search_model(mixed_schema, X, y, metric="f1", seed=SEED, time_budget_seconds=10_000,
                     candidates=_candidates(("linear", {})), clock=ticking_clock)


ODD_VALUES = [None, True, 0, -0.0, 1e308, 2**70, "", " ", "NaN", "inf", "1e400", "12", "yes", "2024-13-45",
              "9999-12-31", "x" * 1000, "caf\u00e9", "2024-01-01T00:00:00+05:00"]


@pytest.fixture(scope="module")
def served_pipeline() -> Any:
    """A fitted pipeline over every feature type (module-scoped: fitted once for the value sweep)."""
    return every_feature_type_pipeline(SEED)


@pytest.mark.parametrize("field", ["n", "c", "b", "d"])
@pytest.mark.parametrize("value", ODD_VALUES, ids=lambda v: repr(v)[:20])
def test_whatever_request_validation_accepts_the_pipeline_can_predict(served_pipeline: Any, field: str,
                                                                      value: Any) -> None:
    # given a request with one odd JSON value (the API's 400s come from validation, never from the model)
    from loopline_runtime.errors import InvalidRequest
    from loopline_runtime.schema import records_to_frame

    schema, pipeline = served_pipeline
    record = {"n": 1.0, "c": "a", "b": True, "d": "2024-01-05", field: value}
    try:
        frame = records_to_frame([record], schema, max_records=1)
    except InvalidRequest:
        return  # rejected with a message: a 400

    # when
    proba = pipeline.predict_proba(frame)

    # then
    assert proba.shape == (1, 2)
    assert np.isfinite(proba).all()
