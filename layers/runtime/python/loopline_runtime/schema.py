"""The pipeline's data contract: which columns, of which types, predict which target.

`infer_schema` proposes one from a DataFrame (used by `loopline init` and when the config lists no features);
`validate_training_frame` checks an upload against it; `records_to_frame` checks prediction requests.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from loopline_runtime.config import PipelineConfig
from loopline_runtime.csv_delimiter import single_column_message
from loopline_runtime.errors import (
    InvalidRequest,
    MissingTarget,
    SchemaMismatch,
    SingleClass,
    TooFewRows,
    UnparseableCsv,
)
from loopline_runtime.feature_schema import FALSE_WORDS, TRUE_WORDS, FeatureSchema, FeatureType, Task
from loopline_runtime.model_inputs import MAX_PROBLEMS, check_records
from loopline_runtime.request_body import preview

__all__ = ["FALSE_WORDS", "TRUE_WORDS", "FeatureSchema", "FeatureType", "Task"]  # re-exported for callers
# an integer target with at most this many distinct values is read as class labels
MAX_CLASSES_FOR_INTEGER_TARGET = 20
DATE_PARSE_SHARE = 0.95


def read_csv(body: bytes, *, source: str = "upload", delimiter: str = ",") -> pd.DataFrame:
    """Parse an uploaded CSV (UTF-8, optional BOM) or raise UnparseableCsv saying what is wrong."""
    if not body.strip():
        raise UnparseableCsv(f"{source} is empty; upload a CSV with a header row and at least one data row")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnparseableCsv(f"{source} is not UTF-8 text (byte {exc.start}); save the file as UTF-8 CSV") from None
    if "\x00" in text:
        raise UnparseableCsv(f"{source} contains NUL bytes: it looks like a binary file, not a CSV")
    try:
        # index_col=False: pandas would otherwise turn the surplus leading values of an over-long first row into
        # an index (a RangeIndex when they count 1, 2, 3...) and shift every value one column to the left
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            df = pd.read_csv(io.StringIO(text), skipinitialspace=True, index_col=False, sep=delimiter)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnparseableCsv(f"{source} is not a parseable CSV: {first}") from None
    surplus_values = any(issubclass(w.category, pd.errors.ParserWarning) for w in caught)
    if surplus_values or not isinstance(df.index, pd.RangeIndex):
        raise UnparseableCsv(
            f"{source} has rows with more values than the header has column names; fix the rows or the header"
        )
    df.columns = [str(c).strip() for c in df.columns]
    unnamed = [c for c in df.columns if re.fullmatch(r"Unnamed: \d+", c)]
    # a first line of numbers is data, not column names (a header-less export)
    numeric = [c for c in df.columns if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", c)]
    if (unnamed and len(unnamed) == len(df.columns)) or len(numeric) == len(df.columns):
        raise UnparseableCsv(f"{source} has no header row; the first line must name the columns")
    # trailing commas make a nameless, empty last column: not a feature anyone could send at prediction time
    df = df.drop(columns=[c for c in unnamed if df[c].isna().all()])
    # from the header line itself: pandas renames a repeated `a` to `a.1`, which a real column may also be called
    header = [name.strip() for name in next(csv.reader(io.StringIO(text), delimiter=delimiter), [])]
    duplicated = sorted({name for name in header if name and header.count(name) > 1})
    if duplicated:
        names = ", ".join(duplicated)
        raise UnparseableCsv(f"{source} repeats column names ({names}); give every column a unique name")
    if len(df.columns) < 2:
        raise UnparseableCsv(single_column_message(source, str(df.columns[0]), text.split("\n", 1)[0], delimiter))
    return df


def _as_bool(value: Any) -> float:
    """True/False-like value -> 1.0/0.0, missing -> NaN, else ValueError."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
        return float(value)
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return 1.0
    if word in FALSE_WORDS:
        return 0.0
    raise ValueError(f"{value!r} is not a boolean")


def _looks_boolean(series: pd.Series) -> bool:
    values = series.dropna()
    if values.empty:
        return False
    if pd.api.types.is_bool_dtype(values):
        return True
    if pd.api.types.is_numeric_dtype(values):
        return False  # 0/1 numeric columns stay numeric: same model, simpler contract
    words = {str(v).strip().lower() for v in values.unique()}
    return len(words) <= 2 and words <= (TRUE_WORDS | FALSE_WORDS) and not words <= {"0", "1"}


