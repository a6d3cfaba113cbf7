"""A search that spends where it pays: on a large sample, candidates that cannot win are dropped after one small
fit, the survivors get more rows, and a rung that would overrun the budget is not started."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopline_runtime import modeling
from loopline_runtime.config import FeatureType, ModelCandidate, Task
from loopline_runtime.modeling import search_model
from loopline_runtime.schema import FeatureSchema

SEED = 42
ROWS = 1_200
FIRST_RUNG = 120  # a pool of 900 rows: rungs of 120, 360 and 900 rows


def _table(task: Task) -> tuple[FeatureSchema, pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(SEED)
    a, b = rng.normal(size=ROWS), rng.normal(size=ROWS)
    plan = rng.choice(["basic", "plus", "pro"], ROWS)
    signal = a * b + np.where(plan == "pro", 1.0, 0.0) + rng.normal(0, 0.3, ROWS)  # an interaction: trees win
    X = pd.DataFrame({"a": a, "b": b, "plan": pd.Categorical(plan)})
    y = pd.Series(np.where(signal > 0.3, "yes", "no")) if task is Task.CLASSIFICATION else pd.Series(signal)
    schema = FeatureSchema(target="label", task=task, features={
        "a": FeatureType.NUMERIC, "b": FeatureType.NUMERIC, "plan": FeatureType.CATEGORICAL})
    return schema, X, y


@pytest.fixture
def classification() -> tuple[FeatureSchema, pd.DataFrame, pd.Series]:
    return _table(Task.CLASSIFICATION)


@pytest.fixture
def ticking_clock() -> Callable[[], float]:
    """One second per reading: every fit seems to take a second or two, nothing waits."""
    ticks = itertools.count()
    return lambda: float(next(ticks))


def _search(table: tuple[FeatureSchema, pd.DataFrame, pd.Series], **kwargs: Any) -> modeling.SearchResult:
    schema, X, y = table
    options: dict[str, Any] = {"metric": "f1" if schema.task is Task.CLASSIFICATION else "rmse", "seed": SEED,
                               "time_budget_seconds": 10_000, "first_rung_rows": FIRST_RUNG, **kwargs}
    return search_model(schema, X, y, **options)


def _first_rung_score(entry: dict[str, Any]) -> float:
    """A trial's score on the first rung (a survivor lists every rung it was scored on)."""
    return float(entry["rungs"][0][1]) if "rungs" in entry else float(entry["cv_score"])


def test_candidates_that_cannot_win_are_dropped_after_one_small_fit(
        classification: tuple[FeatureSchema, pd.DataFrame, pd.Series]) -> None:
    # given a sample large enough for several rungs and the default candidates

    # when
    result = _search(classification)

    # then each candidate's default was fitted once on the first rung's rows
    assert result.method == "successive_halving"
    defaults = [e for e in result.leaderboard if e["params"] == {}]
    assert sorted(e["candidate"] for e in defaults) == sorted(modeling.DEFAULT_CANDIDATES)
    dropped = [e for e in result.leaderboard if e["rung"] == 0]
    assert len(dropped) == 2 and {e["rows"] for e in dropped} == {FIRST_RUNG}
    # and only the best of them went on, with all its settings, on three times the rows
    (survivor,) = [e for e in defaults if e["rung"] > 0]
    assert survivor["rungs"][0] == [FIRST_RUNG, _first_rung_score(survivor)]
    assert _first_rung_score(survivor) >= max(e["cv_score"] for e in dropped)
    second_rung = [e for e in result.leaderboard if e["rung"] == 1]
    assert len(second_rung) == modeling.SETTINGS_PER_CANDIDATE
    assert {e["candidate"] for e in second_rung} == {survivor["candidate"]}
    assert {e["rows"] for e in second_rung} == {FIRST_RUNG * modeling.HALVING_FACTOR}
    # and the winner is the best of the last rung, listed first
    assert result.cv_score == max(e["cv_score"] for e in second_rung) == result.leaderboard[0]["cv_score"]
    assert (result.candidate, result.params) == (result.leaderboard[0]["candidate"], result.leaderboard[0]["params"])


