"""Quality metrics, oriented so a gate can compare them whatever their direction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from loopline_runtime.config import METRICS, Task, higher_is_better


def score(metric: str, y_true: Any, y_pred: Any, proba: np.ndarray | None = None,
          classes: Sequence[Any] | None = None) -> float:
    """The named metric on predictions. `f1` is macro-averaged so it is defined for any label set.

    roc_auc needs `proba` (columns ordered as `classes`); multiclass uses one-vs-rest, macro-averaged.
    """
    if metric == "accuracy":
        return float(skm.accuracy_score(y_true, y_pred))
    if metric == "f1":
        return float(skm.f1_score(y_true, y_pred, average="macro"))
    if metric == "roc_auc":
        if proba is None or classes is None:
            raise ValueError("roc_auc needs class probabilities")
        if len(classes) == 2:
            return float(skm.roc_auc_score(np.asarray(y_true) == classes[1], proba[:, 1]))
        return float(skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=list(classes)))
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