def _looks_like_date(series: pd.Series) -> bool:
    values = series.dropna().astype(str)
    if values.empty or pd.api.types.is_numeric_dtype(series):
        return False
    sample = values.head(200)
    # a date needs digits and a separator; this keeps short codes like "A1" from parsing as dates
    if not sample.str.contains(r"\d{1,4}[-/.]\d{1,2}", regex=True).mean() >= DATE_PARSE_SHARE:
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= DATE_PARSE_SHARE)


def _looks_like_id(name: str, series: pd.Series) -> bool:
    values = series.dropna()
    if len(values) < 20 or values.nunique() < 0.98 * len(values):
        return False
    if pd.api.types.is_float_dtype(values):
        return False
    named_like_id = bool(re.search(r"(^|[_\s-])(id|uuid|key|guid)$", name.lower())) or name.lower() == "id"
    return named_like_id or not pd.api.types.is_numeric_dtype(values)


def infer_feature_type(name: str, series: pd.Series) -> FeatureType | None:
    """The feature type a column looks like, or None for an id-like column that should be ignored."""
    # dates first: a daily series has a unique value per row, like an id, but carries signal
    if _looks_like_date(series):
        return FeatureType.DATE
    if _looks_like_id(name, series):
        return None
    if _looks_boolean(series):
        return FeatureType.BOOLEAN
    if pd.api.types.is_numeric_dtype(series):
        return FeatureType.NUMERIC
    coerced = pd.to_numeric(series.dropna(), errors="coerce")
    if len(coerced) and coerced.notna().all():
        return FeatureType.NUMERIC
    return FeatureType.CATEGORICAL


def infer_task(target: pd.Series) -> Task:
    """Classification for text/boolean labels or few distinct integers; regression otherwise."""
    values = target.dropna()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return Task.CLASSIFICATION
    integral = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
    if integral and values.nunique() <= MAX_CLASSES_FOR_INTEGER_TARGET:
        return Task.CLASSIFICATION
    return Task.REGRESSION


def infer_schema(df: pd.DataFrame, config: PipelineConfig) -> FeatureSchema:
    """The schema for `df` under `config`: configured features/task win, the rest is inferred."""
    if config.target not in df.columns:
        raise MissingTarget(_missing_target_message(config.target, df.columns))
    target = df[config.target]
    task = config.task or infer_task(target)
    ignored = [c for c in config.ignore if c in df.columns]
    if config.features is not None:
        features = dict(config.features)
    else:
        features = {}
        for name in df.columns:
            if name == config.target or name in config.ignore:
                continue
            kind = infer_feature_type(name, df[name])
            if kind is None:
                ignored.append(name)
            else:
                features[name] = kind
    levels = {
        name: sorted(map(str, df[name].dropna().unique()))[:100]
        for name, kind in features.items()
        if kind is FeatureType.CATEGORICAL and name in df.columns
    }
    return FeatureSchema(target=config.target, task=Task(task), features=features, ignored=ignored, levels=levels)


_NUMERIC_DATE = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-]\d{2,4}\b")


def ambiguous_dates(name: str, series: pd.Series) -> str | None:
    """A warning when a date column's values read either way (03/01/2023: March 1 or 3 January): pandas reads
    them month first unless a day above 12 comes first. None when every value is unambiguous."""
    parts = series.dropna().astype(str).str.extract(_NUMERIC_DATE).dropna().astype(int)
    if parts.empty:
        return None
    both_small = parts[(parts[0] <= 12) & (parts[1] <= 12) & (parts[0] != parts[1])]
    if both_small.empty:
        return None
    example = series.dropna().astype(str)[both_small.index[0]].strip()
    day_first = bool((parts[0] > 12).any())
    reading = "in some rows day first (a first number above 12), so the others are ambiguous" if day_first else \
        "month first"
    return (f"the dates of {name!r} read either way ({example!r}: month/day or day/month); they are read "
            f"{reading}. Write them as YYYY-MM-DD to be sure")