def test_the_search_fits_far_fewer_rows_than_cross_validating_every_setting(
        classification: tuple[FeatureSchema, pd.DataFrame, pd.Series], monkeypatch: pytest.MonkeyPatch) -> None:
    # given a count of the rows every fit of the search trains on
    fitted: list[int] = []
    build = modeling.build_pipeline

    def counting(schema: FeatureSchema, estimator: Any) -> Any:
        pipeline = build(schema, estimator)
        fit = pipeline.fit
        pipeline.fit = lambda X, y: (fitted.append(len(X)), fit(X, y))[1]  # type: ignore[method-assign]
        return pipeline

    monkeypatch.setattr(modeling, "build_pipeline", counting)

    # when the same table is searched by halving, then with no room for two rungs (every setting cross-validated)
    halving = _search(classification)
    halving_fits = list(fitted)
    fitted.clear()
    exhaustive = _search(classification, first_rung_rows=ROWS)

    # then both refit their winner on every row, and halving trained on a fifth of the rows or fewer to choose it
    assert (halving.method, exhaustive.method) == ("successive_halving", "cross_validation")
    assert halving_fits[-1] == fitted[-1] == ROWS
    assert len(exhaustive.leaderboard) == len(modeling.DEFAULT_CANDIDATES) * modeling.SETTINGS_PER_CANDIDATE
    assert sum(halving_fits[:-1]) * 5 < sum(fitted[:-1])


def test_a_rung_that_would_overrun_the_budget_is_not_started(
        classification: tuple[FeatureSchema, pd.DataFrame, pd.Series], ticking_clock: Callable[[], float]) -> None:
    # given a budget that the first rung (three fits of a "second" or more each) already uses up

    # when
    result = _search(classification, time_budget_seconds=8, clock=ticking_clock)

    # then the first rung ran in full, the next was not started, and the first rung's best won
    assert result.budget_exhausted is True
    assert [e["rung"] for e in result.leaderboard] == [0, 0, 0]
    assert result.cv_score == max(e["cv_score"] for e in result.leaderboard)


def test_a_generous_budget_is_not_reported_as_exhausted(
        classification: tuple[FeatureSchema, pd.DataFrame, pd.Series], ticking_clock: Callable[[], float]) -> None:
    # given
    # when
    result = _search(classification, time_budget_seconds=10_000, clock=ticking_clock)

    # then
    assert result.budget_exhausted is False
    assert max(e["rung"] for e in result.leaderboard) >= 1


def test_a_single_candidate_s_settings_compete_from_the_first_rung(
        classification: tuple[FeatureSchema, pd.DataFrame, pd.Series]) -> None:
    # given one candidate with three settings
    candidates = [ModelCandidate(name="hist_gradient_boosting",
                                 params={"learning_rate": [0.05, 0.2], "max_leaf_nodes": [7, 31]})]

    # when
    result = _search(classification, candidates=candidates)

    # then its settings were all fitted on the first rung, where the best of them won (a rung for one is not run)
    assert len(result.leaderboard) == modeling.SETTINGS_PER_CANDIDATE
    assert [(e["rung"], e["rows"]) for e in result.leaderboard] == [(0, FIRST_RUNG)] * 3
    assert result.cv_score == max(e["cv_score"] for e in result.leaderboard)


def test_a_setting_that_fails_is_recorded_and_the_search_goes_on(
        classification: tuple[FeatureSchema, pd.DataFrame, pd.Series]) -> None:
    # given a candidate with an invalid setting (C must be positive) next to its default
    candidates = [ModelCandidate(name="linear", params={"C": [-1.0, 1.0]})]

    # when
    result = _search(classification, candidates=candidates)

    # then the failure is listed last with its error, and the working setting is chosen
    assert result.leaderboard[-1]["params"] == {"C": -1.0}
    assert "C" in result.leaderboard[-1]["error"]
    assert result.params == {}
    assert np.isfinite(result.cv_score)


def test_regression_keeps_the_lowest_error() -> None:
    # given a regression table and an error metric (lower is better)
    table = _table(Task.REGRESSION)

    # when
    result = _search(table)

    # then the survivor had the lowest error of the first rung, and the winner the lowest of the last
    assert result.method == "successive_halving"
    first = [_first_rung_score(e) for e in result.leaderboard if e["params"] == {}]
    survivor = next(e for e in result.leaderboard if e["params"] == {} and e["rung"] > 0)
    assert _first_rung_score(survivor) == min(first)
    last = [e["cv_score"] for e in result.leaderboard if e["rung"] == result.leaderboard[0]["rung"]]
    assert result.cv_score == min(last)
