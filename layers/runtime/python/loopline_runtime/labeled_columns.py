"""A labeled batch held as plain columns, scored by the compiled model: what monitoring measures, with numpy and the
csv module alone (the monitor function runs on the serving layer). The gate scores its holdout DataFrame through
the same function (evaluation.score_model), so both read labels and features alike."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from loopline_runtime.column_drift import to_number
from loopline_runtime.compiled_model import CompiledModel
from loopline_runtime.feature_schema import FeatureSchema, Task
from loopline_runtime.metrics import all_scores
from loopline_runtime.model_inputs import columns_to_inputs

_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


def target_labels(values: Sequence[Any], task: Task) -> np.ndarray:
    """Labels as the user wrote them (values present): floats for regression (unreadable: NaN); for classes,
    integers when every label is a whole number, else the stripped text. As schema.coerce_target reads them."""
    if task is Task.REGRESSION:
        return np.array([to_number(value) for value in values], dtype=float)
    numbers = [int(value) if isinstance(value, str) and _INTEGER.fullmatch(value) else to_number(value)
               for value in values]
    if all(isinstance(n, int) or _whole(n) for n in numbers):
        return np.array([int(n) for n in numbers], dtype=np.int64)
    return np.array([str(value).strip() for value in values], dtype=object)


def score_columns(model: CompiledModel, columns: Mapping[str, Sequence[Any]], schema: FeatureSchema
                  ) -> tuple[dict[str, float], np.ndarray | None, int]:
    """Every metric of the task for the compiled model on the labeled rows of `columns` (the target named by
    `schema`; a feature the rows lack is missing, so imputed), the class probabilities it returned for them (None
    for a regressor) and how many rows were labeled."""
    target = columns.get(schema.target, [])
    labeled = [row for row, value in enumerate(target) if value is not None and value == value]  # NaN != NaN
    y = target_labels([target[row] for row in labeled], schema.task)
    features = {name: ([values[row] for row in labeled] if (values := columns.get(name)) is not None
                       else [None] * len(labeled))
                for name in model.schema.features}
    prediction = model.predict(columns_to_inputs(features, model.input_spec))
    scores = all_scores(model.schema.task, y, prediction.predictions, prediction.probabilities, prediction.classes)
    return scores, prediction.probabilities, len(labeled)


def _whole(number: float) -> bool:
    return bool(np.isfinite(number)) and float(number).is_integer()
