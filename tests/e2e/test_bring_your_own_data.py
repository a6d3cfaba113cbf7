"""Bring your own data: four quite different CSVs go through a fresh stack each, as a user would drive it.

For each data set a pipeline config is written, a stack started, the CSV uploaded, the training execution
followed to SUCCEEDED, and the champion queried over HTTP. Its holdout score is compared with a plain
scikit-learn baseline trained here on the same split (the holdout rows the pipeline used, read from
`models/<version>/holdout.csv`; the baseline trains on the rest of the upload).

    LOOPLINE_DATASETS_DOC=docs/datasets.md .venv/bin/pytest tests/e2e/test_bring_your_own_data.py

also rewrites the results table in docs/datasets.md.
"""

from __future__ import annotations

import io
import math
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn import datasets as sk_datasets
from sklearn import metrics as skm
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loopline.client import StackClient
from loopline_runtime.bucket_layout import CHAMPION_KEY, model_prefix

pytestmark = pytest.mark.e2e

DOC_ENV_VAR = "LOOPLINE_DATASETS_DOC"
# Loopline's holdout metric may trail the plain baseline by at most this much (in the metric's own units)
BASELINE_MARGIN = 0.05


@dataclass(frozen=True)
class DatasetCase:
    """One user's data set and the pipeline config they would write for it."""

    name: str
    frame: pd.DataFrame
    config: dict[str, Any]
    features: set[str]  # what the pipeline should use (ids dropped)
    labels: set[Any] | None  # the user's class labels; None for regression
    baseline: str  # "linear" (LogisticRegression / Ridge on scaled numbers) or "hist_gradient_boosting"
    upload_body: Callable[[pd.DataFrame], bytes] = field(default=lambda frame: frame.to_csv(index=False).encode())
    # columns to make a prediction record awkward with: (column, value) for a null and an unseen category
    odd_values: tuple[tuple[str, Any], ...] = ()


def _config(name: str, target: str, *, metric: str, gate: float, alarm: float, task: str | None = None,
            models: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": name,
        "target": target,
        "metric": metric,
        "gate": {"threshold": gate},
        "alarm": {"threshold": alarm, "period_seconds": 10},
        "training": {"holdout_fraction": 0.25, "seed": 42, "min_rows": 30, "time_budget_seconds": 5},
    }
    if task:
        config["task"] = task
    if models is not None:
        config["models"] = models
    return config


def _sklearn_frame(loader: Callable[..., Any], target: str, *, names: bool) -> pd.DataFrame:
    data = loader(as_frame=True)
    frame = data.frame.rename(columns={"target": target})
    if names:
        frame[target] = [str(data.target_names[i]) for i in data.target]
    return frame


def churn_frame(rows: int = 600, seed: int = 11) -> pd.DataFrame:
    """A seeded customer table as exported from a CRM: an id, a date, text categories, yes/no and true/false
    booleans, gaps in several columns, and a text label ("churned" / "stayed")."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "pro", "enterprise"], rows, p=[0.5, 0.35, 0.15])
    region = rng.choice(["north", "south", "east", "west"], rows)
    referral = rng.random(rows) < 0.3
    autopay = rng.random(rows) < 0.6
    tenure = rng.integers(1, 72, rows).astype(float)
    tickets = rng.poisson(1.5, rows)
    spend = np.round(rng.gamma(2.0, 30.0, rows) + np.where(plan == "enterprise", 80, 0), 2)
    signup = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900, rows), unit="D")
    logit = (1.2 - 0.06 * tenure + 0.7 * tickets - 1.4 * autopay - 0.8 * referral
             + np.where(plan == "basic", 0.9, 0.0) + np.where(region == "south", 0.5, 0.0))
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame({
        "customer_id": [f"C{n:05d}" for n in rng.permutation(rows) + 1000],
        "signup_date": signup.strftime("%Y-%m-%d"),
        "plan": plan,
        "region": region,
        "has_referral": np.where(referral, "yes", "no"),
        "autopay": np.where(autopay, "true", "false"),
        "tenure_months": tenure,
        "support_tickets": tickets,
        "monthly_spend": spend,
        "status": np.where(churned, "churned", "stayed"),
    })
    for column, share in {"plan": 0.05, "has_referral": 0.05, "tenure_months": 0.08, "monthly_spend": 0.1}.items():
        frame.loc[rng.random(rows) < share, column] = np.nan
    return frame


def _bom_and_shuffled_columns(frame: pd.DataFrame) -> bytes:
    """What Excel's "CSV UTF-8" export of a re-arranged sheet looks like: a BOM, CRLF, columns in another order."""
    columns = list(frame.columns)
    random.Random(5).shuffle(columns)
    return b"\xef\xbb\xbf" + frame[columns].to_csv(index=False, lineterminator="\r\n").encode("utf-8")


