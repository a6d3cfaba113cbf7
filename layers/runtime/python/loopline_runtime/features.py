"""Turning a raw tabular frame into model inputs, inside the persisted scikit-learn Pipeline.

Everything here is pickled with the model, so keep class names and attributes stable.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from loopline_runtime.config import FeatureType
from loopline_runtime.schema import coerce_column

DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear")
# column-name part -> pandas accessor (pandas 3 deprecates the `dayofweek`/`dayofyear` spellings)
_DATE_ACCESSORS = {"dayofweek": "day_of_week", "dayofyear": "day_of_year"}


class TabularCoercer(TransformerMixin, BaseEstimator):
    """Reads each configured column as its declared type; expands dates into numeric parts.

    Unreadable values become missing and are imputed downstream, so serving never fails on a stray cell.
    """

    def __init__(self, features: dict[str, str] | None = None) -> None:
        self.features = features

    def fit(self, X: pd.DataFrame, y: Any = None) -> TabularCoercer:
        self.features_ = {name: FeatureType(kind) for name, kind in (self.features or {}).items()}
        self.feature_names_out_ = self._names_out()
        return self

    def _names_out(self) -> list[str]:
        names: list[str] = []
        for name, kind in self.features_.items():
            if kind is FeatureType.DATE:
                names.extend(f"{name}__{part}" for part in DATE_PARTS)
            else:
                names.append(name)
        return names

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        columns: dict[str, pd.Series] = {}
        for name, kind in self.features_.items():
            raw = X[name] if name in X.columns else pd.Series([np.nan] * len(X), index=X.index)
            values = coerce_column(raw, kind)
            if kind is FeatureType.DATE:
                for part in DATE_PARTS:
                    columns[f"{name}__{part}"] = getattr(values.dt, _DATE_ACCESSORS.get(part, part)).astype(float)
            else:
                columns[name] = values
        return pd.DataFrame(columns, index=X.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_out_, dtype=object)


def numeric_columns(features: dict[str, FeatureType]) -> list[str]:
    """Model-input columns that are numbers after coercion (numeric, boolean and date parts)."""
    names: list[str] = []
    for name, kind in features.items():
        if kind is FeatureType.DATE:
            names.extend(f"{name}__{part}" for part in DATE_PARTS)
        elif kind in (FeatureType.NUMERIC, FeatureType.BOOLEAN):
            names.append(name)
    return names


def categorical_columns(features: dict[str, FeatureType]) -> list[str]:
    return [name for name, kind in features.items() if kind is FeatureType.CATEGORICAL]
