"""The model: one scikit-learn Pipeline (coercion, imputation, scaling, one-hot encoding, estimator),
chosen by a seeded, time-bounded search over a few candidate families that spends where it pays."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
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
from threadpoolctl import threadpool_limits

from loopline_runtime.config import ModelCandidate, Task, higher_is_better
from loopline_runtime.errors import TrainingFailed
from loopline_runtime.features import Float32MedianImputer, TabularCoercer, categorical_columns, numeric_columns
from loopline_runtime.metrics import score
from loopline_runtime.model_code import ModelCode
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
# Cheap and strong first (FLAML's cost-frugal order): gradient boosting wins most tabular searches at a fraction
# of a random forest's cost; the order also decides ties.
DEFAULT_CANDIDATES = ("hist_gradient_boosting", "linear", "random_forest")
SETTINGS_PER_CANDIDATE = 3  # the default setting plus two sampled ones
CV_FOLDS = 3
# The search scores candidates on at most this many training rows (a seeded sample, stratified for classes); the
# winner is refit on all of them. The sample bounds each fit's cost, while thousands of validation rows still
# rank the candidates reliably.
SEARCH_MAX_ROWS = 20_000
# Successive halving (search samples with room for two rungs): the first rung's training rows, how many times
# more rows each next rung gets (and how many fewer settings), and the share of the sample kept to score them.
FIRST_RUNG_ROWS = 1_500
HALVING_FACTOR = 3
VALIDATION_FRACTION = 0.25
RUNG_THREADS = 1


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


def build_code_pipeline(schema: FeatureSchema, estimator: Any) -> Pipeline:
    """A candidate of the user's own code: the same coercion as every model (what serving does in numpy before
    the compiled graph), then the user's estimator on the model-input columns (`model_code.ModelInputSchema`)."""
    features = {name: kind.value for name, kind in schema.features.items()}
    return Pipeline([("coerce", TabularCoercer(features)), ("model", estimator)])


def candidate_pipeline(schema: FeatureSchema, name: str, seed: int, params: dict[str, Any],
                       code: Mapping[str, ModelCode] | None = None) -> Pipeline:
    """An unfitted pipeline of one candidate and setting: built in, or from the user's code."""
    if code and name in code:
        return build_code_pipeline(schema, code[name].build(schema, params))
    return build_pipeline(schema, _estimator(name, schema.task, seed, params))


def is_tree_model(estimator: Any) -> bool:
    """Tree ensembles split on thresholds: they need neither scaling nor one-hot columns."""
    return isinstance(estimator, TREE_MODELS)


@dataclass
class SearchResult:
    """The chosen pipeline (refit on all training rows) and what was tried."""

    pipeline: Pipeline
    candidate: str
    params: dict[str, Any]
    cv_score: float  # the winner's search score: cross-validated, or on the validation rows at its last rung
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    budget_exhausted: bool = False
    search_rows: int = 0  # rows the candidates were scored on (the refit uses all of X)
    method: str = "cross_validation"  # or "successive_halving"


@dataclass
class _Trial:
    """One (candidate, setting) of the search and what it has measured so far."""

    candidate: str
    params: dict[str, Any]
    score: float | None = None
    error: str | None = None
    rows: int = 0  # training rows of its last fit (its rung)
    rung: int = 0
    fit_seconds: float = 0.0  # of its last fit: what the next rung is estimated from
    elapsed_seconds: float = 0.0
    history: list[list[float]] = field(default_factory=list)  # [rows, score] of each rung it was scored on

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {"candidate": self.candidate, "params": _json_params(self.params)}
        if self.error is not None:
            out["error"] = self.error
        else:
            out["cv_score"] = self.score
        out.update(rows=self.rows, rung=self.rung, fit_seconds=round(self.fit_seconds, 3),
                   elapsed_seconds=round(self.elapsed_seconds, 3))
        if len(self.history) > 1:
            out["rungs"] = [[int(rows), score] for rows, score in self.history]
        return out


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
    first_rung_rows: int = FIRST_RUNG_ROWS,
    on_phase: PhaseObserver = ignore_phases,
    code: Mapping[str, ModelCode] | None = None,
    sample_weight: np.ndarray | None = None,
) -> SearchResult:
    """Choose a candidate and setting, then refit it on all of X (weighting rows by `sample_weight`, if given:
    the search itself is unweighted).

    Candidates are scored on at most `max_search_rows` rows (search_sample). A sample too small for two rungs of
    `first_rung_rows` training rows is cross-validated exhaustively: every setting of every candidate, the
    defaults first, extra settings round-robin while the time budget lasts. A larger one is searched by
    successive halving (successive_halving). `on_phase` sees each candidate's scoring (`cv_start` / `cv_end`,
    labelled with the candidate's name). `code` holds the loaded code of the candidates that name some.
    """
    plans = _plans(schema, candidates, seed, code)
    X_search, y_search = search_sample(X, y, schema.task, seed, max_search_rows)
    if len(X_search) * (1 - VALIDATION_FRACTION) >= HALVING_FACTOR * first_rung_rows:
        trials, exhausted = successive_halving(
            schema, plans, X_search, y_search, metric=metric, seed=seed, first_rung_rows=first_rung_rows,
            time_budget_seconds=time_budget_seconds, clock=clock, on_phase=on_phase, code=code)
        method = "successive_halving"
    else:
        trials, exhausted = _exhaustive_cross_validation(
            schema, plans, X_search, y_search, metric=metric, seed=seed, time_budget_seconds=time_budget_seconds,
            clock=clock, on_phase=on_phase, code=code)
        method = "cross_validation"
    leaderboard = _ranked(trials, metric)
    if not leaderboard or "cv_score" not in leaderboard[0]:
        errors = "; ".join(e.get("error", "") for e in leaderboard[:3])
        raise TrainingFailed(f"no model candidate could be trained on this data ({errors})")
    best = leaderboard[0]
    # the leaderboard entry holds the winner's settings (numpy scalars made plain, equal for set_params)
    pipeline = candidate_pipeline(schema, best["candidate"], seed, best["params"], code)
    weights = {} if sample_weight is None else {f"{pipeline.steps[-1][0]}__sample_weight": sample_weight}
    pipeline.fit(X, y, **weights)
    return SearchResult(pipeline, best["candidate"], best["params"], best["cv_score"], leaderboard, exhausted,
                        len(X_search), method)