def _cases() -> list[DatasetCase]:
    iris = _sklearn_frame(sk_datasets.load_iris, "species", names=True)
    wine = _sklearn_frame(sk_datasets.load_wine, "cultivar", names=False)
    diabetes = _sklearn_frame(sk_datasets.load_diabetes, "progression", names=False)
    churn = churn_frame()
    linear = [{"name": "linear", "params": {"C": [1.0]}}]
    return [
        # task omitted (inferred from text labels), default candidates and search spaces
        DatasetCase("iris", iris, _config("iris", "species", metric="f1", gate=0.8, alarm=0.8),
                    set(iris.columns) - {"species"}, {"setosa", "versicolor", "virginica"}, "linear"),
        # task omitted (inferred from a few distinct integers): integer class labels stay integers
        DatasetCase("wine", wine, _config("wine", "cultivar", metric="accuracy", gate=0.85, alarm=0.85,
                                          models=linear),
                    set(wine.columns) - {"cultivar"}, {0, 1, 2}, "linear"),
        DatasetCase("diabetes", diabetes, _config("diabetes", "progression", metric="r2", gate=0.3, alarm=0.3,
                                                  task="regression", models=[{"name": "linear",
                                                                              "params": {"alpha": [1.0]}}]),
                    set(diabetes.columns) - {"progression"}, None, "linear"),
        # task omitted; the id column is recognised and ignored; uploaded with a BOM, CRLF, shuffled columns
        DatasetCase("churn", churn, _config("churn", "status", metric="roc_auc", gate=0.7, alarm=0.7, models=linear),
                    set(churn.columns) - {"status", "customer_id"}, {"churned", "stayed"},
                    "hist_gradient_boosting", upload_body=_bom_and_shuffled_columns,
                    odd_values=(("monthly_spend", None), ("region", "antarctica"))),
    ]


CASES = {case.name: case for case in _cases()}


@dataclass
class Outcome:
    dataset: str
    task: str
    metric: str
    rows: int
    holdout_rows: int
    loopline_score: float
    estimator: str
    baseline_score: float
    baseline: str


@pytest.fixture(scope="module")
def outcomes() -> Iterator[list[Outcome]]:
    """Collects each data set's numbers; writes the docs table when $LOOPLINE_DATASETS_DOC names a file."""
    collected: list[Outcome] = []
    yield collected
    target = os.environ.get(DOC_ENV_VAR)
    if target and collected:
        write_results_doc(Path(target), collected)


def _metric(metric: str, y_true: pd.Series, predictions: Any, proba: Any, classes: list[Any]) -> float:
    """The metric computed straight with scikit-learn (not Loopline's code), f1 macro-averaged."""
    if metric == "accuracy":
        return float(skm.accuracy_score(y_true, predictions))
    if metric == "f1":
        return float(skm.f1_score(y_true, predictions, average="macro"))
    if metric == "roc_auc":
        return float(skm.roc_auc_score(y_true == classes[1], proba[:, 1]))
    if metric == "r2":
        return float(skm.r2_score(y_true, predictions))
    raise AssertionError(f"no baseline for {metric}")


