"""The numbers behind a model's report, recorded by the gate as models/<version>/report.json.

The Lambda layers are near their size limit, so the functions only record numbers (a few KB of JSON) and the
`loopline report` command draws them. Curves are thinned to at most MAX_CURVE_POINTS points, scatter plots to
MAX_SCATTER_POINTS rows, and permutation importance runs on at most MAX_IMPORTANCE_ROWS holdout rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.inspection import permutation_importance

from loopline_runtime.config import Task, higher_is_better
from loopline_runtime.metrics import score
from loopline_runtime.prediction import predict_with_probabilities

REPORT_FILE = "report.json"
MAX_CURVE_POINTS = 200
MAX_SCATTER_POINTS = 1000
MAX_IMPORTANCE_ROWS = 2000
IMPORTANCE_REPEATS = 5
CALIBRATION_BINS = 10


def model_report_numbers(pipeline: Any, X: pd.DataFrame, y: pd.Series, *, task: Task, metric: str,
                         seed: int) -> dict[str, Any]:
    """Everything a model's report draws, measured on its holdout rows."""
    predictions, proba, classes = predict_with_probabilities(pipeline, X)
    numbers: dict[str, Any] = {"task": task.value, "metric": metric, "rows": len(X)}
    if task is Task.CLASSIFICATION and proba is not None and classes is not None:
        numbers["classification"] = classification_numbers(np.asarray(y), predictions, proba, classes)
    else:
        numbers["regression"] = regression_numbers(np.asarray(y, dtype=float), np.asarray(predictions, dtype=float),
                                                   seed=seed)
    numbers["permutation_importance"] = importance_numbers(pipeline, X, y, metric=metric, seed=seed)
    return numbers


def classification_numbers(y: np.ndarray, predictions: Any, proba: np.ndarray, classes: list[Any]) -> dict[str, Any]:
    """Confusion matrix, one-vs-rest ROC and precision-recall curves, and calibration per class.

    For two classes only the second (positive) class's curves are kept: the first's mirror them.
    """
    labels = [_plain(c) for c in classes]
    matrix = skm.confusion_matrix(y, predictions, labels=classes)
    curves = []
    for index in ([1] if len(classes) == 2 else range(len(classes))):
        positive = y == classes[index]
        if positive.all() or not positive.any():
            continue  # a class absent from (or alone in) the holdout has no curve
        scores = proba[:, index]
        fpr, tpr, _ = skm.roc_curve(positive, scores)
        precision, recall, _ = skm.precision_recall_curve(positive, scores)
        fraction, mean_predicted = calibration_curve(positive, scores, n_bins=CALIBRATION_BINS, strategy="uniform")
        curves.append({
            "class": labels[index],
            "positives": int(positive.sum()),
            # a classifier without skill has precision = prevalence at every recall (the PR curve's baseline)
            "prevalence": float(positive.mean()),
            "roc": {"fpr": _thin(fpr), "tpr": _thin(tpr), "auc": float(skm.roc_auc_score(positive, scores))},
            "pr": {"recall": _thin(recall[::-1]), "precision": _thin(precision[::-1]),
                   "average_precision": float(skm.average_precision_score(positive, scores))},
            "calibration": {"mean_predicted": _floats(mean_predicted), "fraction_positive": _floats(fraction),
                            "brier": float(skm.brier_score_loss(positive, scores))},
        })
    return {"classes": labels, "confusion_matrix": matrix.astype(int).tolist(), "curves": curves}


def regression_numbers(y: np.ndarray, predictions: np.ndarray, *, seed: int) -> dict[str, Any]:
    """Predicted against actual values (a seeded sample of at most MAX_SCATTER_POINTS rows) and the residuals."""
    residuals = y - predictions
    keep = np.arange(len(y))
    if len(y) > MAX_SCATTER_POINTS:
        keep = np.sort(np.random.default_rng(seed).choice(len(y), MAX_SCATTER_POINTS, replace=False))
    return {
        "actual": _floats(y[keep]),
        "predicted": _floats(predictions[keep]),
        "residuals": _floats(residuals[keep]),
        "residual_mean": float(residuals.mean()),
        "residual_std": float(residuals.std()),
        "sampled_rows": len(keep),
    }


def importance_numbers(pipeline: Any, X: pd.DataFrame, y: pd.Series, *, metric: str, seed: int) -> dict[str, Any]:
    """Permutation importance on the holdout: how much the metric worsens when one feature's values are shuffled.

    Positive = the model relies on the feature. Sorted by mean importance, most important first.
    """
    if len(X) > MAX_IMPORTANCE_ROWS:
        X = X.sample(MAX_IMPORTANCE_ROWS, random_state=seed)
        y = y.loc[X.index]
    sign = 1.0 if higher_is_better(metric) else -1.0

    def scorer(estimator: Any, X_: pd.DataFrame, y_: pd.Series) -> float:
        predictions, proba, classes = predict_with_probabilities(estimator, X_)
        return sign * score(metric, y_, predictions, proba, classes)

    result = permutation_importance(pipeline, X, y, scoring=scorer, n_repeats=IMPORTANCE_REPEATS,
                                    random_state=seed)
    order = np.argsort(-result.importances_mean)
    return {
        "metric": metric,
        "repeats": IMPORTANCE_REPEATS,
        "rows": len(X),
        "features": [str(X.columns[i]) for i in order],
        "mean": [float(result.importances_mean[i]) for i in order],
        "std": [float(result.importances_std[i]) for i in order],
    }


def _thin(values: np.ndarray) -> list[float]:
    """At most MAX_CURVE_POINTS points, first and last kept (a curve's ends matter)."""
    if len(values) > MAX_CURVE_POINTS:
        values = values[np.unique(np.linspace(0, len(values) - 1, MAX_CURVE_POINTS).round().astype(int))]
    return _floats(values)


def _floats(values: Any) -> list[float]:
    return [round(float(v), 6) for v in np.asarray(values, dtype=float)]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
