"""Quality metrics, oriented so a gate can compare them whatever their direction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from loopline_runtime.config import METRICS, Task, higher_is_better


def score(metric: str, y_true: Any, y_pred: Any, proba: np.ndarray | None = None,
          classes: Sequence[Any] | None = None) -> float:
    """The named metric on predictions. `f1` is macro-averaged so it is defined for any label set; `f1_positive` is
    the F1 of the positive class of a binary target (the second of its sorted classes).

    roc_auc and average_precision need `proba` (columns ordered as `classes`); binary: of the second class (the
    positive one, e.g. 1 of 0/1, "yes" of no/yes), multiclass: one-vs-rest, macro-averaged.
    """
    if metric == "accuracy":
        return float(skm.accuracy_score(y_true, y_pred))
    if metric == "f1":
        return float(skm.f1_score(y_true, y_pred, average="macro"))
    if metric == "f1_positive":
        return f1_of_positive_class(y_true, y_pred, classes)
    if metric == "roc_auc":
        if proba is None or classes is None:
            raise ValueError("roc_auc needs class probabilities")
        if len(classes) == 2:
            return float(skm.roc_auc_score(np.asarray(y_true) == classes[1], proba[:, 1]))
        return float(skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=list(classes)))
    if metric == "average_precision":
        if proba is None or classes is None:
            raise ValueError("average_precision needs class probabilities")
        return average_precision(y_true, proba, list(classes))
    if metric == "rmse":
        return float(np.sqrt(skm.mean_squared_error(y_true, y_pred)))
    if metric == "mae":
        return float(skm.mean_absolute_error(y_true, y_pred))
    if metric == "r2":
        return float(skm.r2_score(y_true, y_pred))
    raise ValueError(f"unknown metric {metric!r}")


def all_scores(task: Task, y_true: Any, y_pred: Any, proba: np.ndarray | None = None,
               classes: Sequence[Any] | None = None) -> dict[str, float]:
    """Every metric that applies to the task (roc_auc skipped when a class is absent from y_true)."""
    scores: dict[str, float] = {}
    for name, (metric_task, _) in METRICS.items():
        if metric_task is not task:
            continue
        try:
            scores[name] = score(name, y_true, y_pred, proba, classes)
        except ValueError:
            continue
    return scores


def meets(metric: str, value: float, threshold: float) -> bool:
    """True when `value` is at least as good as `threshold` for this metric's direction."""
    return value >= threshold if higher_is_better(metric) else value <= threshold


def at_least_as_good(metric: str, challenger: float, champion: float, tolerance: float = 0.0) -> bool:
    """True when the challenger is not worse than the champion by more than `tolerance`."""
    if higher_is_better(metric):
        return challenger >= champion - tolerance
    return challenger <= champion + tolerance


def quality_drop(metric: str, reference: float, measured: float) -> float:
    """How far `measured` fell below `reference` (the champion's own holdout score); positive means worse.

    Points for bounded higher-is-better metrics (accuracy, f1, roc_auc, r2: 0.95 -> 0.80 is a drop of 0.15);
    a fraction of the reference for error metrics (rmse, mae), whose scale is the target's unit: an rmse of
    12 against a holdout rmse of 10 is a drop of 0.2.
    """
    if higher_is_better(metric):
        return float(reference - measured)
    return float((measured - reference) / max(abs(reference), 1e-12))


def average_precision(y_true: Any, proba: np.ndarray, classes: list[Any]) -> float:
    """Average precision (the area under the precision-recall curve, as scikit-learn's `average_precision_score`
    steps it) of the positive class, or macro one-vs-rest for more classes; numpy only.

    Raises:
        ValueError: a ranked class has no row in `y_true` (its precision-recall curve is undefined).
    """
    truth = np.asarray(y_true, dtype=object)
    columns = [1] if len(classes) == 2 else list(range(len(classes)))
    values = []
    for c in columns:
        positive = truth == classes[c]
        if not positive.any():
            raise ValueError(f"average_precision needs at least one row of class {classes[c]!r}")
        order = np.argsort(-np.asarray(proba[:, c], dtype=float), kind="stable")
        ranked = np.asarray(proba[:, c], dtype=float)[order]
        last_of_tie = np.r_[np.flatnonzero(np.diff(ranked) != 0), len(ranked) - 1]
        tps = np.cumsum(positive[order])[last_of_tie]
        precision = tps / (last_of_tie + 1)
        recall = np.r_[0.0, tps / tps[-1]]
        values.append(float(np.sum(np.diff(recall) * precision)))
    return float(np.mean(values))


def f1_of_positive_class(y_true: Any, y_pred: Any, classes: Sequence[Any] | None) -> float:
    """F1 of the positive class (`classes[1]`) of a binary target; 0 when it is never predicted nor present.

    Raises:
        ValueError: not two classes (use the macro-averaged `f1`).
    """
    if classes is None or len(classes) != 2:
        raise ValueError("f1_positive needs a binary target with two classes; use f1 (macro) for more")
    truth = np.asarray(y_true, dtype=object) == classes[1]
    predicted = np.asarray(y_pred, dtype=object) == classes[1]
    tp = float(np.sum(truth & predicted))
    denominator = float(np.sum(truth) + np.sum(predicted))
    return 2 * tp / denominator if denominator > 0 else 0.0