def near_miss(name: str, columns: Sequence[str]) -> str | None:
    """The column a typo most likely meant (`churn` for `churned`, `Churned` for `churned`), if any."""
    names = [str(c) for c in columns]
    folded = {c.strip().lower(): c for c in names}
    if name.strip().lower() in folded:
        return folded[name.strip().lower()]
    close = difflib.get_close_matches(name.lower(), list(folded), n=1, cutoff=0.7)
    return folded[close[0]] if close else None


def did_you_mean(name: str, columns: Sequence[str]) -> str:
    """' (did you mean 'churned'?)' or ''."""
    guess = near_miss(name, columns)
    return f" (did you mean {guess!r}?)" if guess else ""


def _missing_target_message(target: str, columns: Sequence[str]) -> str:
    shown = ", ".join(map(str, list(columns)[:20]))
    return (
        f"the target column {target!r} is not in the upload{did_you_mean(target, columns)} (columns: {shown}); "
        "add it, or set `target` in the pipeline config to the column that holds the label. Rows without labels "
        "that you want predictions for go under batch/incoming/ instead (`loopline score FILE`)"
    )


def coerce_column(series: pd.Series, kind: FeatureType) -> pd.Series:
    """A column as the model consumes it. Values that cannot be read become missing (NaN).

    Booleans, dates and categories are read once per distinct value, not once per cell: a million rows hold a
    few thousand distinct dates, and parsing a date in the "mixed" format costs as much as a thousand lookups.
    """
    if kind is FeatureType.NUMERIC:
        if pd.api.types.is_float_dtype(series.dtype):
            return series.astype(float)
        return pd.to_numeric(series, errors="coerce").astype(float)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    if kind is FeatureType.BOOLEAN:
        read = pd.Series(uniques).map(_bool_or_nan).to_numpy(dtype=float)
        out = np.append(read, np.nan)[codes]  # code -1 (missing) picks the appended NaN
        return pd.Series(out, index=series.index, dtype=float)
    if kind is FeatureType.DATE:
        parsed = pd.to_datetime(pd.Series(uniques, dtype=object), errors="coerce", format="mixed", utc=True)
        dates = pd.DatetimeIndex(parsed).take(codes, allow_fill=True, fill_value=pd.NaT)
        return pd.Series(dates, index=series.index)
    texts = np.asarray([str(v) for v in uniques] + [None], dtype=object)
    return pd.Series(texts[codes], index=series.index, dtype=object)


def _bool_or_nan(value: Any) -> float:
    try:
        return _as_bool(value)
    except ValueError:
        return math.nan


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT


def validate_training_frame(df: pd.DataFrame, schema: FeatureSchema, *, min_rows: int,
                            holdout_fraction: float) -> pd.DataFrame:
    """Check a labeled upload against the schema; return it with rows lacking a label dropped.

    Raises a typed InvalidUpload error whose message says what is wrong and how to fix it.
    """
    if schema.target not in df.columns:
        raise MissingTarget(_missing_target_message(schema.target, df.columns))
    missing = [name for name in schema.features if name not in df.columns]
    if missing:
        raise SchemaMismatch(
            f"the upload lacks the pipeline's feature column(s) {', '.join(map(repr, missing))}; add them (empty "
            "values are fine) or remove them from `features` in the pipeline config"
        )
    if df.empty:
        raise TooFewRows("the upload has a header row but no data rows; add the labeled rows below the header")
    labeled = df[df[schema.target].notna()]
    if labeled.empty:
        raise MissingTarget(f"the target column {schema.target!r} has no values; every training row needs a label")
    needed = max(min_rows, math.ceil(2 / holdout_fraction))
    if len(labeled) < needed:
        raise TooFewRows(
            f"the upload has {len(labeled)} labeled row(s); the pipeline needs at least {needed} (training.min_rows "
            f"and a {holdout_fraction:.0%} holdout); upload more rows or lower training.min_rows"
        )
    for name, kind in schema.features.items():
        _check_column_type(name, kind, df[name])
    if schema.task is Task.CLASSIFICATION:
        classes = labeled[schema.target].nunique()
        if classes < 2:
            only = labeled[schema.target].iloc[0]
            raise SingleClass(
                f"the target column {schema.target!r} holds a single class ({only!r}); a classifier needs at least "
                "two classes in the data"
            )
    else:
        as_numbers = pd.to_numeric(labeled[schema.target], errors="coerce")
        bad = labeled[schema.target][as_numbers.isna()]
        if len(bad):
            raise SchemaMismatch(
                f"the regression target {schema.target!r} has non-numeric value(s) such as {bad.iloc[0]!r}; "
                "fix the values or set `task: classification`"
            )
    return labeled.reset_index(drop=True)


