"""Request validation and coercion for the compiled model, in numpy only (the predict function's slim layer has
no pandas or scikit-learn).

Entry point: `records_to_inputs(records, model, max_records=...)` checks a prediction request's records against
the champion's schema (raising InvalidRequest naming each problem) and returns the ONNX model's feeds.
`columns_to_inputs` does the same coercion without the request checks, for labeled frames (the gate, monitoring).

The coercion mirrors `TabularCoercer` + `schema.coerce_column` (the scikit-learn side) value for value:
numbers and booleans become float32, dates their numeric parts, categories strings with gaps filled and rare or
unseen categories grouped. tests/unit/test_parity.py holds the two sides equal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from dateutil import parser as date_parser

from loopline_runtime.errors import InvalidRequest
from loopline_runtime.feature_schema import (
    DATE_PARTS,
    FALSE_WORDS,
    INFREQUENT_CATEGORY,
    MISSING_CATEGORY,
    TRUE_WORDS,
    FeatureSchema,
    FeatureType,
)
from loopline_runtime.request_body import PREVIEW_CHARS, preview

MAX_PROBLEMS = 10
_NAMES_SHOWN = 5
FLOAT32_MAX = float(np.finfo(np.float32).max)
# a date needs digits and a separator (as `schema._looks_like_date`): "12" or "5" are not dates
_DATE_SHAPE = re.compile(r"\d{1,4}[-/.]\d{1,2}")
# pandas datetimes (nanoseconds) cover 1677-09-21 .. 2262-04-11; outside that the training side reads NaT
_DATE_RANGE = (datetime(1677, 9, 22, tzinfo=UTC), datetime(2262, 4, 11, tzinfo=UTC))


@dataclass(frozen=True)
class ModelInput:
    """One input of the compiled model: the model-input column it carries and its ONNX name and element type."""

    column: str
    name: str
    kind: str  # "float" or "string"


@dataclass(frozen=True)
class InputSpec:
    """What the compiled model consumes: the schema's features, their ONNX inputs and the kept categories."""

    schema: FeatureSchema
    inputs: tuple[ModelInput, ...]
    levels: Mapping[str, Sequence[str]]


def records_to_inputs(records: Any, spec: InputSpec, *, max_records: int) -> dict[str, np.ndarray]:
    """Validate a request's records against the schema and coerce them to the compiled model's feeds."""
    check_records(records, spec.schema, max_records=max_records, value_check=value_problem)
    columns = {name: [record[name] for record in records] for name in spec.schema.features}
    return columns_to_inputs(columns, spec)


ValueCheck = Callable[[Any, FeatureType], "str | None"]


def check_records(records: Any, schema: FeatureSchema, *, max_records: int, value_check: ValueCheck) -> None:
    """The request's shape, whichever model serves it: a non-empty list of at most `max_records` objects, each
    with exactly the schema's fields (ignored columns and the target tolerated), each value passing
    `value_check`. Raises InvalidRequest naming up to MAX_PROBLEMS problems, echoed names cut to a preview."""
    if not isinstance(records, list):
        raise InvalidRequest('"records" must be a list of objects, one per row to predict')
    if not records:
        raise InvalidRequest('"records" is empty; send at least one record')
    if len(records) > max_records:
        raise InvalidRequest(f'"records" has {len(records)} items; send at most {max_records} per request')
    expected = schema.features.keys()
    accepted = expected | set(schema.ignored) | {schema.target}
    problems: list[str] = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            problems.append(f"records[{index}] must be an object of feature values, got {type(record).__name__}")
            continue
        missing = sorted(expected - record.keys())
        extra = sorted(record.keys() - accepted)
        if missing:
            problems.append(f"records[{index}] is missing field(s) {_names(missing)}")
        if extra:
            problems.append(f"records[{index}] has unknown field(s) {_names([str(name) for name in extra])}")
        for name in sorted(expected & record.keys()):
            problem = value_check(record[name], schema.features[name])
            if problem:
                problems.append(f"records[{index}].{name} {problem}")
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise InvalidRequest("; ".join(problems[:MAX_PROBLEMS]))


