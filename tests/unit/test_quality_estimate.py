"""Label-free quality estimation: on calibrated probabilities it recovers the true quality, and it says when not to
trust it (poor calibration measured on the holdout, few rows)."""

from __future__ import annotations

import numpy as np
import pytest

from loopline_runtime.metrics import score
from loopline_runtime.quality_estimate import (
    MAX_TRUSTED_CALIBRATION_ERROR,
    MIN_ESTIMATE_ROWS,
    estimate_quality,
    fit_calibration,
)

CLASSES = ["no", "yes"]


def _calibrated_batch(rows: int, seed: int, *, positives: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities that are the true class frequencies: each row's label is drawn from its own probability."""
    rng = np.random.default_rng(seed)
    p_yes = rng.beta(1, 1 / positives - 1, rows)
    labels = np.where(rng.random(rows) < p_yes, "yes", "no")
    return np.column_stack([1 - p_yes, p_yes]), labels


def _true_scores(proba: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    predicted = np.asarray(CLASSES)[proba.argmax(axis=1)]
    return {name: score(name, labels, predicted, proba, CLASSES)
            for name in ("accuracy", "f1", "f1_positive", "roc_auc", "average_precision")}


def test_the_estimate_recovers_the_true_quality_of_calibrated_predictions() -> None:
    # given a calibration fitted on a holdout of calibrated probabilities
    holdout_proba, holdout_labels = _calibrated_batch(2000, seed=1)
    calibration = fit_calibration(holdout_proba, holdout_labels, CLASSES)

    # when a new batch (whose labels the estimate never sees) is estimated
    batch_proba, batch_labels = _calibrated_batch(5000, seed=2)
    estimate = estimate_quality(batch_proba, calibration)

    # then every metric is within a few points of the one measured with the labels, and the estimate is trusted
    measured = _true_scores(batch_proba, batch_labels)
    assert estimate.trusted, estimate.reasons
    for name, value in measured.items():
        assert estimate.metrics[name] == pytest.approx(value, abs=0.03), name


def test_the_estimate_follows_a_covariate_shift_towards_harder_rows() -> None:
    # given a calibration fitted on a holdout with rows of every certainty
    rng = np.random.default_rng(3)
    p_holdout = rng.uniform(0, 1, 4000)
    holdout_proba = np.column_stack([1 - p_holdout, p_holdout])
    calibration = fit_calibration(holdout_proba, np.where(rng.random(4000) < p_holdout, "yes", "no"), CLASSES)
    # and a batch whose rows are less certain (probabilities between 0.3 and 0.7)
    p_yes = rng.uniform(0.3, 0.7, 3000)
    labels = np.where(rng.random(3000) < p_yes, "yes", "no")
    easy = estimate_quality(holdout_proba, calibration)

    # when
    hard = estimate_quality(np.column_stack([1 - p_yes, p_yes]), calibration)

    # then the estimated accuracy falls as the measured one does
    measured = _true_scores(np.column_stack([1 - p_yes, p_yes]), labels)["accuracy"]
    assert hard.metrics["accuracy"] < easy.metrics["accuracy"] - 0.1
    assert hard.metrics["accuracy"] == pytest.approx(measured, abs=0.04)


def test_poorly_calibrated_probabilities_are_flagged_as_untrusted() -> None:
    # given a model whose probabilities are not even in the order of the class frequencies (no monotone curve can
    # calibrate them): it says 0.1, 0.5, 0.9 where the class is seen 50%, 95%, 5% of the time
    rng = np.random.default_rng(4)
    said = rng.choice([0.1, 0.5, 0.9], 2000)
    p_yes = said
    labels = np.where(rng.random(2000) < np.select([said < 0.3, said < 0.7], [0.5, 0.95], 0.05), "yes", "no")

    # when its calibration is fitted and a batch estimated
    calibration = fit_calibration(np.column_stack([1 - p_yes, p_yes]), labels, CLASSES)
    estimate = estimate_quality(np.column_stack([1 - p_yes, p_yes]), calibration)

    # then the out-of-fold calibration error is too high and the estimate says so
    assert calibration["calibration_error"] > MAX_TRUSTED_CALIBRATION_ERROR
    assert not estimate.trusted
    assert any("poorly calibrated" in reason for reason in estimate.reasons)


def test_a_well_calibrated_model_passes_the_calibration_check() -> None:
    # given calibrated probabilities: the check that flags the model above does not flag this one
    proba, labels = _calibrated_batch(2000, seed=5)

    # when
    calibration = fit_calibration(proba, labels, CLASSES)

    # then
    assert calibration["calibration_error"] <= MAX_TRUSTED_CALIBRATION_ERROR


def test_too_few_rows_are_flagged_as_untrusted() -> None:
    # given a good calibration and a small batch
    holdout_proba, holdout_labels = _calibrated_batch(2000, seed=1)
    calibration = fit_calibration(holdout_proba, holdout_labels, CLASSES)
    batch_proba, _ = _calibrated_batch(MIN_ESTIMATE_ROWS - 1, seed=6)

    # when
    estimate = estimate_quality(batch_proba, calibration)

    # then
    assert not estimate.trusted
    assert any("fewer than" in reason for reason in estimate.reasons)


def test_the_calibration_is_plain_numbers_that_survive_json() -> None:
    # given
    import json
    proba, labels = _calibrated_batch(500, seed=7)
    calibration = fit_calibration(proba, labels, CLASSES)

    # when it goes through the manifest's JSON
    restored = json.loads(json.dumps(calibration))

    # then it estimates exactly as before
    assert estimate_quality(proba, restored) == estimate_quality(proba, calibration)


def test_isotonic_calibration_maps_overconfident_probabilities_back_to_frequencies() -> None:
    # given a model that says 0.9 where the class is seen 60% of the time, and 0.1 where it is seen 40%
    rng = np.random.default_rng(8)
    said = rng.choice([0.1, 0.9], 4000)
    labels = np.where(rng.random(4000) < np.where(said > 0.5, 0.6, 0.4), "yes", "no")
    proba = np.column_stack([1 - said, said])

    # when
    calibration = fit_calibration(proba, labels, CLASSES)
    estimate = estimate_quality(proba, calibration)

    # then the raw probabilities were poorly calibrated, and the estimated accuracy is the true 0.6, not 0.9
    assert calibration["raw_calibration_error"] > 0.2
    assert estimate.metrics["accuracy"] == pytest.approx(0.6, abs=0.03)


def test_multiclass_probabilities_are_estimated_per_class() -> None:
    # given three classes with calibrated probabilities
    rng = np.random.default_rng(9)
    proba = rng.dirichlet([0.6, 0.6, 0.6], 4000)
    labels = np.array([rng.choice(3, p=row) for row in proba])
    calibration = fit_calibration(proba[:2000], labels[:2000], [0, 1, 2])

    # when
    estimate = estimate_quality(proba[2000:], calibration)

    # then
    predicted = proba[2000:].argmax(axis=1)
    assert estimate.metrics["accuracy"] == pytest.approx(score("accuracy", labels[2000:], predicted), abs=0.03)
    assert estimate.metrics["f1"] == pytest.approx(score("f1", labels[2000:], predicted), abs=0.03)
    assert "f1_positive" not in estimate.metrics


def test_probabilities_of_the_wrong_shape_are_refused() -> None:
    # given a calibration of two classes
    proba, labels = _calibrated_batch(300, seed=10)
    calibration = fit_calibration(proba, labels, CLASSES)

    # when / then
    with pytest.raises(ValueError, match="rows x 2 classes"):
        estimate_quality(np.ones((5, 3)) / 3, calibration)