def _check_column_type(name: str, kind: FeatureType, series: pd.Series) -> None:
    present = series.dropna()
    if present.empty:
        return  # an all-missing column is imputed, not rejected
    coerced = coerce_column(present, kind)
    unreadable = present[coerced.isna().to_numpy()]
    # a few unreadable cells become missing values; a column that is mostly unreadable is the wrong type
    if len(unreadable) > 0.1 * len(present):
        raise SchemaMismatch(
            f"column {name!r} should be {kind.value} but holds value(s) such as {unreadable.iloc[0]!r} "
            f"({len(unreadable)} of {len(present)}); fix the data or change its type under `features`"
        )


def records_to_frame(records: Any, schema: FeatureSchema, *, max_records: int) -> pd.DataFrame:
    """Validate a prediction request's records against the schema; raise InvalidRequest naming the problem.

    A value passes only if the model's own coercion (`coerce_column`) reads it: anything it would turn into a
    missing value ("1_000", digits of other scripts, "12abc") is refused rather than silently imputed.
    """
    check_records(records, schema, max_records=max_records, value_check=_shape_problem)
    frame = pd.DataFrame.from_records(records, columns=list(schema.features))
    problems = _unreadable_values(frame, schema)
    if problems:
        raise InvalidRequest("; ".join(problems[:MAX_PROBLEMS]))
    return frame


def _shape_problem(value: Any, kind: FeatureType) -> str | None:
    """Why a JSON value cannot be a `kind` feature whatever its content, or None (null is always allowed)."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        return f"must be a {kind.value} value, not a JSON {'object' if isinstance(value, dict) else 'array'}"
    if kind is FeatureType.NUMERIC and isinstance(value, bool):
        return "must be a number, not a boolean"
    return None


_UNREADABLE = {
    FeatureType.NUMERIC: "must be a number",
    FeatureType.BOOLEAN: "must be true or false",
    FeatureType.DATE: "must be a date such as 2024-01-31",
}


def _unreadable_values(frame: pd.DataFrame, schema: FeatureSchema) -> list[str]:
    """Values present in the request that the model's coercion reads as missing or infinite, column by column."""
    found: list[tuple[int, str, str]] = []
    for name, kind in schema.features.items():
        if kind not in _UNREADABLE:
            continue
        raw = frame[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read = coerce_column(raw.astype(object), kind)
        unreadable = (raw.notna() & read.isna()).to_numpy()
        infinite = np.zeros(len(raw), dtype=bool)
        if kind is FeatureType.NUMERIC:
            infinite = raw.notna().to_numpy() & ~np.isfinite(read.fillna(0.0).to_numpy(dtype=float))
        for row in np.flatnonzero(unreadable | infinite)[:MAX_PROBLEMS]:
            if infinite[row]:
                found.append((int(row), name, "must be a finite number (within about ±1.8e308)"))
            else:
                found.append((int(row), name, f"{_UNREADABLE[kind]}, got {preview(raw.iloc[row])}"))
    return [f"records[{row}].{name} {message}" for row, name, message in sorted(found)]


def frame_columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """A DataFrame's columns as plain Python values, missing as None: what the compiled model's numpy coercion
    (`model_inputs.columns_to_inputs`) reads, as it reads a request's records."""
    return {str(name): frame[name].astype(object).where(frame[name].notna(), None).tolist()
            for name in frame.columns}


def coerce_target(series: pd.Series, task: Task) -> pd.Series:
    """Labels as the user wrote them: numbers for regression; integers or text for classes."""
    if task is Task.REGRESSION:
        return pd.to_numeric(series, errors="coerce").astype(float)
    as_numbers = pd.to_numeric(series, errors="coerce")
    if as_numbers.notna().all() and bool(np.all(np.mod(as_numbers.to_numpy(dtype=float), 1) == 0)):
        return as_numbers.astype("int64")
    return series.astype(str).str.strip().astype(object)
