"""Predictions from a fitted pipeline, with numpy only: serving imports this, not the training code."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def predict_with_probabilities(pipeline: Any, X: pd.DataFrame) -> tuple[Any, np.ndarray | None, list[Any] | None]:
    """(predictions, class probabilities, classes) from one pass through the pipeline.

    A classifier's prediction is its most probable class, as in its predict(); a regressor has no probabilities.
    """
    if not hasattr(pipeline, "predict_proba"):
        return pipeline.predict(X), None, None
    proba = pipeline.predict_proba(X)
    return np.asarray(pipeline.classes_)[np.argmax(proba, axis=1)], proba, list(pipeline.classes_)
