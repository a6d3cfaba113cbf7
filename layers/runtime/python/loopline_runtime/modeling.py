"""The model: one scikit-learn Pipeline (coercion, imputation, scaling, one-hot encoding, estimator),
chosen by a seeded, time-bounded search over a few candidate families."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, ParameterSampler, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from loopline_runtime.config import ModelCandidate, Task, higher_is_better
from loopline_runtime.errors import TrainingFailed
from loopline_runtime.features import Float32MedianImputer, TabularCoercer, categorical_columns, numeric_columns
from loopline_runtime.metrics import score
from loopline_runtime.prediction import predict_with_probabilities
from loopline_runtime.progress import PhaseObserver, ignore_phases
from loopline_runtime.schema import FeatureSchema

ESTIMATORS: dict[tuple[str, Task], Callable[[int], Any]] = {
    ("linear", Task.CLASSIFICATION): lambda seed: LogisticRegression(max_iter=2000, random_state=seed),
    ("linear", Task.REGRESSION): lambda seed: Ridge(random_state=seed),
    ("random_forest", Task.CLASSIFICATION): lambda seed: RandomForestClassifier(n_estimators=100, random_state=seed),
    ("random_forest", Task.REGRESSION): lambda seed: RandomForestRegressor(n_estimators=100, random_state=seed),
    ("hist_gradient_boosting", Task.CLASSIFICATION): lambda seed: HistGradientBoostingClassifier(random_state=seed),
    ("hist_gradient_boosting", Task.REGRESSION): lambda seed: HistGradientBoostingRegressor(random_state=seed),
}

TREE_MODELS = (RandomForestClassifier, RandomForestRegressor, HistGradientBoostingClassifier,
               HistGradientBoostingRegressor)

# Small default search spaces: a handful of settings known to matter, not a grid to exhaust.
DEFAULT_SPACES: dict[tuple[str, Task], dict[str, list[Any]]] = {
    ("linear", Task.CLASSIFICATION): {"C": [0.1, 1.0, 10.0]},
    ("linear", Task.REGRESSION): {"alpha": [0.1, 1.0, 10.0]},
    ("random_forest", Task.CLASSIFICATION): {"max_depth": [None, 8], "min_samples_leaf": [1, 5]},
    ("random_forest", Task.REGRESSION): {"max_depth": [None, 8], "min_samples_leaf": [1, 5]},
    ("hist_gradient_boosting", Task.CLASSIFICATION): {"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31]},
    ("hist_gradient_boosting", Task.REGRESSION): {"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31]},
}
DEFAULT_CANDIDATES = ("linear", "random_forest", "hist_gradient_boosting")
SETTINGS_PER_CANDIDATE = 3  # the default setting plus two sampled ones
CV_FOLDS = 3
# The search cross-validates on at most this many training rows (a seeded sample, stratified for classes); the
# winner is refit on all of them. The time budget is checked only between fits, and on large tables a single
# cross-validated fit (a random forest on 100k rows) outlasts it: the sample bounds each fit's cost, while
# thousands of rows per validation fold still rank the candidates reliably.
SEARCH_MAX_ROWS = 20_000


def build_pipeline(schema: FeatureSchema, estimator: Any) -> Pipeline:
    """The unit that is trained, persisted and served.

    Tree ensembles get a lean representation: categories as one float32 ordinal code per column (unseen and
    missing levels share a code of their own) and numbers unscaled (a split does not care about scale). A dense
    float64 one-hot of a 1,500-level column is 12 KB per row and what made a million rows overflow the train
    function. Linear models keep scaling and one-hot encoding, which they need. Both representations use only
    transformers that skl2onnx converts (OrdinalEncoder with handle_unknown="use_encoded_value", not
    HistGradientBoosting's native categorical_features).
    """
    numeric = numeric_columns(schema.features)
    categorical = categorical_columns(schema.features)
    tree = is_tree_model(estimator)
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        steps: list[tuple[str, Any]] = [("impute", Float32MedianImputer(strategy="median", keep_empty_features=True))]
        # Trees split on thresholds and are indifferent to scale; unscaled, the compiled model's float32 inputs
        # are exactly the values scikit-learn's trees compare (scaling in float32 moves values across thresholds)
        if not tree:
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), numeric))
    if categorical:
        encode: tuple[str, Any] = (
            ("ordinal", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float32))
            if tree else
            ("one_hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))
        )
        transformers.append(
            # TabularCoercer has already filled gaps and grouped rare categories (both convertible to ONNX). One-hot:
            # an unseen category that no rare one was grouped with encodes as all zeros; ordinal: as its own code
            ("categorical", Pipeline([encode]), categorical)
        )
    if not transformers:
        raise TrainingFailed("the schema has no usable feature columns; list at least one under `features`")
    features = {name: kind.value for name, kind in schema.features.items()}
    return Pipeline([
        ("coerce", TabularCoercer(features)),
        ("columns", ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)),
        ("model", estimator),
    ])


def is_tree_model(estimator: Any) -> bool:
    """Tree ensembles split on thresholds: they need neither scaling nor one-hot columns."""
    return isinstance(estimator, TREE_MODELS)


@dataclass
class SearchResult:
    """The chosen pipeline (refit on all training rows) and what was tried."""

    pipeline: Pipeline
    candidate: str
    params: dict[str, Any]
    cv_score: float
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    budget_exhausted: bool = False
    search_rows: int = 0  # rows the candidates were cross-validated on (the refit uses all of X)


def search_model(
    schema: FeatureSchema,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    metric: str,
    seed: int,
    time_budget_seconds: float,
    candidates: list[ModelCandidate] | None = None,
    clock: Callable[[], float] = time.monotonic,
    max_search_rows: int = SEARCH_MAX_ROWS,
    on_phase: PhaseObserver = ignore_phases,
) -> SearchResult:
    """Seeded random search with cross-validation over the candidate families, bounded by a time budget.

    Every candidate gets its default setting first, so each family is represented even on a tight budget;
    extra settings are tried round-robin while time remains. Candidates are cross-validated on at most
    `max_search_rows` rows (search_sample); the winner is refit on all of X. `on_phase` sees each candidate's
    cross-validation (`cv_start` / `cv_end`, labelled with the candidate's name).
    """
    start = clock()
    plans = _plans(schema.task, candidates, seed)
    X_search, y_search = search_sample(X, y, schema.task, seed, max_search_rows)
    folds = _folds(schema.task, y_search, seed)
    leaderboard: list[dict[str, Any]] = []
    exhausted = False
    rounds = max(len(settings) for _, settings in plans)
    for round_index in range(rounds):
        for name, settings in plans:
            if round_index >= len(settings):
                continue
            # the first round always runs in full: every family is represented even on a tight budget
            if round_index > 0 and clock() - start > time_budget_seconds:
                exhausted = True
                break
            params = settings[round_index]
            entry: dict[str, Any] = {"candidate": name, "params": _json_params(params)}
            on_phase("cv_start", name)
            try:
                entry["cv_score"] = _cross_validate(schema, name, params, X_search, y_search, folds, metric, seed)
            except Exception as exc:  # a candidate that cannot fit this data is recorded, not fatal
                entry["error"] = f"{type(exc).__name__}: {exc}"[:300]
            on_phase("cv_end", name)
            entry["elapsed_seconds"] = round(clock() - start, 3)
            leaderboard.append(entry)
        if exhausted:
            break
    scored = [e for e in leaderboard if "cv_score" in e and np.isfinite(e["cv_score"])]
    if not scored:
        errors = "; ".join(e.get("error", "") for e in leaderboard[:3])
        raise TrainingFailed(f"no model candidate could be trained on this data ({errors})")
    best = (max if higher_is_better(metric) else min)(scored, key=lambda e: e["cv_score"])
    # the leaderboard entry holds the winner's settings (numpy scalars made plain, equal for set_params)
    pipeline = build_pipeline(schema, _estimator(best["candidate"], schema.task, seed, best["params"]))
    pipeline.fit(X, y)
    ranked = sorted(scored, key=lambda e: e["cv_score"], reverse=higher_is_better(metric))
    failed = [e for e in leaderboard if "cv_score" not in e]
    return SearchResult(pipeline, best["candidate"], best["params"], best["cv_score"], ranked + failed, exhausted,
                        len(X_search))


def search_sample(X: pd.DataFrame, y: pd.Series, task: Task, seed: int,
                  max_rows: int = SEARCH_MAX_ROWS) -> tuple[pd.DataFrame, pd.Series]:
    """At most `max_rows` rows for the search: all of them when they fit, else a seeded sample that keeps the
    class proportions (plain seeded sample when a class is too rare to stratify)."""
    if len(X) <= max_rows:
        return X, y
    stratify = y if task is Task.CLASSIFICATION and y.value_counts().min() >= 2 else None
    try:
        X_sample, _, y_sample, _ = train_test_split(X, y, train_size=max_rows, random_state=seed, stratify=stratify)
    except ValueError:  # e.g. more classes than rows left out: fall back to a plain seeded sample
        X_sample, _, y_sample, _ = train_test_split(X, y, train_size=max_rows, random_state=seed)
    return X_sample, y_sample


def _plans(task: Task, candidates: list[ModelCandidate] | None, seed: int) -> list[tuple[str, list[dict[str, Any]]]]:
    chosen = candidates or [ModelCandidate(name=name) for name in DEFAULT_CANDIDATES]  # type: ignore[arg-type]
    plans: list[tuple[str, list[dict[str, Any]]]] = []
    for candidate in chosen:
        space = candidate.params or DEFAULT_SPACES[(candidate.name, task)]
        defaults = ESTIMATORS[(candidate.name, task)](seed).get_params()
        grid_size = int(np.prod([len(values) for values in space.values()])) if space else 0
        sampled = ParameterSampler(space, n_iter=min(SETTINGS_PER_CANDIDATE, grid_size), random_state=seed)
        # the default setting always runs first; sampled settings equal to it are not run twice
        settings: list[dict[str, Any]] = [{}]
        settings += [p for p in sampled if any(defaults.get(k) != v for k, v in p.items())]
        plans.append((candidate.name, settings[:SETTINGS_PER_CANDIDATE]))
    return plans


def _folds(task: Task, y: pd.Series, seed: int) -> Any:
    if task is Task.CLASSIFICATION and y.value_counts().min() >= CV_FOLDS:
        return StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)
    return KFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)


def _estimator(name: str, task: Task, seed: int, params: dict[str, Any]) -> Any:
    estimator = ESTIMATORS[(name, task)](seed)
    return estimator.set_params(**params)


def _cross_validate(schema: FeatureSchema, name: str, params: dict[str, Any], X: pd.DataFrame,
                    y: pd.Series, folds: Any, metric: str, seed: int) -> float:
    scores = []
    for train_idx, test_idx in folds.split(X, y):
        pipeline = build_pipeline(schema, _estimator(name, schema.task, seed, params))
        pipeline.fit(X.iloc[train_idx], y.iloc[train_idx])
        scores.append(evaluate_pipeline(pipeline, X.iloc[test_idx], y.iloc[test_idx], metric))
    return float(np.mean(scores))


def evaluate_pipeline(pipeline: Pipeline, X: pd.DataFrame, y: pd.Series, metric: str) -> float:
    """The metric of a fitted pipeline on labeled rows."""
    predictions, proba, classes = predict_with_probabilities(pipeline, X)
    return score(metric, y, predictions, proba, classes)


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()}
