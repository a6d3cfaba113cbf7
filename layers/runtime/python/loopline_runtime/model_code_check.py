"""Proving a candidate's own code before it is searched (at training) or deployed (`loopline validate`): it builds,
fits on a sample of the data, fits the same way twice, is fast enough for the search budget, and its compiled form
agrees with it (unless the config chose to serve it with scikit-learn). The first problem is one InvalidModelCode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from loopline_runtime.compilation import compile_and_check
from loopline_runtime.config import ModelCandidate
from loopline_runtime.errors import InvalidModelCode
from loopline_runtime.feature_schema import FeatureSchema, Task
from loopline_runtime.model_code import ModelCode, fit_failure
from loopline_runtime.modeling import SEARCH_MAX_ROWS, build_code_pipeline
from loopline_runtime.prediction import predict_with_probabilities

# rows the code is proven on: enough to fit and to check parity, few enough to cost a second or two
CHECK_ROWS = 600
CHECK_HOLDOUT_FRACTION = 0.25


@dataclass(frozen=True)
class CodeProof:
    """What was checked, for `loopline validate` to print and the manifest to keep."""

    candidate: str
    rows: int
    fit_seconds: float
    estimated_fit_seconds: float  # one fit on the search's rows, scaled linearly from the sample
    serving: str
    compiled: dict[str, Any]

    def summary(self) -> str:
        parity = self.compiled.get("parity") or {}
        checked = (f"compiled to ONNX, parity on {parity.get('rows')} rows passed" if self.serving == "onnx"
                   else "served with scikit-learn (chosen in the config)")
        return (f"{self.candidate}: built, fitted on {self.rows} rows twice with the same result in "
                f"{self.fit_seconds:.2f} s (about {self.estimated_fit_seconds:.1f} s per fit on the search's rows); "
                f"{checked}")


def prove_model_code(
    code: ModelCode,
    candidate: ModelCandidate,
    schema: FeatureSchema,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    seed: int,
    time_budget_seconds: float,
    clock: Callable[[], float] = time.monotonic,
) -> CodeProof:
    """Check `code` on a seeded sample of (X, y); raise InvalidModelCode with the first problem."""
    X_sample, y_sample = _sample(X, y, schema.task, seed)
    X_fit, X_check, y_fit, _ = _split(X_sample, y_sample, schema.task, seed)
    start = clock()
    first = _fitted(code, schema, X_fit, y_fit)
    fit_seconds = clock() - start
    second = _fitted(code, schema, X_fit, y_fit)
    if not _same_predictions(first, second, X_check):
        raise InvalidModelCode(
            f"{code.reference}: two fits on the same rows predict differently; the search and the gate need a "
            "seeded model: set random_state on every step that has one (e.g. `random_state=42`)")
    search_rows = min(len(X), SEARCH_MAX_ROWS)
    estimated = fit_seconds * search_rows / max(1, len(X_fit))
    if estimated > time_budget_seconds:
        raise InvalidModelCode(
            f"{code.reference}: one fit took {fit_seconds:.2f} s on {len(X_fit)} rows, about {estimated:.0f} s on "
            f"the search's {search_rows} rows, more than training.time_budget_seconds ({time_budget_seconds:.0f} s); "
            "make the model cheaper (fewer estimators or iterations) or raise the budget (at most 780)")
    compilation = compile_and_check(first, schema, X_check)
    if candidate.serving == "onnx" and not compilation.servable:
        error = compilation.record.get("error")
        if error:
            raise InvalidModelCode(f"{code.reference}: {error}")
        parity = compilation.record.get("parity") or {}
        raise InvalidModelCode(
            f"{code.reference}: the compiled (ONNX) form disagrees with scikit-learn on {parity.get('rows')} rows "
            f"({_disagreement(parity)}); check the custom converter's output against the transformer's "
            "(float32 inputs), or choose the scikit-learn serving form (`serving: scikit-learn`)")
    return CodeProof(code.candidate, len(X_fit), fit_seconds, estimated, candidate.serving, compilation.record)


def _fitted(code: ModelCode, schema: FeatureSchema, X: pd.DataFrame, y: pd.Series) -> Any:
    pipeline = build_code_pipeline(schema, code.build(schema))
    try:
        pipeline.fit(X, y)
        predict_with_probabilities(pipeline, X.iloc[:5])
    except Exception as exc:
        raise fit_failure(code.reference, exc) from None
    return pipeline


def _same_predictions(first: Any, second: Any, X: pd.DataFrame) -> bool:
    one, two = predict_with_probabilities(first, X), predict_with_probabilities(second, X)
    if not np.array_equal(np.asarray(one[0]), np.asarray(two[0])):
        return False
    if one[1] is None or two[1] is None:
        return one[1] is None and two[1] is None
    return bool(np.allclose(one[1], two[1], rtol=0, atol=1e-9))


def _disagreement(parity: dict[str, Any]) -> str:
    if "label_mismatches" in parity:
        return (f"{parity['label_mismatches']} labels differ, probabilities by up to "
                f"{parity.get('max_probability_diff'):.3g}")
    return f"outputs differ by up to {parity.get('max_relative_diff', float('nan')):.3g} (relative)"


def _sample(X: pd.DataFrame, y: pd.Series, task: Task, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    if len(X) <= CHECK_ROWS:
        return X, y
    sample = pd.Series(range(len(X))).sample(n=CHECK_ROWS, random_state=seed).sort_values().to_numpy()
    return X.iloc[sample], y.iloc[sample]


def _split(X: pd.DataFrame, y: pd.Series, task: Task, seed: int) -> Any:
    stratify = y if task is Task.CLASSIFICATION and y.value_counts().min() >= 2 else None
    try:
        return train_test_split(X, y, test_size=CHECK_HOLDOUT_FRACTION, random_state=seed, stratify=stratify)
    except ValueError:
        return train_test_split(X, y, test_size=CHECK_HOLDOUT_FRACTION, random_state=seed)
