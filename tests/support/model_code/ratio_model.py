"""A data scientist's model code (the README's worked example): a ratio feature through a small custom transformer
with its skl2onnx converter, next to the usual numeric preprocessing, and a tuned estimator."""

from __future__ import annotations

import numpy as np
from skl2onnx import update_registered_converter
from skl2onnx.algebra.onnx_ops import OnnxDiv, OnnxGather, OnnxMax
from skl2onnx.common.data_types import FloatTensorType
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted


class Ratio(TransformerMixin, BaseEstimator):
    """The first column divided by the second (a denominator below `floor` counts as `floor`), in float32 like
    the compiled model."""

    def __init__(self, floor: float = 1e-3) -> None:
        self.floor = floor

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        check_is_fitted(self)
        X = np.asarray(X, dtype=np.float32)
        return (X[:, :1] / np.maximum(X[:, 1:2], np.float32(self.floor))).astype(np.float64)


def _ratio_shape(operator):
    operator.outputs[0].type = FloatTensorType([operator.inputs[0].get_first_dimension(), 1])


def _ratio_converter(scope, operator, container):
    opv = container.target_opset
    X = operator.inputs[0]
    numerator = OnnxGather(X, np.array([0], dtype=np.int64), axis=1, op_version=opv)
    denominator = OnnxGather(X, np.array([1], dtype=np.int64), axis=1, op_version=opv)
    floored = OnnxMax(denominator, np.array([operator.raw_operator.floor], dtype=np.float32), op_version=opv)
    OnnxDiv(numerator, floored, op_version=opv, output_names=operator.outputs[:1]).add_to(scope, container)


update_registered_converter(Ratio, "LooplineExampleRatio", _ratio_shape, _ratio_converter)


def build(schema):
    """Area per radius as an extra feature, every numeric column imputed and scaled, a logistic regression."""
    return Pipeline([
        ("columns", ColumnTransformer([
            ("area_per_radius", Pipeline([("impute", SimpleImputer(strategy="median")), ("ratio", Ratio()),
                                          ("scale", StandardScaler())]), ["worst area", "mean radius"]),
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
             schema.numeric),
        ])),
        ("model", LogisticRegression(C=1.0, max_iter=2000, random_state=0)),
    ])
