"""Turning a raw tabular frame into model inputs, inside the persisted scikit-learn Pipeline.

Everything here is pickled with the model, so keep class names and attributes stable. The same coercion is
done in numpy by `model_inputs` for the compiled (ONNX) model: change both together (tests/unit/test_parity.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer
from sklearn.utils.validation import check_is_fitted

from loopline_runtime.feature_schema import (
    DATE_PARTS,
    INFREQUENT_CATEGORY,
    MISSING_CATEGORY,
    FeatureType,
    model_input_columns,
)
from loopline_runtime.model_inputs import as_float32
from loopline_runtime.schema import coerce_column

__all__ = ["DATE_PARTS", "Float32MedianImputer", "TabularCoercer", "categorical_columns", "frequent_levels",
           "numeric_columns"]

# column-name part -> pandas accessor (pandas 3 deprecates the `dayofweek`/`dayofyear` spellings)
_DATE_ACCESSORS = {"dayofweek": "day_of_week", "dayofyear": "day_of_year"}
# A category seen fewer times than this in training is grouped with the unseen ones; at most MAX_CATEGORIES
# columns per feature (the group included). Done here rather than by OneHotEncoder's infrequent categories,
# which skl2onnx cannot convert.
MIN_CATEGORY_COUNT = 5
MAX_CATEGORIES = 50


class TabularCoercer(TransformerMixin, BaseEstimator):
    """Reads each configured column as its declared type; expands dates into numeric parts; fills missing
    categories with a marker and groups rare or unseen ones.

    Unreadable values become missing and are imputed downstream, so serving never fails on a stray cell.
    """

    def __init__(self, features: dict[str, str] | None = None) -> None:
        self.features = features

    def fit(self, X: pd.DataFrame, y: Any = None) -> TabularCoercer:
        self.features_ = {name: FeatureType(kind) for name, kind in (self.features or {}).items()}
        self.feature_names_out_ = self._names_out()
        self.levels_ = {
            name: frequent_levels(self._categories(X, name))
            for name, kind in self.features_.items() if kind is FeatureType.CATEGORICAL
        }
        return self

    def _names_out(self) -> list[str]:
        names: list[str] = []
        for name, kind in self.features_.items():
            if kind is FeatureType.DATE:
                names.extend(f"{name}__{part}" for part in DATE_PARTS)
            else:
                names.append(name)
        return names

    def _categories(self, X: pd.DataFrame, name: str) -> pd.Series:
        raw = X[name] if name in X.columns else pd.Series([None] * len(X), index=X.index, dtype=object)
        return coerce_column(raw, FeatureType.CATEGORICAL).fillna(MISSING_CATEGORY)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self)
        columns: dict[str, pd.Series] = {}
        levels = getattr(self, "levels_", {})
        for name, kind in self.features_.items():
            if kind is FeatureType.CATEGORICAL:
                values = self._categories(X, name)
                if name in levels:
                    kept = set(levels[name])
                    values = values.where(values.isin(kept), INFREQUENT_CATEGORY)
                columns[name] = values.astype(object)
                continue
            raw = X[name] if name in X.columns else pd.Series([np.nan] * len(X), index=X.index)
            values = coerce_column(raw, kind)
            if kind is FeatureType.DATE:
                for part in DATE_PARTS:
                    columns[f"{name}__{part}"] = getattr(values.dt, _DATE_ACCESSORS.get(part, part)).astype(float)
            else:
                # rounded to float32, what the compiled model consumes: trees are then fitted on exactly the
                # values they are served (a float64 threshold between a value and its float32 would split them)
                columns[name] = pd.Series(as_float32(values.to_numpy(dtype=float)).astype(float), index=X.index)
        return pd.DataFrame(columns, index=X.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_out_, dtype=object)


class Float32MedianImputer(SimpleImputer):
    """SimpleImputer whose fill values are float32 numbers, like every other model input.

    A median of an even count is the midpoint of two values, which is exactly where a tree puts its threshold
    between them; the compiled model can only hold it in float32, on one side of that threshold. Rounded here,
    scikit-learn and the compiled model fill (and split) alike. Converted to ONNX as SimpleImputer.
    """

    def fit(self, X: Any, y: Any = None) -> Float32MedianImputer:
        super().fit(X, y)
        self.statistics_ = as_float32(self.statistics_).astype(np.float64)  # type: ignore[has-type]
        return self


def frequent_levels(values: pd.Series) -> list[str]:
    """The categories kept as themselves: seen at least MIN_CATEGORY_COUNT times, the most frequent first, at
    most MAX_CATEGORIES - 1 of them when some are grouped (ties broken by name, so the choice is seeded by data)."""
    counts = values.value_counts()
    frequent = sorted((str(level) for level, count in counts.items() if count >= MIN_CATEGORY_COUNT),
                      key=lambda level: (-int(counts[level]), level))
    limit = MAX_CATEGORIES if len(frequent) == len(counts) else MAX_CATEGORIES - 1
    return frequent[:limit]


def numeric_columns(features: dict[str, FeatureType]) -> list[str]:
    """Model-input columns that are numbers after coercion (numeric, boolean and date parts)."""
    return model_input_columns(features)[0]


def categorical_columns(features: dict[str, FeatureType]) -> list[str]:
    return model_input_columns(features)[1]
