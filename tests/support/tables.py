"""Small fitted models shared by tests that sweep request values through the served pipeline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from loopline_runtime.feature_schema import FeatureSchema, FeatureType, Task
from loopline_runtime.modeling import build_pipeline


def every_feature_type_pipeline(seed: int) -> tuple[FeatureSchema, Any]:
    """A classifier Pipeline fitted on 40 seeded rows with one feature of each type (numeric, categorical,
    boolean, date), all values as text the way an upload delivers them; and its schema."""
    schema = FeatureSchema(target="y", task=Task.CLASSIFICATION, features={
        "n": FeatureType.NUMERIC, "c": FeatureType.CATEGORICAL, "b": FeatureType.BOOLEAN, "d": FeatureType.DATE})
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"n": rng.normal(size=40).astype(str), "c": rng.choice(["a", "b"], 40),
                      "b": rng.choice(["yes", "no"], 40), "d": [f"2024-01-{i % 28 + 1:02d}" for i in range(40)]},
                     dtype=object)
    y = pd.Series(rng.choice(["p", "q"], 40))
    return schema, build_pipeline(schema, LogisticRegression()).fit(X, y)
