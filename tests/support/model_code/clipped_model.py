"""Model code with a step skl2onnx cannot convert (no converter registered for Clipped): served in the
scikit-learn form when the config says `serving: scikit-learn`."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted


class Clipped(TransformerMixin, BaseEstimator):
    """Clips every column to its 1st..99th training percentile."""

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=np.float64)
        self.low_, self.high_ = np.nanpercentile(X, 1, axis=0), np.nanpercentile(X, 99, axis=0)
        return self

    def transform(self, X):
        check_is_fitted(self)
        return np.clip(np.asarray(X, dtype=np.float64), self.low_, self.high_)


def build(schema):
    return Pipeline([
        ("impute", SimpleImputer(strategy="median")),
        ("clip", Clipped()),
        ("scale", StandardScaler()),
        ("model", LogisticRegression(max_iter=2000, random_state=0)),
    ])
