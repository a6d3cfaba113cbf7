"""The report's figures, each drawn from recorded numbers only (nothing is recomputed here).

Every function takes the numbers as the functions recorded them and returns a matplotlib Figure; the page embeds
it as a PNG. Tests read the plotted data back from the Figure to check it is the recorded data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

WIDE = (7.0, 4.2)
SQUARE = (5.0, 4.4)
SMALL = (4.6, 2.8)


def _figure(size: tuple[float, float], columns: int = 1) -> tuple[Figure, Any]:
    """A figure outside pyplot (no global state, no GUI backend): saved to PNG by its own Agg canvas."""
    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.subplots(1, columns)


def confusion_matrix(numbers: dict[str, Any]) -> Figure:
    classes, matrix = numbers["classes"], np.asarray(numbers["confusion_matrix"])
    figure, axes = _figure(SQUARE)
    image = axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(classes)), [str(c) for c in classes], rotation=30, ha="right")
    axes.set_yticks(range(len(classes)), [str(c) for c in classes])
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, str(count), ha="center", va="center",
                  color="white" if count > threshold else "black")
    figure.colorbar(image, ax=axes, shrink=0.8)
    axes.set_title("Confusion matrix (holdout)")
    return figure


def roc_curves(numbers: dict[str, Any]) -> Figure:
    figure, axes = _figure(SQUARE)
    for curve in numbers["curves"]:
        roc = curve["roc"]
        axes.plot(roc["fpr"], roc["tpr"], label=f"{curve['class']} (AUC {roc['auc']:.3f})")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02),
             title="ROC curve" + (" (one vs rest)" if len(numbers["curves"]) > 1 else ""))
    axes.legend(loc="best", fontsize="small")
    return figure


def precision_recall_curves(numbers: dict[str, Any]) -> Figure:
    figure, axes = _figure(SQUARE)
    for curve in numbers["curves"]:
        pr = curve["pr"]
        (line,) = axes.plot(pr["recall"], pr["precision"],
                            label=f"{curve['class']} (AP {pr['average_precision']:.3f})")
        if curve.get("prevalence") is not None:  # the no-skill baseline: precision = the class's share
            axes.axhline(curve["prevalence"], color=line.get_color(), linestyle=":",
                         label=f"no skill: {curve['class']} prevalence {curve['prevalence']:.3f}")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall curve")
    axes.legend(loc="best", fontsize="small")
    return figure


def calibration(numbers: dict[str, Any]) -> Figure:
    figure, axes = _figure(SQUARE)
    for curve in numbers["curves"]:
        points = curve["calibration"]
        axes.plot(points["mean_predicted"], points["fraction_positive"], marker="o",
                  label=f"{curve['class']} (Brier {points['brier']:.3f})")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    axes.set(xlabel="mean predicted probability", ylabel="fraction of positives", xlim=(0, 1), ylim=(0, 1.02),
             title="Calibration (reliability)")
    axes.legend(loc="best", fontsize="small")
    return figure


def predicted_vs_actual(numbers: dict[str, Any]) -> Figure:
    figure, axes = _figure(SQUARE)
    actual, predicted = numbers["actual"], numbers["predicted"]
    axes.scatter(actual, predicted, s=12, alpha=0.6)
    low, high = min(actual + predicted), max(actual + predicted)
    axes.plot([low, high], [low, high], linestyle=":", color="grey", label="predicted = actual")
    axes.set(xlabel="actual", ylabel="predicted", title=f"Predicted vs actual ({len(actual)} holdout rows)")
    axes.legend(loc="best", fontsize="small")
    return figure


def residuals(numbers: dict[str, Any]) -> Figure:
    figure, (scatter, histogram) = _figure(WIDE, 2)
    scatter.scatter(numbers["predicted"], numbers["residuals"], s=12, alpha=0.6)
    scatter.axhline(0, linestyle=":", color="grey")
    scatter.set(xlabel="predicted", ylabel="residual (actual - predicted)", title="Residuals vs predicted")
    histogram.hist(numbers["residuals"], bins=30)
    histogram.set(xlabel="residual", ylabel="rows",
                  title=f"mean {numbers['residual_mean']:.3g}, sd {numbers['residual_std']:.3g}")
    return figure


def permutation_importance(numbers: dict[str, Any], *, top: int = 20) -> Figure:
    features, mean, std = numbers["features"][:top], numbers["mean"][:top], numbers["std"][:top]
    figure, axes = _figure((7.0, 0.9 + 0.28 * max(len(features), 1)))
    positions = np.arange(len(features))[::-1]
    axes.barh(positions, mean, xerr=std, color="tab:blue", alpha=0.8)
    axes.set_yticks(positions, features, fontsize="small")
    axes.axvline(0, color="grey", linewidth=0.8)
    axes.set(xlabel=f"drop in {numbers['metric']} when the feature is shuffled",
             title=f"Permutation importance (holdout, {numbers['repeats']} repeats, {numbers['rows']} rows)")
    return figure


def metric_against_champion(runs: list[dict[str, Any]], current: dict[str, Any]) -> Figure:
    """The metric of the recent monitoring runs of this champion (and its label-free estimate), this run marked,
    against the champion's holdout score and the alarm line."""
    figure, axes = _figure(WIDE)
    values = [run["value"] for run in runs]
    axes.plot(range(len(values)), values, marker="o", label=f"measured {current['metric']}")
    index = next(i for i, run in enumerate(runs) if run is current)
    axes.plot([index], [current["value"]], marker="o", markersize=12, fillstyle="none", color="tab:red",
              label="this run", linestyle="none")
    if current.get("champion_holdout_score") is not None:
        axes.axhline(current["champion_holdout_score"], color="tab:green", linestyle="--",
                     label=f"champion's holdout score {current['champion_holdout_score']:.3f}")
    line = current.get("alarm_line", current.get("alarm_threshold"))
    if line is not None:  # max_drop: the champion's holdout score minus the drop
        axes.axhline(line, color="tab:red", linestyle=":", label=f"alarm line {line:.3f}")
    estimated = [run.get("estimated_value") for run in runs]
    if any(value is not None for value in estimated):
        axes.plot(range(len(runs)), [np.nan if v is None else v for v in estimated], marker="x", linestyle="--",
                  color="tab:gray", label=f"estimated {current['metric']} (without labels)")
    axes.set_xticks(range(len(runs)), [run["measured_at"][11:19] for run in runs], rotation=30, ha="right",
                    fontsize="small")
    axes.set(xlabel="monitoring run (UTC)", ylabel=current["metric"],
             title=f"{current['metric']} of champion {current['champion_version']} on fresh labeled data")
    # below the axes: inside, it covered the holdout and threshold lines it names
    figure.legend(loc="outside lower center", ncols=2, fontsize="small", frameon=False)
    return figure


def feature_distribution(name: str, distribution: dict[str, Any], drift: dict[str, Any] | None) -> Figure:
    """Reference (training) and batch shares over the reference's bins, side by side."""
    bins = distribution["bins"]
    positions = np.arange(len(bins))
    figure, axes = _figure(SMALL)
    width = 0.4
    axes.bar(positions - width / 2, distribution["reference"], width, label="training (reference)")
    axes.bar(positions + width / 2, distribution["batch"], width, label="this batch")
    axes.set_xticks(positions, bins, rotation=40, ha="right", fontsize="x-small")
    axes.set_ylabel("share of rows", fontsize="small")
    verdict = ""
    if drift:
        psi = drift.get("psi")
        p = drift.get("p_value")
        verdict = (f"  PSI {psi:.2f}" if psi is not None else "") + (f", p {p:.2g}" if p is not None else "")
        verdict += "  DRIFTED" if drift.get("drifted") else ""
    axes.set_title(f"{name}{verdict}", fontsize="small",
                   color="tab:red" if drift and drift.get("drifted") else "black")
    axes.legend(fontsize="x-small")
    return figure