def successive_halving(
    schema: FeatureSchema,
    plans: list[tuple[str, list[dict[str, Any]]]],
    X: pd.DataFrame,
    y: pd.Series,
    *,
    metric: str,
    seed: int,
    first_rung_rows: int,
    time_budget_seconds: float,
    clock: Callable[[], float],
    on_phase: PhaseObserver = ignore_phases,
    code: Mapping[str, ModelCode] | None = None,
) -> tuple[list[_Trial], bool]:
    """Spend where it pays (scikit-learn's HalvingRandomSearchCV, FLAML's cheap-first learner selection).

    A seeded VALIDATION_FRACTION of the rows scores every fit; the rest is the training pool. Rung 0 fits each
    candidate's default setting on `first_rung_rows` rows; only the best 1/HALVING_FACTOR of the candidates go
    on, with all their settings, to HALVING_FACTOR times the rows; then the best 1/HALVING_FACTOR of those
    settings, and so on until one is left or the pool is used up. A setting that cannot win is dropped after one
    small fit instead of a full cross-validation. Before each rung its cost is estimated from the fits so far
    (a fit's time grows about linearly with its rows): a rung that would overrun the time budget is not started,
    and the best of the last rung wins. Rung fits run on one thread: at these sizes OpenMP's per-iteration
    fork/join costs more than it saves (and stalls when the cores are shared).
    """
    start = clock()
    X_pool, X_valid, y_pool, y_valid = _validation_split(X, y, schema.task, seed)
    pool = len(X_pool)
    settings = dict(plans)
    # rung 0: one trial per candidate (its default); with a single candidate, its settings compete from the start
    live = ([_Trial(name, dict(options[0])) for name, options in plans] if len(plans) > 1
            else [_Trial(plans[0][0], dict(p)) for p in plans[0][1]])
    trials: list[_Trial] = []  # every trial that was fitted at least once
    rows = min(first_rung_rows, pool)
    rung = 0
    exhausted = False
    while True:
        if rung > 0:
            estimate = sum(_estimated_fit_seconds(t, trials, rows) for t in live)
            if clock() - start + estimate > time_budget_seconds:
                exhausted = True
                break
        for trial in live:
            if not trial.rows:  # first fit
                trials.append(trial)
            trial.rows, trial.rung = rows, rung
            on_phase("cv_start", trial.candidate)
            fit_start = clock()
            try:
                with threadpool_limits(limits=RUNG_THREADS):
                    pipeline = candidate_pipeline(schema, trial.candidate, seed, trial.params, code)
                    pipeline.fit(X_pool.iloc[:rows], y_pool.iloc[:rows])
                    trial.fit_seconds = clock() - fit_start
                    trial.score = evaluate_pipeline(pipeline, X_valid, y_valid, metric)
                if not np.isfinite(trial.score):
                    trial.error, trial.score = f"the {metric} on the validation rows is not a number", None
                else:
                    trial.history.append([rows, trial.score])
            except Exception as exc:  # a candidate that cannot fit this data is recorded, not fatal
                trial.error, trial.score = f"{type(exc).__name__}: {exc}"[:300], None
            on_phase("cv_end", trial.candidate)
            trial.elapsed_seconds = clock() - start
        ranked = [t for t in live if t.score is not None]
        ranked.sort(key=lambda t: t.score if t.score is not None else 0.0, reverse=higher_is_better(metric))
        keep = ranked[:max(1, math.ceil(len(live) / HALVING_FACTOR))]
        if rung == 0 and len(plans) > 1:
            # the surviving candidates bring all their settings; their defaults were already fitted in rung 0
            survivors = list(keep)
            for trial in keep:
                survivors += [_Trial(trial.candidate, dict(p)) for p in settings[trial.candidate][1:]]
            keep = survivors
        if len(keep) <= 1 or rows >= pool:
            break
        live = keep
        rows = min(rows * HALVING_FACTOR, pool)
        rung += 1
    return trials, exhausted


