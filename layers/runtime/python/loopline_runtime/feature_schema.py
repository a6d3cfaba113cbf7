"""The feature contract shared by training and serving, with no dependency beyond the standard library.

The predict function imports this from its slim layer (onnxruntime + numpy, no pandas or pydantic), so the
types a model is trained and served with live here; `config` and `schema` re-export them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class FeatureType(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    DATE = "date"


TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})
# a date feature becomes these numeric model inputs, named <feature>__<part>
DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear")
# what a missing categorical value is encoded as (filled before the encoder: strings cannot be NaN in ONNX)
MISSING_CATEGORY = "__missing__"
# what a category too rare in training (or never seen) is encoded as
INFREQUENT_CATEGORY = "__infrequent__"


@dataclass(frozen=True)
class FeatureSchema:
    """What a model is trained on and served with."""

    target: str
    task: Task
    features: dict[str, FeatureType]
    ignored: list[str] = field(default_factory=list)
    # categorical levels seen in training (documentation and OpenAPI enums; unseen levels are still accepted)
    levels: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["task"] = self.task.value
        data["features"] = {name: kind.value for name, kind in self.features.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSchema:
        return cls(
            target=data["target"],
            task=Task(data["task"]),
            features={name: FeatureType(kind) for name, kind in data["features"].items()},
            ignored=list(data.get("ignored", [])),
            levels={name: list(values) for name, values in data.get("levels", {}).items()},
        )


def model_input_columns(features: Mapping[str, FeatureType]) -> tuple[list[str], list[str]]:
    """(numeric, categorical) model-input columns: numeric, boolean and date parts are numbers after coercion."""
    numeric: list[str] = []
    categorical: list[str] = []
    for name, kind in features.items():
        if kind is FeatureType.DATE:
            numeric.extend(f"{name}__{part}" for part in DATE_PARTS)
        elif kind is FeatureType.CATEGORICAL:
            categorical.append(name)
        else:
            numeric.append(name)
    return numeric, categorical
