"""Quality metrics agree with scikit-learn, and the gate compares them in the right direction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from loopline_runtime.config import METRICS, Task, higher_is_better
from loopline_runtime.metrics import REGISTRY, all_scores, at_least_as_good, meets, score

Y_TRUE_BINARY = np.array(["benign", "malignant", "benign", "benign", "malignant", "malignant", "benign", "benign"])
Y_PRED_BINARY = np.array(["benign", "malignant", "malignant", "benign", "benign", "malignant", "benign", "benign"])
CLASSES_BINARY = ["benign", "malignant"]
P_MALIGNANT = np.array([0.1, 0.9, 0.6, 0.2, 0.4, 0.8, 0.3, 0.05])
PROBA_BINARY = np.column_stack([1 - P_MALIGNANT, P_MALIGNANT])

Y_TRUE_MULTI = np.array([0, 1, 2, 2, 1, 0, 2, 1, 0])
PROBA_MULTI = np.array([
    [0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1],
    [0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.8, 0.1], [0.4, 0.4, 0.2],
])
Y_PRED_MULTI = PROBA_MULTI.argmax(axis=1)

Y_TRUE_REG = np.array([3.0, -0.5, 2.0, 7.0, 4.2])
Y_PRED_REG = np.array([2.5, 0.0, 2.0, 8.0, 3.9])


@pytest.mark.parametrize(
    ("metric", "ours", "reference"),
    [
        ("accuracy", lambda: score("accuracy", Y_TRUE_BINARY, Y_PRED_BINARY),
         lambda: skm.accuracy_score(Y_TRUE_BINARY, Y_PRED_BINARY)),
        ("f1", lambda: score("f1", Y_TRUE_BINARY, Y_PRED_BINARY),
         lambda: skm.f1_score(Y_TRUE_BINARY, Y_PRED_BINARY, average="macro")),
        ("f1-multiclass", lambda: score("f1", Y_TRUE_MULTI, Y_PRED_MULTI),
         lambda: skm.f1_score(Y_TRUE_MULTI, Y_PRED_MULTI, average="macro")),
        ("roc_auc", lambda: score("roc_auc", Y_TRUE_BINARY, Y_PRED_BINARY, PROBA_BINARY, CLASSES_BINARY),
         lambda: skm.roc_auc_score(Y_TRUE_BINARY == "malignant", P_MALIGNANT)),
        ("roc_auc-multiclass", lambda: score("roc_auc", Y_TRUE_MULTI, Y_PRED_MULTI, PROBA_MULTI, [0, 1, 2]),
         lambda: skm.roc_auc_score(Y_TRUE_MULTI, PROBA_MULTI, multi_class="ovr", average="macro")),
        ("f1_positive", lambda: score("f1_positive", Y_TRUE_BINARY, Y_PRED_BINARY, PROBA_BINARY, CLASSES_BINARY),
         lambda: skm.f1_score(Y_TRUE_BINARY, Y_PRED_BINARY, pos_label="malignant")),
        ("average_precision",
         lambda: score("average_precision", Y_TRUE_BINARY, Y_PRED_BINARY, PROBA_BINARY, CLASSES_BINARY),
         lambda: skm.average_precision_score(Y_TRUE_BINARY == "malignant", P_MALIGNANT)),
        ("average_precision-ties",
         lambda: score("average_precision", Y_TRUE_BINARY, Y_PRED_BINARY, PROBA_BINARY.round(0), CLASSES_BINARY),
         lambda: skm.average_precision_score(Y_TRUE_BINARY == "malignant", P_MALIGNANT.round(0))),
        ("average_precision-multiclass",
         lambda: score("average_precision", Y_TRUE_MULTI, Y_PRED_MULTI, PROBA_MULTI, [0, 1, 2]),
         lambda: skm.average_precision_score(np.eye(3)[Y_TRUE_MULTI], PROBA_MULTI, average="macro")),
        ("rmse", lambda: score("rmse", Y_TRUE_REG, Y_PRED_REG),
         lambda: skm.root_mean_squared_error(Y_TRUE_REG, Y_PRED_REG)),
        ("mae", lambda: score("mae", Y_TRUE_REG, Y_PRED_REG),
         lambda: skm.mean_absolute_error(Y_TRUE_REG, Y_PRED_REG)),
        ("r2", lambda: score("r2", Y_TRUE_REG, Y_PRED_REG), lambda: skm.r2_score(Y_TRUE_REG, Y_PRED_REG)),
    ],
)
def test_metric_matches_scikit_learn(metric: str, ours: Callable[[], float], reference: Callable[[], float]) -> None:
    # given the same predictions

    # when
    value = ours()

    # then
    assert value == pytest.approx(float(reference()), abs=1e-12)


def test_roc_auc_orders_probabilities_by_the_given_classes() -> None:
    # given the probability columns listed as [malignant, benign]
    reversed_proba = PROBA_BINARY[:, ::-1]

    # when
    value = score("roc_auc", Y_TRUE_BINARY, Y_PRED_BINARY, reversed_proba, list(reversed(CLASSES_BINARY)))

    # then the score is the AUC of the second listed class, benign
    assert value == pytest.approx(skm.roc_auc_score(Y_TRUE_BINARY == "benign", 1 - P_MALIGNANT))


def test_roc_auc_without_probabilities_is_an_error() -> None:
    # given predictions only

    # when / then
    with pytest.raises(ValueError, match="roc_auc needs class probabilities"):
        score("roc_auc", Y_TRUE_BINARY, Y_PRED_BINARY)


def test_all_scores_covers_the_task_metrics_only() -> None:
    # given

    # when
    classification = all_scores(Task.CLASSIFICATION, Y_TRUE_BINARY, Y_PRED_BINARY, PROBA_BINARY, CLASSES_BINARY)
    regression = all_scores(Task.REGRESSION, Y_TRUE_REG, Y_PRED_REG)

    # then
    assert set(classification) == {m for m, (task, _) in METRICS.items() if task is Task.CLASSIFICATION}
    assert set(regression) == {m for m, (task, _) in METRICS.items() if task is Task.REGRESSION}
    assert classification["f1"] == pytest.approx(skm.f1_score(Y_TRUE_BINARY, Y_PRED_BINARY, average="macro"))


@pytest.mark.parametrize("metric", [m for m in METRICS if higher_is_better(m)])
def test_higher_is_better_metrics(metric: str) -> None:
    # given a threshold / champion score of 0.8

    # when / then: reaching it is enough, falling below it is not
    assert meets(metric, 0.8, 0.8)
    assert meets(metric, 0.85, 0.8)
    assert not meets(metric, 0.79, 0.8)
    assert at_least_as_good(metric, 0.80, 0.80)
    assert not at_least_as_good(metric, 0.79, 0.80)
    assert at_least_as_good(metric, 0.79, 0.80, tolerance=0.02)
    assert not at_least_as_good(metric, 0.77, 0.80, tolerance=0.02)


@pytest.mark.parametrize("metric", [m for m in METRICS if not higher_is_better(m)])
def test_lower_is_better_metrics(metric: str) -> None:
    # given an error threshold / champion error of 2.0

    # when / then: a smaller error is better
    assert meets(metric, 2.0, 2.0)
    assert meets(metric, 1.5, 2.0)
    assert not meets(metric, 2.1, 2.0)
    assert at_least_as_good(metric, 1.9, 2.0)
    assert not at_least_as_good(metric, 2.1, 2.0)
    assert at_least_as_good(metric, 2.1, 2.0, tolerance=0.2)
    assert not at_least_as_good(metric, 2.3, 2.0, tolerance=0.2)


def test_f1_positive_refuses_a_target_with_more_than_two_classes() -> None:
    # given three classes

    # when / then the message points to the macro f1
    with pytest.raises(ValueError, match="use f1"):
        score("f1_positive", Y_TRUE_MULTI, Y_PRED_MULTI, PROBA_MULTI, [0, 1, 2])


def _scikit_learn_scores(task: Task, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None,
                         classes: list[object] | None) -> dict[str, float]:
    """What metrics.all_scores answered when it called scikit-learn (the reference the numpy metrics replace). An
    undefined roc_auc (a class without rows) is left out, as all_scores documents, where scikit-learn 1.9 warns and
    answers nan."""
    calls: dict[str, Callable[[], float]]
    if task is Task.REGRESSION:
        calls = {"rmse": lambda: np.sqrt(skm.mean_squared_error(y_true, y_pred)),
                 "mae": lambda: skm.mean_absolute_error(y_true, y_pred), "r2": lambda: skm.r2_score(y_true, y_pred)}
    else:
        assert proba is not None and classes is not None
        calls = {"accuracy": lambda: skm.accuracy_score(y_true, y_pred),
                 "f1": lambda: skm.f1_score(y_true, y_pred, average="macro"),
                 "precision": lambda: skm.precision_score(y_true, y_pred, average="macro", zero_division=0),
                 "roc_auc": lambda: (skm.roc_auc_score(y_true == classes[1], proba[:, 1]) if len(classes) == 2 else
                                     skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro",
                                                       labels=classes))}
    scores = {}
    for name, call in calls.items():
        try:
            value = float(call())
        except ValueError:
            continue
        if not (name == "roc_auc" and np.isnan(value)):
            scores[name] = value
    return scores


def _corpus() -> list[tuple[Task, np.ndarray, np.ndarray, np.ndarray | None, list[object] | None]]:
    rng = np.random.default_rng(7)
    cases: list[tuple[Task, np.ndarray, np.ndarray, np.ndarray | None, list[object] | None]] = []
    for rows in (1, 2, 3, 17, 250, 4000):
        for labels in (["no", "yes"], [0, 1], [0, 1, 2], ["a", "b", "c", "d"]):
            k = len(labels)
            raw = rng.dirichlet(np.ones(k), size=rows)
            proba = raw.round(1) / raw.round(1).sum(axis=1, keepdims=True) if rows % 2 else raw  # ties
            proba = np.nan_to_num(proba, nan=1.0 / k)
            truth_index = rng.integers(0, k - (rows == 17), size=rows)  # 17 rows: a class never labeled
            classes = list(labels)
            y_true = np.array([labels[i] for i in truth_index])
            y_pred = np.array([labels[i] for i in proba.argmax(axis=1)])
            cases.append((Task.CLASSIFICATION, y_true, y_pred, proba, classes))
        y = rng.normal(size=rows) * 10
        cases.append((Task.REGRESSION, y, y + rng.normal(size=rows), None, None))
        cases.append((Task.REGRESSION, np.full(rows, 3.0), np.full(rows, 3.0), None, None))  # constant, perfect
        cases.append((Task.REGRESSION, np.full(rows, 3.0), np.full(rows, 2.5), None, None))  # constant, off
    return cases


@pytest.mark.parametrize("case", _corpus())
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_the_numpy_metrics_equal_scikit_learn_on_a_corpus(
        case: tuple[Task, np.ndarray, np.ndarray, np.ndarray | None, list[object] | None]) -> None:
    # given labels, predictions and probabilities (ties, absent classes, one row, constant targets)
    task, y_true, y_pred, proba, classes = case
    reference = _scikit_learn_scores(task, y_true, y_pred, proba, classes)

    # when
    ours = all_scores(task, y_true, y_pred, proba, classes)

    # then the same metrics are defined, with the same values
    scikit_learn_metrics = {"accuracy", "f1", "precision", "roc_auc", "rmse", "mae", "r2"}
    compared = {name: value for name, value in ours.items() if name in scikit_learn_metrics}
    assert compared.keys() == reference.keys()
    for name, value in reference.items():
        assert compared[name] == pytest.approx(value, abs=1e-9, nan_ok=True), name


def test_the_metric_registry_is_what_the_template_config_and_init_offer(template: dict[str, Any]) -> None:
    # given the registry, and template.yaml's QualityMetric parameter (a deploy refuses any other value)
    allowed = template["Parameters"]["QualityMetric"]["AllowedValues"]

    # then the template offers exactly the registry's metrics, the config's view is the registry's, and every
    # metric scores its task and has an alarm default init can write
    assert allowed == list(REGISTRY)
    assert {name: (m.task, m.higher_is_better) for name, m in REGISTRY.items()} == METRICS
    for metric in REGISTRY.values():
        assert metric.default_max_drop > 0
        truth, predicted = (Y_TRUE_BINARY, Y_PRED_BINARY) if metric.task is Task.CLASSIFICATION else (
            Y_TRUE_REG, Y_PRED_REG)
        proba = PROBA_BINARY if metric.needs_probabilities else None
        assert np.isfinite(score(metric.name, truth, predicted, proba, CLASSES_BINARY))