def _estimated_fit_seconds(trial: _Trial, trials: list[_Trial], rows: int) -> float:
    """A fit's cost at `rows` from the last fit of the same setting, else of the same candidate's default."""
    measured = trial if trial.rows else next((t for t in trials if t.candidate == trial.candidate and t.rows), None)
    if measured is None:
        return 0.0
    return measured.fit_seconds * rows / measured.rows


def _exhaustive_cross_validation(
    schema: FeatureSchema,
    plans: list[tuple[str, list[dict[str, Any]]]],
    X: pd.DataFrame,
    y: pd.Series,
    *,
    metric: str,
    seed: int,
    time_budget_seconds: float,
    clock: Callable[[], float],
    on_phase: PhaseObserver = ignore_phases,
    code: Mapping[str, ModelCode] | None = None,
) -> tuple[list[_Trial], bool]:
    """Every setting cross-validated on every row: small samples, where that is cheap and the most reliable.

    Every candidate gets its default setting first, so each is represented even on a tight budget; extra
    settings are tried round-robin while time remains.
    """
    start = clock()
    folds = _folds(schema.task, y, seed)
    trials: list[_Trial] = []
    rounds = max(len(options) for _, options in plans)
    for round_index in range(rounds):
        for name, options in plans:
            if round_index >= len(options):
                continue
            # the first round always runs in full: every candidate is represented even on a tight budget
            if round_index > 0 and clock() - start > time_budget_seconds:
                return trials, True
            trial = _Trial(name, dict(options[round_index]), rows=len(X))
            on_phase("cv_start", name)
            fit_start = clock()
            try:
                trial.score = _cross_validate(schema, name, trial.params, X, y, folds, metric, seed, code)
                if not np.isfinite(trial.score):
                    trial.error, trial.score = f"the cross-validated {metric} is not a number", None
            except Exception as exc:  # a candidate that cannot fit this data is recorded, not fatal
                trial.error = f"{type(exc).__name__}: {exc}"[:300]
            trial.fit_seconds = clock() - fit_start
            on_phase("cv_end", name)
            trial.elapsed_seconds = clock() - start
            trials.append(trial)
    return trials, False


def _ranked(trials: list[_Trial], metric: str) -> list[dict[str, Any]]:
    """Leaderboard: the trials that reached the highest rung first, best score first within a rung; failures last."""
    sign = 1.0 if higher_is_better(metric) else -1.0
    scored = sorted((t for t in trials if t.score is not None),
                    key=lambda t: (t.rung, sign * (t.score if t.score is not None else 0.0)), reverse=True)
    return [t.entry() for t in scored] + [t.entry() for t in trials if t.score is None]


def _validation_split(X: pd.DataFrame, y: pd.Series, task: Task, seed: int) -> Any:
    """The search's own seeded validation rows (stratified when every class can be), the rest its training pool."""
    stratify = y if task is Task.CLASSIFICATION and y.value_counts().min() >= 2 else None
    try:
        return train_test_split(X, y, test_size=VALIDATION_FRACTION, random_state=seed, stratify=stratify)
    except ValueError:  # a class too rare for a stratified split
        return train_test_split(X, y, test_size=VALIDATION_FRACTION, random_state=seed)


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


def _plans(schema: FeatureSchema, candidates: list[ModelCandidate] | None, seed: int,
           code: Mapping[str, ModelCode] | None = None) -> list[tuple[str, list[dict[str, Any]]]]:
    task = schema.task
    chosen = candidates or [ModelCandidate(name=name) for name in DEFAULT_CANDIDATES]
    plans: list[tuple[str, list[dict[str, Any]]]] = []
    for candidate in chosen:
        if candidate.code:
            if not code or candidate.name not in code:
                raise TrainingFailed(f"candidate {candidate.name!r} names {candidate.code} but its code was not loaded")
            # the user's grid (none: its own settings alone), in set_params names of the returned estimator
            space = candidate.params
            defaults = code[candidate.name].build(schema).get_params()
        else:
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
                    y: pd.Series, folds: Any, metric: str, seed: int,
                    code: Mapping[str, ModelCode] | None = None) -> float:
    scores = []
    for train_idx, test_idx in folds.split(X, y):
        pipeline = candidate_pipeline(schema, name, seed, params, code)
        pipeline.fit(X.iloc[train_idx], y.iloc[train_idx])
        scores.append(evaluate_pipeline(pipeline, X.iloc[test_idx], y.iloc[test_idx], metric))
    return float(np.mean(scores))


def evaluate_pipeline(pipeline: Pipeline, X: pd.DataFrame, y: pd.Series, metric: str) -> float:
    """The metric of a fitted pipeline on labeled rows."""
    predictions, proba, classes = predict_with_probabilities(pipeline, X)
    return score(metric, y, predictions, proba, classes)


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()}