def _baseline_inputs(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Minimal preprocessing: numbers as they are, text one-hot encoded, dates as day counts."""
    X = frame[features].copy()
    for column in features:
        if X[column].dtype == object:
            as_date = pd.to_datetime(X[column], errors="coerce", format="%Y-%m-%d")
            if as_date.notna().mean() > 0.9:
                X[column] = (as_date - pd.Timestamp("2000-01-01")).dt.days.astype(float)
    return pd.get_dummies(X, dummy_na=True, dtype=float)


def baseline_score(case: DatasetCase, metric: str, train: pd.DataFrame, holdout: pd.DataFrame,
                   features: list[str]) -> float:
    target = case.config["target"]
    both = _baseline_inputs(pd.concat([train, holdout], ignore_index=True), features)
    X_train, X_holdout = both.iloc[: len(train)], both.iloc[len(train):]
    if case.baseline == "hist_gradient_boosting":
        model: Any = HistGradientBoostingClassifier(random_state=0)
    elif case.labels is None:
        model = make_pipeline(SimpleImputer(), StandardScaler(), Ridge())
    else:
        model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(X_train, train[target])
    proba = model.predict_proba(X_holdout) if hasattr(model, "predict_proba") else None
    classes = list(getattr(model, "classes_", []))
    return _metric(metric, holdout[target], model.predict(X_holdout), proba, classes)


def without_rows(frame: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """`frame` minus `rows` as a multiset (a duplicated row is removed as often as it appears in `rows`)."""
    columns = list(rows.columns)
    left, right = frame[columns].copy(), rows[columns].copy()
    for name in columns:  # numbers compare as numbers: the upload's `1065.0` is the holdout's `1065`
        if pd.api.types.is_numeric_dtype(left[name]) and pd.api.types.is_numeric_dtype(right[name]):
            left[name], right[name] = left[name].astype(float), right[name].astype(float)
    left, right = left.astype(str), right.astype(str)
    left["_nth"] = left.groupby(columns, dropna=False).cumcount()
    right["_nth"] = right.groupby(columns, dropna=False).cumcount()
    merged = left.reset_index().merge(right, on=[*columns, "_nth"], how="left", indicator=True)
    keep = merged.loc[merged["_merge"] == "left_only", "index"]
    return frame.loc[keep].reset_index(drop=True)


def _records(case: DatasetCase, n: int = 3) -> list[dict[str, Any]]:
    """Rows of the user's data as JSON records: missing cells as null, columns in reverse order, odd values."""
    target = case.config["target"]
    rows = case.frame.drop(columns=[target]).head(n)
    records = [
        {column: (None if isinstance(value, float) and math.isnan(value) else value)
         for column, value in reversed(list(row.items()))}
        for row in rows.to_dict(orient="records")
    ]
    first_feature = sorted(case.features)[0]
    records[0][first_feature] = None  # a null is imputed
    for index, (column, value) in enumerate(case.odd_values, start=1):
        records[index % n][column] = value
    return records


@pytest.mark.parametrize("name", list(CASES))
def test_users_data_set_is_trained_promoted_and_served(
    name: str, start_stack: Callable[..., StackClient], tmp_path: Path, outcomes: list[Outcome],
) -> None:
    # given the user's pipeline config and a fresh stack running it
    case = CASES[name]
    config_path = tmp_path / "pipeline.yaml"
    config_path.write_text(yaml.safe_dump(case.config, sort_keys=False), encoding="utf-8")
    stack = start_stack(config_path)
    target, metric = case.config["target"], case.config["metric"]

    # when the CSV is uploaded and the training it starts has finished
    body = case.upload_body(case.frame)
    stack.upload_csv(body, f"{name}.csv")
    execution = stack.wait_for_new_execution(set(), timeout=120)
    described = stack.wait_for_execution(execution["executionArn"], timeout=300)

    # then the run succeeded and promoted a champion that passed its gate
    assert described["status"] == "SUCCEEDED", described
    pointer = stack.read_json(CHAMPION_KEY)
    version = pointer["version"]
    evaluation = stack.read_json(f"{model_prefix(version)}evaluation.json")
    assert evaluation["promote"] is True, evaluation
    assert evaluation["gate_threshold"] == case.config["gate"]["threshold"]

    # and GET /model describes it, with the inferred task and the features the user meant
    model = stack.http("GET", "model")
    assert model.status == 200, model.text
    summary = model.body
    expected_task = "regression" if case.labels is None else "classification"
    assert (summary["task"], summary["metric"], summary["target"]) == (expected_task, metric, target)
    assert set(summary["features"]) == case.features
    assert summary["holdout_score"] == pytest.approx(evaluation["challenger_score"])

    # and the OpenAPI request schema lists exactly those features
    openapi = stack.http("GET", "openapi.json")
    assert openapi.status == 200, openapi.text
    record_schema = openapi.body["components"]["schemas"]["Record"]
    assert set(record_schema["properties"]) == set(record_schema["required"]) == case.features

    # and POST /predict answers awkward records (nulls, unseen categories, other column order) in the user's labels
    records = _records(case)
    response = stack.predict(records)
    assert response.status == 200, response.text
    predictions = response.body["predictions"]
    assert len(predictions) == len(records)
    if case.labels is None:
        assert all(isinstance(p, float) and math.isfinite(p) for p in predictions)
    else:
        assert set(predictions) <= case.labels
        assert set(response.body["classes"]) == case.labels
        assert all(type(p) is type(next(iter(case.labels))) for p in predictions)  # "1" stays 1, text stays text
        assert all(sum(row.values()) == pytest.approx(1.0, abs=1e-3) for row in response.body["probabilities"])

    # and the holdout score is not much worse than a plain scikit-learn model trained on the same split
    holdout = pd.read_csv(io.BytesIO(stack.s3.get_object(Bucket=stack.bucket,
                                                         Key=f"{model_prefix(version)}holdout.csv")["Body"].read()))
    uploaded = pd.read_csv(io.StringIO(case.frame.to_csv(index=False)))
    train = without_rows(uploaded, holdout)
    assert len(train) == len(uploaded) - len(holdout), "every holdout row is found in the upload"
    features = sorted(case.features)
    baseline = baseline_score(case, metric, train, holdout[[*features, target]], features)
    outcome = Outcome(name, expected_task, metric, len(uploaded), len(holdout), summary["holdout_score"],
                      summary["estimator"], baseline, _baseline_name(case))
    outcomes.append(outcome)
    print(f"\n{outcome}")
    assert outcome.loopline_score >= baseline - BASELINE_MARGIN, outcome


def _baseline_name(case: DatasetCase) -> str:
    if case.baseline == "hist_gradient_boosting":
        return "HistGradientBoostingClassifier, one-hot text, dates as day counts"
    estimator = "Ridge" if case.labels is None else "LogisticRegression"
    return f"mean impute + StandardScaler + {estimator}"


def write_results_doc(path: Path, outcomes: list[Outcome]) -> None:
    """Rewrite the generated results table in `path`, between its markers (the rest of the file is kept)."""
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    lines = [
        begin,
        "| dataset | task | metric | rows (holdout) | Loopline holdout | chosen model | scikit-learn baseline | "
        "baseline model |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for o in sorted(outcomes, key=lambda o: list(CASES).index(o.dataset)):
        lines.append(f"| {o.dataset} | {o.task} | {o.metric} | {o.rows} ({o.holdout_rows}) | {o.loopline_score:.4f} "
                     f"| {o.estimator} | {o.baseline_score:.4f} | {o.baseline} |")
    lines.append(end)
    table = "\n".join(lines)
    text = path.read_text(encoding="utf-8") if path.exists() else f"{begin}\n{end}\n"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    path.write_text(head + table + tail, encoding="utf-8")
