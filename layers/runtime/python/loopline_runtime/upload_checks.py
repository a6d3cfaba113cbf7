"""An upload's checks against the schema, accumulated chunk by chunk: the same rules and messages as
`schema.validate_training_frame` on a whole frame, in memory bounded by the chunk (plus a fixed-size sample
of rows for the drift profile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from loopline_runtime.config import FeatureType, Task
from loopline_runtime.errors import MissingTarget, SchemaMismatch, SingleClass, TooFewRows
from loopline_runtime.schema import FeatureSchema, _missing_target_message, coerce_column, did_you_mean

PROFILE_SAMPLE_ROWS = 100_000  # the drift profile is computed on a seeded uniform sample of this many rows
MAX_LEVELS_TRACKED = 10_000  # distinct levels remembered per categorical column (the schema keeps the first 100)


@dataclass
class _ColumnType:
    present: int = 0
    unreadable: int = 0
    example: Any = None


@dataclass
class UploadChecks:
    """Feed every chunk to `add`, then call `finish`; both raise typed InvalidUpload errors."""

    schema: FeatureSchema
    min_rows: int
    holdout_fraction: float
    track_levels: bool = False  # the schema was inferred from this upload: its levels come from all of it
    seed: int = 0
    rows: int = 0
    labeled: int = 0
    nulls: dict[str, int] = field(default_factory=dict)
    types: dict[str, _ColumnType] = field(default_factory=dict)
    classes: list[Any] = field(default_factory=list)
    bad_target: Any = None
    levels: dict[str, set[str]] = field(default_factory=dict)
    _rng: np.random.Generator | None = None
    _sample_keys: np.ndarray | None = None
    _sample_columns: dict[str, Any] = field(default_factory=dict)

    def check_columns(self, columns: list[str]) -> None:
        """The header: the target and every feature column must be there."""
        if self.schema.target not in columns:
            raise MissingTarget(_missing_target_message(self.schema.target, columns))
        missing = [name for name in self.schema.features if name not in columns]
        if missing:
            named = ", ".join(f"{name!r}{did_you_mean(name, columns)}" for name in missing)
            raise SchemaMismatch(
                f"the upload lacks the pipeline's feature column(s) {named}; add them (empty "
                "values are fine) or remove them from `features` in the pipeline config"
            )

    def add(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """Account for one chunk of raw text rows; returns its labeled rows."""
        self.rows += len(chunk)
        for name, count in chunk.isna().sum().items():
            self.nulls[str(name)] = self.nulls.get(str(name), 0) + int(count)
        labeled = chunk[chunk[self.schema.target].notna()]
        self.labeled += len(labeled)
        for name, kind in self.schema.features.items():
            present = chunk[name].dropna()
            if present.empty:
                continue
            state = self.types.setdefault(name, _ColumnType())
            state.present += len(present)
            unreadable = present[coerce_column(present, kind).isna().to_numpy()]
            if len(unreadable):
                state.unreadable += len(unreadable)
                if state.example is None:
                    state.example = unreadable.iloc[0]
            if self.track_levels and kind is FeatureType.CATEGORICAL:
                seen = self.levels.setdefault(name, set())
                if len(seen) < MAX_LEVELS_TRACKED:
                    seen.update(map(str, present.unique()))
        target = labeled[self.schema.target]
        if self.schema.task is Task.CLASSIFICATION:
            if len(self.classes) < 2:
                for value in target.unique():
                    if value not in self.classes:
                        self.classes.append(value)
        elif self.bad_target is None:
            bad = target[pd.to_numeric(target, errors="coerce").isna()]
            if len(bad):
                self.bad_target = bad.iloc[0]
        self._sample(labeled)
        return labeled

    def _sample(self, labeled: pd.DataFrame) -> None:
        """A uniform sample of the labeled rows (each row draws a seeded key; the smallest keys are kept), held
        compactly: numbers as floats, text as categoricals. Keeping the chunk's own Python strings would pin the
        memory of every chunk they came from (a sampled string keeps its whole allocator arena alive)."""
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        keys = self._rng.random(len(labeled))
        columns: dict[str, Any] = {}
        for name, kind in self.schema.features.items():
            if kind is FeatureType.DATE:
                continue  # dates are not profiled
            if kind is FeatureType.NUMERIC:
                columns[name] = coerce_column(labeled[name], kind).to_numpy()
            else:
                values = labeled[name].astype(object)
                columns[name] = pd.Categorical(values, categories=pd.Index(values.dropna().unique(), dtype=object))
        if self._sample_keys is not None:
            keys = np.concatenate([self._sample_keys, keys])
            for name, values in columns.items():
                old = self._sample_columns[name]
                columns[name] = (_union(old, values) if isinstance(values, pd.Categorical)
                                 else np.concatenate([old, values]))
        if len(keys) > PROFILE_SAMPLE_ROWS:
            kept = np.sort(np.argpartition(keys, PROFILE_SAMPLE_ROWS)[:PROFILE_SAMPLE_ROWS])
            keys = keys[kept]
            columns = {name: values.take(kept) for name, values in columns.items()}
        self._sample_keys, self._sample_columns = keys, columns

    def finish(self) -> FeatureSchema:
        """The whole-upload checks, in the order a whole-frame validation makes them; the final schema."""
        target = self.schema.target
        if self.rows == 0:
            raise TooFewRows("the upload has a header row but no data rows; add the labeled rows below the header")
        if self.labeled == 0:
            raise MissingTarget(f"the target column {target!r} has no values; every training row needs a label")
        needed = max(self.min_rows, math.ceil(2 / self.holdout_fraction))
        if self.labeled < needed:
            raise TooFewRows(
                f"the upload has {self.labeled} labeled row(s); the pipeline needs at least {needed} "
                f"(training.min_rows and a {self.holdout_fraction:.0%} holdout); upload more rows or lower "
                "training.min_rows"
            )
        for name, kind in self.schema.features.items():
            state = self.types.get(name)
            # a few unreadable cells become missing values; a column that is mostly unreadable is the wrong type
            if state and state.unreadable > 0.1 * state.present:
                raise SchemaMismatch(
                    f"column {name!r} should be {kind.value} but holds value(s) such as {state.example!r} "
                    f"({state.unreadable} of {state.present}); fix the data or change its type under `features`"
                )
        if self.schema.task is Task.CLASSIFICATION and len(self.classes) < 2:
            raise SingleClass(
                f"the target column {target!r} holds a single class ({self.classes[0]!r}); a classifier needs at "
                "least two classes in the data"
            )
        if self.bad_target is not None:
            raise SchemaMismatch(
                f"the regression target {target!r} has non-numeric value(s) such as {self.bad_target!r}; "
                "fix the values or set `task: classification`"
            )
        if self.track_levels:
            return replace(self.schema, levels={name: sorted(values)[:100] for name, values in self.levels.items()})
        return self.schema

    def null_ratios(self) -> dict[str, float]:
        return {name: round(count / self.rows, 6) if self.rows else 0.0 for name, count in self.nulls.items()}

    def profile_rows(self) -> pd.DataFrame:
        """The sampled labeled rows' profiled features (all rows when there are at most PROFILE_SAMPLE_ROWS)."""
        return pd.DataFrame(self._sample_columns)


def _union(first: pd.Categorical, second: pd.Categorical) -> pd.Categorical:
    """Two categoricals as one, their levels as plain objects (pandas infers `str` levels for some and not for
    others, e.g. an all-missing chunk, and refuses to combine different level dtypes)."""
    combined = union_categoricals([_object_levels(first), _object_levels(second)])
    return _object_levels(combined)


def _object_levels(values: pd.Categorical) -> pd.Categorical:
    return pd.Categorical.from_codes(values.codes, categories=pd.Index(list(values.categories), dtype=object))
