"""Classifier quality estimated without labels, from the model's own calibrated probabilities (confidence-based
performance estimation, as NannyML's CBPE does).

At registration the train step fits, on the holdout, one isotonic curve per class that maps the model's probability
to the observed frequency of that class (`fit_calibration`); the curves are plain numbers in the manifest
(`calibration`), nothing is pickled. Later, given the probabilities the champion returned for rows whose labels are
not known yet, `estimate_quality` turns each row's calibrated probability into an expected confusion matrix and
returns the metrics that follow from it: accuracy, macro F1, F1 of the positive class, and the ranking metrics
(ROC AUC, average precision).

The estimate is only as good as two assumptions, and says so (`QualityEstimate.trusted`, `reasons`):
- the probabilities are well calibrated: measured out of fold on the holdout (`calibration_error`, the expected
  calibration error of the calibrated probabilities on the half of the holdout the curves were not fitted on);
- the relation between inputs and target is unchanged (covariate shift only). A change of that relation (concept
  drift, e.g. a column reported in another unit) is invisible to any label-free estimate: only labels show it.
Few rows make it noisy too. Numpy only: it runs on the serving layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

CALIBRATION_METHOD = "isotonic"
# CloudWatch metrics of the estimate, published by monitoring (labeled batches) and live_drift (captures): the
# configured metric estimated from the champion's calibrated probabilities, and its drop below the holdout score
ESTIMATED_QUALITY_METRIC_NAME = "EstimatedModelQuality"
ESTIMATED_QUALITY_DROP_METRIC_NAME = "EstimatedModelQualityDrop"
# out-of-fold expected calibration error above this: the estimate is flagged as not to be trusted
MAX_TRUSTED_CALIBRATION_ERROR = 0.05
# fewer rows than this in the estimated batch, or in the holdout the curves were fitted on: flagged
MIN_ESTIMATE_ROWS = 100
MIN_CALIBRATION_ROWS = 200
CALIBRATION_BINS = 10
ESTIMATED_METRICS = ("accuracy", "f1", "f1_positive", "roc_auc", "average_precision")


@dataclass(frozen=True)
class QualityEstimate:
    """Expected metrics of a batch of predictions, and whether to believe them."""

    metrics: dict[str, float]
    rows: int
    trusted: bool
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_calibration(probabilities: np.ndarray, labels: np.ndarray, classes: list[Any]) -> dict[str, Any]:
    """The calibration of a classifier's probabilities on its holdout, as plain numbers for the manifest.

    Args:
        probabilities: n x classes, the model's predicted probabilities (columns ordered as `classes`).
        labels: the n true labels (values of `classes`).
    """
    proba = _as_matrix(probabilities, len(classes))
    y = _label_indices(labels, classes)
    # out of fold: curves fitted on one half of the holdout are judged on the other, and the other way round
    folds = np.arange(len(y)) % 2
    calibrated = np.empty_like(proba)
    for fold in (0, 1):
        fitted, judged = folds != fold, folds == fold
        curves = _fit_curves(proba[fitted], y[fitted], len(classes))
        calibrated[judged] = _apply_curves(proba[judged], curves)
    return {
        "method": CALIBRATION_METHOD,
        "classes": list(classes),
        "curves": _fit_curves(proba, y, len(classes)),
        "holdout_rows": len(y),
        "calibration_error": round(expected_calibration_error(calibrated, y, proba.argmax(axis=1)), 6),
        "raw_calibration_error": round(expected_calibration_error(proba, y), 6),
    }


def estimate_quality(probabilities: Any, calibration: dict[str, Any]) -> QualityEstimate:
    """Expected accuracy, macro F1, F1 of the positive class (binary), ROC AUC and average precision of unlabeled
    predictions.

    Args:
        probabilities: n x classes predicted probabilities as the champion returned them (columns ordered as the
            manifest's `classes`; `calibration["classes"]` is the same list).
        calibration: the champion manifest's `calibration` (written by `fit_calibration` at registration).

    Returns:
        A QualityEstimate; `trusted` is False (with `reasons`) when the calibration measured poorly on the holdout,
        the batch or the holdout had too few rows, or a ranking metric cannot be estimated.
    """
    classes = list(calibration["classes"])
    proba = _as_matrix(probabilities, len(classes))
    reasons = _distrust(calibration, len(proba))
    if len(proba) == 0:
        return QualityEstimate({}, 0, False, reasons)
    expected = _apply_curves(proba, calibration["curves"])
    predicted = proba.argmax(axis=1)  # the label the model returned: its most probable class
    f1_per_class = _expected_f1_per_class(expected, predicted)
    metrics = {"accuracy": float(expected[np.arange(len(proba)), predicted].mean()),
               "f1": float(np.mean(f1_per_class))}
    if len(classes) == 2:
        metrics["f1_positive"] = f1_per_class[1]
    ranking = {"roc_auc": _expected_roc_auc, "average_precision": _expected_average_precision}
    for name, estimator in ranking.items():
        values = [estimator(proba[:, c], expected[:, c]) for c in _ranked_classes(len(classes))]
        if all(v is not None for v in values):
            metrics[name] = float(np.mean([v for v in values if v is not None]))
    return QualityEstimate({k: round(v, 6) for k, v in metrics.items()}, len(proba), not reasons, reasons)


def expected_calibration_error(probabilities: np.ndarray, y: np.ndarray, predicted: np.ndarray | None = None,
                               bins: int = CALIBRATION_BINS) -> float:
    """The worse of two expected calibration errors (mean |probability - observed frequency| over equal-mass bins):
    per class column (binary: the positive one), and of the predicted class's probability against how often the
    prediction was right (`predicted`: the class the model returned, default the most probable). The second is
    what the expected accuracy and F1 rest on: a model can be calibrated per class on average and still be wrong
    about its own predictions."""
    chosen = probabilities.argmax(axis=1) if predicted is None else predicted
    pairs = [(probabilities[:, c], y == c) for c in _ranked_classes(probabilities.shape[1])]
    pairs.append((probabilities[np.arange(len(y)), chosen], y == chosen))
    return max(_binned_error(p, hit.astype(float), bins) for p, hit in pairs)


def _binned_error(p: np.ndarray, hit: np.ndarray, bins: int) -> float:
    if len(p) == 0:
        return 0.0
    order = np.argsort(p, kind="stable")
    groups = np.array_split(order, min(bins, len(p)))
    return float(sum(abs(p[g].mean() - hit[g].mean()) * len(g) for g in groups if len(g)) / len(p))


def _distrust(calibration: dict[str, Any], rows: int) -> list[str]:
    reasons = []
    error = float(calibration.get("calibration_error", 1.0))
    if error > MAX_TRUSTED_CALIBRATION_ERROR:
        reasons.append(f"the calibrated probabilities missed the observed class frequencies by {error:.3f} on the "
                       f"holdout (more than {MAX_TRUSTED_CALIBRATION_ERROR}): poorly calibrated")
    fitted_on = int(calibration.get("holdout_rows", 0))
    if fitted_on < MIN_CALIBRATION_ROWS:
        reasons.append(f"calibrated on {fitted_on} holdout rows, fewer than {MIN_CALIBRATION_ROWS}")
    if rows < MIN_ESTIMATE_ROWS:
        reasons.append(f"{rows} rows estimated, fewer than {MIN_ESTIMATE_ROWS}: the estimate is noisy")
    return reasons


def _ranked_classes(count: int) -> list[int]:
    """The probability columns a one-vs-rest metric looks at: binary, the positive (second) class only."""
    return [1] if count == 2 else list(range(count))


def _fit_curves(proba: np.ndarray, y: np.ndarray, count: int) -> list[dict[str, list[float]]]:
    curves = []
    for c in range(count):
        x, fitted = _isotonic(proba[:, c], (y == c).astype(float))
        curves.append({"x": [round(float(v), 9) for v in x], "y": [round(float(v), 9) for v in fitted]})
    return curves


def _apply_curves(proba: np.ndarray, curves: list[dict[str, list[float]]]) -> np.ndarray:
    """Each column through its curve, then rows renormalised to sum to 1 (binary: the positive column decides)."""
    if proba.shape[1] == 2:
        positive = _through(proba[:, 1], curves[1])
        return np.column_stack([1 - positive, positive])
    out = np.column_stack([_through(proba[:, c], curve) for c, curve in enumerate(curves)])
    totals = out.sum(axis=1, keepdims=True)
    even = np.full_like(out, 1 / out.shape[1])
    return np.divide(out, totals, out=even, where=totals > 0)


def _through(values: np.ndarray, curve: dict[str, list[float]]) -> np.ndarray:
    x, y = np.asarray(curve["x"], dtype=float), np.asarray(curve["y"], dtype=float)
    if len(x) == 0:
        return np.asarray(values, dtype=float)
    return np.clip(np.interp(values, x, y), 0.0, 1.0)


def _isotonic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-decreasing least-squares fit of y on x (pool adjacent violators); returns the curve's knots: each
    block's first and last x at its mean, so `np.interp` reproduces the step function and joins the steps."""
    if len(x) == 0:
        return np.array([]), np.array([])
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    # equal x values form one block from the start (a function of x cannot give them different values)
    starts = np.flatnonzero(np.r_[True, np.diff(xs) > 0])
    sums = np.add.reduceat(ys, starts)
    counts = np.diff(np.r_[starts, len(xs)]).astype(float)
    lows, highs = xs[starts], xs[np.r_[starts[1:], len(xs)] - 1]
    block_sum: list[float] = []
    block_count: list[float] = []
    block_low: list[float] = []
    block_high: list[float] = []
    for s, n, lo, hi in zip(sums, counts, lows, highs, strict=True):
        block_sum.append(float(s))
        block_count.append(float(n))
        block_low.append(float(lo))
        block_high.append(float(hi))
        while len(block_sum) > 1 and block_sum[-2] / block_count[-2] >= block_sum[-1] / block_count[-1]:
            merged_sum, merged_count, merged_high = block_sum.pop(), block_count.pop(), block_high.pop()
            block_low.pop()
            block_sum[-1] += merged_sum
            block_count[-1] += merged_count
            block_high[-1] = merged_high
    means = np.asarray(block_sum) / np.asarray(block_count)
    knots_x = np.column_stack([block_low, block_high]).ravel()
    knots_y = np.repeat(means, 2)
    keep = np.r_[True, np.diff(knots_x) > 0]  # a one-value block is one knot
    return knots_x[keep], knots_y[keep]


def _expected_f1_per_class(expected: np.ndarray, predicted: np.ndarray) -> list[float]:
    scores = []
    for c in range(expected.shape[1]):
        chosen = predicted == c
        tp = expected[chosen, c].sum()
        fp = (1 - expected[chosen, c]).sum()
        fn = expected[~chosen, c].sum()
        denominator = 2 * tp + fp + fn
        scores.append(float(2 * tp / denominator) if denominator > 0 else 0.0)
    return scores


def _expected_roc_auc(score: np.ndarray, expected: np.ndarray) -> float | None:
    """Area under the expected ROC curve: rows ranked by the model's score, each counting as `expected` of a positive
    and 1 - `expected` of a negative (ties ranked together)."""
    tps, fps = _expected_counts(score, expected)
    if tps[-1] <= 0 or fps[-1] <= 0:
        return None
    tpr, fpr = np.r_[0.0, tps / tps[-1]], np.r_[0.0, fps / fps[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _expected_average_precision(score: np.ndarray, expected: np.ndarray) -> float | None:
    tps, fps = _expected_counts(score, expected)
    if tps[-1] <= 0:
        return None
    precision = tps / np.maximum(tps + fps, 1e-12)
    recall = np.r_[0.0, tps / tps[-1]]
    return float(np.sum(np.diff(recall) * precision))


def _expected_counts(score: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-score, kind="stable")
    s, e = score[order], expected[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    return np.cumsum(e)[last_of_tie], np.cumsum(1 - e)[last_of_tie]


def _as_matrix(probabilities: Any, count: int) -> np.ndarray:
    proba = np.asarray(probabilities, dtype=float)
    if proba.ndim != 2 or proba.shape[1] != count:
        raise ValueError(f"expected probabilities as rows x {count} classes, got shape {proba.shape}")
    return proba


def _label_indices(labels: Any, classes: list[Any]) -> np.ndarray:
    index = {str(c): i for i, c in enumerate(classes)}
    values = [str(v) for v in np.asarray(labels, dtype=object)]
    unknown = sorted({v for v in values if v not in index})
    if unknown:
        raise ValueError(f"labels {unknown[:5]} are not among the model's classes {classes}")
    return np.array([index[v] for v in values], dtype=int)