def columns_to_inputs(columns: Mapping[str, Sequence[Any]], spec: InputSpec) -> dict[str, np.ndarray]:
    """Raw values per feature -> the compiled model's feeds; unreadable values become missing (imputed)."""
    model_columns: dict[str, np.ndarray] = {}
    for name, kind in spec.schema.features.items():
        values = columns[name]
        if kind is FeatureType.NUMERIC:
            model_columns[name] = np.array([_number(v) for v in values], dtype=np.float64)
        elif kind is FeatureType.BOOLEAN:
            model_columns[name] = np.array([_boolean(v) for v in values], dtype=np.float64)
        elif kind is FeatureType.DATE:
            parts = np.array([_date_parts(v) for v in values], dtype=np.float64).reshape(len(values), len(DATE_PARTS))
            for position, part in enumerate(DATE_PARTS):
                model_columns[f"{name}__{part}"] = parts[:, position]
        else:
            model_columns[name] = _categories(values, spec.levels.get(name))
    feeds: dict[str, np.ndarray] = {}
    for model_input in spec.inputs:
        column = model_columns[model_input.column]
        column = as_float32(column) if model_input.kind == "float" else column
        feeds[model_input.name] = column.reshape(-1, 1)
    return feeds


def as_float32(values: np.ndarray) -> np.ndarray:
    """Numbers as the model consumes them: float32, clipped to its range (NaN stays NaN). The training side
    rounds the same way (TabularCoercer), so trees are fitted on exactly the values the compiled model sees."""
    return np.clip(np.asarray(values, dtype=np.float64), -FLOAT32_MAX, FLOAT32_MAX).astype(np.float32)


def value_problem(value: Any, kind: FeatureType) -> str | None:
    """Why a JSON value cannot be a `kind` feature, or None (null is always allowed: it is imputed).

    A present value passes only if the coercion below reads it: anything it would turn into a missing value
    ("1_000", digits of other scripts, "12abc") is refused rather than silently imputed. Echoed values are cut
    to a preview.
    """
    if value is None:
        return None
    if isinstance(value, dict | list):
        return f"must be a {kind.value} value, not a JSON {'object' if isinstance(value, dict) else 'array'}"
    if kind is FeatureType.NUMERIC:
        if isinstance(value, bool):
            return "must be a number, not a boolean"
        if isinstance(value, int | float) and not math.isfinite(float(value)):
            return "must be a finite number (within about ±1.8e308)"
        if math.isnan(_number(value)):
            return f"must be a number, got {preview(value)}"
        return None
    if kind is FeatureType.BOOLEAN:
        return None if not math.isnan(_boolean(value)) else f"must be true or false, got {preview(value)}"
    if kind is FeatureType.DATE:
        return None if _parse_date(value) is not None else f"must be a date such as 2024-01-31, got {preview(value)}"
    return None


def _names(names: list[str]) -> str:
    shown = ", ".join(
        name if len(name) <= PREVIEW_CHARS else f"{name[:PREVIEW_CHARS]}... ({len(name):,} characters)"
        for name in names[:_NAMES_SHOWN]
    )
    return shown if len(names) <= _NAMES_SHOWN else f"{shown} and {len(names) - _NAMES_SHOWN} more"


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan if value is None else float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
    else:
        text = str(value).strip()
        # Python's float() reads 1_000 and digits of other scripts; the training side (pandas) does not
        if "_" in text or not text.isascii():
            return math.nan
        try:
            number = float(text)
        except ValueError:
            return math.nan
    return number if math.isfinite(number) else math.nan


def _boolean(value: Any) -> float:
    """True/False-like value -> 1.0/0.0, missing or unreadable -> NaN (as schema._as_bool)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value) if value in (0, 1) else math.nan
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return 1.0
    if word in FALSE_WORDS:
        return 0.0
    return math.nan


def _parse_date(value: Any) -> datetime | None:
    """A date as pandas.to_datetime(format="mixed", utc=True) reads it (naive = UTC), or None."""
    if value is None or isinstance(value, bool | int | float):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            if not _DATE_SHAPE.search(text):
                return None
            try:
                parsed = date_parser.parse(text)
            except (ValueError, OverflowError):
                return None
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return parsed if _DATE_RANGE[0] <= parsed <= _DATE_RANGE[1] else None


def _date_parts(value: Any) -> tuple[float, ...]:
    parsed = _parse_date(value)
    if parsed is None:
        return (math.nan,) * len(DATE_PARTS)
    return (float(parsed.year), float(parsed.month), float(parsed.day), float(parsed.weekday()),
            float(parsed.timetuple().tm_yday))


def _categories(values: Sequence[Any], levels: Sequence[str] | None) -> np.ndarray:
    texts = [MISSING_CATEGORY if _is_missing(v) else str(v) for v in values]
    if levels is not None:
        kept = set(levels)
        texts = [text if text in kept else INFREQUENT_CATEGORY for text in texts]
    return np.array(texts, dtype=object)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
