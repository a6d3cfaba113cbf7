"""Quality metrics, oriented so a gate can compare them whatever their direction.

numpy only (the monitor function runs on the serving layer, without scikit-learn): every metric equals
scikit-learn's (`sklearn.metrics`) on the same inputs, raising ValueError where it does (tests/unit/test_metrics.py
compares them on a corpus).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopline_runtime.feature_schema import Task

Scorer = Callable[[Any, Any, "np.ndarray | None", "Sequence[Any] | None"], float]


@dataclass(frozen=True)
class Metric:
    """One quality metric and everything the pipeline needs to know about it: the config accepts its name for its
    task, the gate and the alarm orient it by its direction, `loopline init` proposes its alarm default, and
    scoring calls its scorer. Adding a metric is one entry in REGISTRY (and its name in template.yaml's
    QualityMetric AllowedValues, which tests/unit/test_metrics.py checks)."""

    name: str
    task: Task
    higher_is_better: bool
    # `loopline init`'s alarm.max_drop: points below the champion's own holdout score for bounded scores (f1 0.95 ->
    # 0.85); for error metrics a share of the holdout error (rmse 10 -> 12.5), looser because an error measured on
    # one batch varies more
    default_max_drop: float
    scorer: Scorer
    note: str  # one sentence for a person choosing it (`loopline init` writes it above `metric:`)
    needs_probabilities: bool = False  # scored from class probabilities (columns ordered as `classes`)


def _with_probabilities(name: str, scorer: Callable[[Any, np.ndarray, list[Any]], float]) -> Scorer:
    def scored(y_true: Any, y_pred: Any, proba: np.ndarray | None, classes: Sequence[Any] | None) -> float:
        if proba is None or classes is None:
            raise ValueError(f"{name} needs class probabilities")
        return scorer(y_true, proba, list(classes))

    return scored


def _rmse(y_true: Any, y_pred: Any, proba: np.ndarray | None, classes: Sequence[Any] | None) -> float:
    truth, predicted = _regression_pair(y_true, y_pred)
    return float(np.sqrt(np.mean((truth - predicted) ** 2)))


def _mae(y_true: Any, y_pred: Any, proba: np.ndarray | None, classes: Sequence[Any] | None) -> float:
    truth, predicted = _regression_pair(y_true, y_pred)
    return float(np.mean(np.abs(truth - predicted)))


REGISTRY: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("accuracy", Task.CLASSIFICATION, True, 0.1, lambda t, p, proba, classes: accuracy(t, p),
           "accuracy: share of correct predictions (higher is better)."),
    Metric("f1", Task.CLASSIFICATION, True, 0.1, lambda t, p, proba, classes: macro_f1(t, p),
           "f1 is macro-averaged: every class counts equally, however rare (higher is better)."),
    Metric("precision", Task.CLASSIFICATION, True, 0.1, lambda t, p, proba, classes: macro_precision(t, p),
           "precision is macro-averaged: of the rows predicted as a class, the share that are; every class counts "
           "equally (higher is better)."),
    # its alarm default is looser: the F1 of a rare class on one batch varies more (the generated churn table of
    # tests/support/churn.py, 11% churners: batches of 1,000 rows scored 0.63-0.72 against a holdout 0.73)
    Metric("f1_positive", Task.CLASSIFICATION, True, 0.15,
           lambda t, p, proba, classes: f1_of_positive_class(t, p, classes),
           "f1_positive: F1 of the positive class (the second of the sorted labels) (higher is better)."),
    # binary: of the second class (1 of 0/1, "yes" of no/yes); multiclass: one-vs-rest, macro-averaged
    Metric("roc_auc", Task.CLASSIFICATION, True, 0.1,
           _with_probabilities("roc_auc", lambda t, proba, c: roc_auc(t, proba, c)),
           "roc_auc: ranking quality of the class probabilities (higher is better).", needs_probabilities=True),
    Metric("average_precision", Task.CLASSIFICATION, True, 0.1,
           _with_probabilities(
               "average_precision", lambda t, proba, c: average_precision(t, proba, c)),
           "average_precision: area under the precision-recall curve of the positive class (higher is better).",
           needs_probabilities=True),
    Metric("rmse", Task.REGRESSION, False, 0.25, _rmse,
           "rmse: root mean squared error, in the target's unit (lower is better)."),
    Metric("mae", Task.REGRESSION, False, 0.25, _mae,
           "mae: mean absolute error, in the target's unit (lower is better)."),
    Metric("r2", Task.REGRESSION, True, 0.1, lambda t, p, proba, classes: r2(t, p),
           "r2: share of the target's variance explained; 0 is as good as predicting the mean (higher is better)."),
)}
# metric name -> (task, higher_is_better): the registry's view the config and the reports read
METRICS: dict[str, tuple[Task, bool]] = {name: (m.task, m.higher_is_better) for name, m in REGISTRY.items()}
DEFAULT_METRIC = {Task.CLASSIFICATION: "f1", Task.REGRESSION: "r2"}


def higher_is_better(metric: str) -> bool:
    return REGISTRY[metric].higher_is_better


def score(metric: str, y_true: Any, y_pred: Any, proba: np.ndarray | None = None,
          classes: Sequence[Any] | None = None) -> float:
    """The named metric on predictions (see REGISTRY); roc_auc and average_precision need `proba` and `classes`."""
    if metric not in REGISTRY:
        raise ValueError(f"unknown metric {metric!r}")
    return REGISTRY[metric].scorer(y_true, y_pred, proba, classes)


def all_scores(task: Task, y_true: Any, y_pred: Any, proba: np.ndarray | None = None,
               classes: Sequence[Any] | None = None) -> dict[str, float]:
    """Every metric that applies to the task (roc_auc skipped when a class is absent from y_true)."""
    scores: dict[str, float] = {}
    for name, metric in REGISTRY.items():
        if metric.task is not task:
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


def beats(metric: str, challenger: float, champion: float) -> bool:
    """True when the challenger is strictly better than the champion."""
    return challenger > champion if higher_is_better(metric) else challenger < champion


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


def accuracy(y_true: Any, y_pred: Any) -> float:
    """The share of rows whose prediction is their label."""
    truth, predicted = _label_pair(y_true, y_pred)
    return float(np.mean(truth == predicted))


def macro_f1(y_true: Any, y_pred: Any) -> float:
    """F1 averaged over every label seen in the labels or the predictions (scikit-learn's average="macro")."""
    truth, predicted = _label_pair(y_true, y_pred)
    values = []
    for label in _sorted_labels(np.concatenate([truth, predicted])):
        actual, guessed = truth == label, predicted == label
        tp = float(np.sum(actual & guessed))
        denominator = 2 * tp + float(np.sum(~actual & guessed)) + float(np.sum(actual & ~guessed))
        values.append(2 * tp / denominator if denominator > 0 else 0.0)
    return float(np.mean(values))


def macro_precision(y_true: Any, y_pred: Any) -> float:
    """Precision averaged over every label seen in the labels or the predictions, 0 for a label never predicted
    (scikit-learn's precision_score(average="macro", zero_division=0))."""
    truth, predicted = _label_pair(y_true, y_pred)
    values = []
    for label in _sorted_labels(np.concatenate([truth, predicted])):
        guessed = predicted == label
        values.append(float(np.sum(guessed & (truth == label))) / float(np.sum(guessed)) if guessed.any() else 0.0)
    return float(np.mean(values))


def roc_auc(y_true: Any, proba: np.ndarray, classes: list[Any]) -> float:
    """Area under the ROC curve: of the positive class (`classes[1]`) for two classes, else one-vs-rest averaged
    over the classes (macro), as scikit-learn's roc_auc_score(multi_class="ovr", labels=classes).

    Raises:
        ValueError: a class has no row in `y_true`, a label is not one of `classes`, or the rows' probabilities do
            not sum to 1 (more than two classes).
    """
    truth = np.asarray(y_true, dtype=object)
    scores = _finite_matrix(proba)
    if len(classes) == 2:
        return _binary_auc(truth == classes[1], scores[:, 1])
    if scores.shape[1] != len(classes):
        raise ValueError(f"{len(classes)} classes but {scores.shape[1]} probability columns")
    if not np.allclose(1, scores.sum(axis=1)):
        raise ValueError("the class probabilities of a row must sum to 1 for a multiclass roc_auc")
    if not np.isin(truth, np.asarray(classes, dtype=object)).all():
        raise ValueError("y_true contains labels not in the model's classes")
    return float(np.mean([_binary_auc(truth == label, scores[:, c]) for c, label in enumerate(classes)]))


def r2(y_true: Any, y_pred: Any) -> float:
    """The coefficient of determination; nan below two rows, 1 or 0 for a constant target (perfect or not)."""
    truth, predicted = _regression_pair(y_true, y_pred)
    if truth.size < 2:
        return float("nan")  # scikit-learn warns and answers nan: R^2 is not defined on one row
    residual = float(np.sum((truth - predicted) ** 2))
    total = float(np.sum((truth - np.mean(truth)) ** 2))
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return 1.0 - residual / total


def _binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """The Mann-Whitney form of the area under the ROC curve (a tie counts half), which the trapezoids of the ROC
    curve compute."""
    positives = int(np.sum(positive))
    negatives = int(positive.size - positives)
    if positives == 0 or negatives == 0:
        raise ValueError("Only one class present in y_true. ROC AUC score is not defined in that case.")
    order = np.argsort(scores, kind="mergesort")
    ranked = scores[order]
    # the average rank of each run of tied scores (ranks from 1)
    starts = np.r_[0, np.flatnonzero(np.diff(ranked) != 0) + 1]
    ends = np.r_[starts[1:], ranked.size]
    average = (starts + ends + 1) / 2.0
    ranks = np.empty(ranked.size)
    ranks[order] = np.repeat(average, ends - starts)
    return float((np.sum(ranks[positive]) - positives * (positives + 1) / 2.0) / (positives * negatives))


def _label_pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(y_true, dtype=object).ravel()
    predicted = np.asarray(y_pred, dtype=object).ravel()
    if truth.size != predicted.size:
        raise ValueError(f"{truth.size} labels but {predicted.size} predictions")
    if truth.size == 0:
        raise ValueError("no labeled rows to score")
    _sorted_labels(np.concatenate([truth, predicted]))  # as scikit-learn: labels of one type
    return truth, predicted


def _sorted_labels(values: np.ndarray) -> list[Any]:
    distinct = set(values.tolist())
    if len({isinstance(v, str) for v in distinct}) > 1:
        raise ValueError("Mix of label input types (string and number)")
    return sorted(distinct)


def _regression_pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(y_true, dtype=float).ravel()
    predicted = np.asarray(y_pred, dtype=float).ravel()
    if truth.size != predicted.size:
        raise ValueError(f"{truth.size} targets but {predicted.size} predictions")
    if truth.size == 0:
        raise ValueError("no labeled rows to score")
    if not (np.isfinite(truth).all() and np.isfinite(predicted).all()):
        raise ValueError("Input contains NaN or infinity")
    return truth, predicted


def _finite_matrix(proba: np.ndarray) -> np.ndarray:
    matrix = np.asarray(proba, dtype=float)
    if not np.isfinite(matrix).all():
        raise ValueError("Input contains NaN or infinity")
    return matrix
