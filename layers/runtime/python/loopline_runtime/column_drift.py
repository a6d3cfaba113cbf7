"""Drift of a batch held as columns of plain values (the CSV's text or a request's JSON values) against a training
profile: PSI, KS and chi-squared with numpy alone (p-values in drift_tests.py), so the monitor function runs on the
serving layer. The profile format, the tests and the drift rule are described in drift.py, which builds profiles
(pandas) and measures DataFrames through this module.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopline_runtime.drift_tests import chi_squared_test, ks_statistic, ks_two_sample, kstwo_sf
from loopline_runtime.feature_schema import FALSE_WORDS, TRUE_WORDS

PROFILE_VERSION = 1
NUMERIC = "numeric"
CATEGORICAL = "categorical"
BOOLEAN = "boolean"
DATE = "date"
KINDS = (NUMERIC, CATEGORICAL, BOOLEAN, DATE)

DEFAULT_EPS = 1e-4
LOW_POWER_ROWS = 5
_SIG_DIGITS = 6
_MAX_LEVEL_CHARS = 64

# a batch: column name -> its values, one per row (None, NaN or text that is not a number for missing values)
Columns = Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature. `statistic`/`p_value` are KS (numeric) or chi-squared (categorical/boolean)."""

    name: str
    kind: str
    psi: float | None
    statistic: float | None
    p_value: float | None
    drifted: bool
    test: str | None = None
    rows: int = 0
    null_share: float | None = None
    missing: bool = False
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (no NaN/inf)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "psi": _finite(self.psi),
            "statistic": _finite(self.statistic),
            "p_value": _finite(self.p_value),
            "drifted": self.drifted,
            "test": self.test,
            "rows": self.rows,
            "null_share": _finite(self.null_share),
            "missing": self.missing,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class DriftReport:
    """Per-feature drift of one batch plus the aggregates published as metrics."""

    features: tuple[FeatureDrift, ...]
    rows: int
    psi_threshold: float
    p_value_threshold: float
    min_psi_rows: int
    skipped: tuple[str, ...] = field(default=())

    @property
    def drifted(self) -> tuple[str, ...]:
        """Names of the drifted features (missing ones included)."""
        return tuple(f.name for f in self.features if f.drifted)

    @property
    def drifted_share(self) -> float:
        """Share of the measured features that drifted (0.0 when nothing was measured)."""
        return len(self.drifted) / len(self.features) if self.features else 0.0

    @property
    def max_psi(self) -> float:
        """Largest PSI over the features present in the batch (0.0 when there is none)."""
        values = [f.psi for f in self.features if f.psi is not None and math.isfinite(f.psi)]
        return max(values, default=0.0)

    def feature(self, name: str) -> FeatureDrift:
        """The result for one feature; KeyError if it was not measured."""
        for result in self.features:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (no NaN/inf), for the evaluate result and the run's record."""
        return {
            "rows": self.rows,
            "drifted_share": self.drifted_share,
            "max_psi": self.max_psi,
            "drifted": list(self.drifted),
            "rule": {
                "psi_threshold": self.psi_threshold,
                "p_value": self.p_value_threshold,
                "min_psi_rows": self.min_psi_rows,
            },
            "features": [f.to_dict() for f in self.features],
            "skipped": list(self.skipped),
        }


def population_stability_index(
    expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray, eps: float = DEFAULT_EPS
) -> float:
    """PSI = sum((a - e) * ln(a / e)) over bins; shares below `eps` are floored to `eps` so empty bins count.

    `expected` and `actual` are per-bin shares (or counts) in the same bin order; each is normalised to sum 1.
    """
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.shape != a.shape or e.ndim != 1 or e.size == 0:
        raise ValueError(f"expected and actual need the same non-zero number of bins, got {e.shape} and {a.shape}")
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(a))) or (e < 0).any() or (a < 0).any():
        raise ValueError("bin shares must be finite and non-negative")
    if eps <= 0:
        raise ValueError("eps must be positive")
    e = np.maximum(_normalised(e), eps)
    a = np.maximum(_normalised(a), eps)
    return float(np.sum((a - e) * np.log(a / e)))


def measure_drift(
    profile: Mapping[str, Any],
    columns: Columns,
    rows: int,
    *,
    psi_threshold: float = 0.2,
    p_value: float = 0.05,
    min_psi_rows: int = 100,
    eps: float = DEFAULT_EPS,
) -> DriftReport:
    """Compare a batch of `rows` rows with the reference profile; see drift.py for the tests and the drift rule."""
    results: list[FeatureDrift] = []
    for name, spec in profile.get("features", {}).items():
        kind = spec["kind"]
        if name not in columns:
            results.append(
                FeatureDrift(
                    name, kind, None, None, None, drifted=True, missing=True, notes=("column absent from the batch",)
                )
            )
            continue
        if kind == NUMERIC:
            measured = _measure_numeric(name, spec, numeric_values(columns[name]), eps=eps)
        else:
            measured = _measure_levels(name, spec, level_values(columns[name], kind), eps=eps)
        results.append(_decide(measured, rows, psi_threshold, p_value, min_psi_rows))
    return DriftReport(
        features=tuple(results),
        rows=rows,
        psi_threshold=psi_threshold,
        p_value_threshold=p_value,
        min_psi_rows=min_psi_rows,
        skipped=tuple(profile.get("skipped", {})),
    )


def feature_distributions(profile: Mapping[str, Any], columns: Columns) -> dict[str, dict[str, Any]]:
    """Per feature, the reference and the batch shares over the reference's own bins (deciles or levels, then
    "missing"): what a report draws side by side. Features absent from the batch are left out."""
    distributions: dict[str, dict[str, Any]] = {}
    for name, spec in profile.get("features", {}).items():
        if name not in columns:
            continue
        if spec["kind"] == NUMERIC:
            values = numeric_values(columns[name])
            edges = list(spec["edges"])
            batch = _bin_shares(values[~np.isnan(values)], edges)
            reference = np.asarray(spec["shares"], dtype=float)
            bounds = [f"{edge:g}" for edge in edges]
            labels = ([f"<= {bounds[0]}"] if bounds else ["all"]) + [
                f"{low} - {high}" for low, high in itertools.pairwise(bounds)
            ] + ([f"> {bounds[-1]}"] if bounds else [])
            null_share = _nan_share(values)
        else:
            levels = level_values(columns[name], spec["kind"])
            known = list(spec["levels"])
            observed = _level_counts(levels, known)
            batch = observed / observed.sum() if observed.sum() else observed
            reference = np.array([spec["levels"][level] for level in known] + [spec["other"]], dtype=float)
            labels = [*known, "other"]
            null_share = _none_share(levels)
        distributions[name] = {
            "kind": spec["kind"],
            "bins": [*labels, "missing"],
            "reference": [_share(v) for v in _with_null_bin(reference, spec["null_share"])],
            "batch": [_share(v) for v in _with_null_bin(batch, null_share)],
        }
    return distributions


def numeric_values(values: Sequence[Any]) -> np.ndarray:
    """Numbers only, as float64: junk text, None and +-inf become NaN (booleans 0/1), as pandas.to_numeric(...,
    errors="coerce") reads them."""
    numbers = np.fromiter((to_number(value) for value in values), dtype=float, count=len(values))
    numbers[~np.isfinite(numbers)] = np.nan
    return numbers


def level_values(values: Sequence[Any], kind: str) -> list[str | None]:
    """Each value as the level it counts as (None for missing); read once per distinct value."""
    read: dict[tuple[type, Any], str | None] = {}
    levels = []
    for value in values:
        key = (type(value), value)
        if key not in read:
            read[key] = _level(value, kind)
        levels.append(read[key])
    return levels


def to_number(value: Any) -> float:
    """A value as a float, as pandas.to_numeric(errors="coerce") reads it: NaN for None and text that is not a
    number (inf stays)."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        text = value.strip()
        # float() also reads "1_000" and non-ASCII digits, which pandas' parser does not
        if not text.isascii() or "_" in text:
            return math.nan
        try:
            return float(text)
        except ValueError:
            return math.nan
    if isinstance(value, bool | int | float | np.bool_ | np.number):
        return float(value)
    return math.nan


def _bin_shares(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Share of values per bin (-inf, e1], (e1, e2], ..., (ek, inf); zeros when there are no values."""
    counts = np.bincount(
        np.searchsorted(np.asarray(edges, dtype=float), values, side="left"), minlength=len(edges) + 1
    ).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def _measure_numeric(name: str, spec: Mapping[str, Any], values: np.ndarray, *, eps: float) -> FeatureDrift:
    present = values[~np.isnan(values)]
    null_share = _nan_share(values)
    expected = _with_null_bin(np.asarray(spec["shares"], dtype=float), spec["null_share"])
    actual = _with_null_bin(_bin_shares(present, spec["edges"]), null_share)
    psi = population_stability_index(expected, actual, eps) if len(values) else None
    notes: list[str] = []
    reference = np.asarray(spec["ks_sample"], dtype=float)
    statistic: float | None = None
    p: float | None = None
    if present.size and reference.size:
        statistic, p = _ks(present, reference, int(spec["count"]))
    elif not present.size:
        notes.append("no numeric values in the batch: KS not computed")
    else:
        notes.append("no numeric values in the reference: KS not computed")
    return FeatureDrift(
        name,
        NUMERIC,
        psi,
        statistic,
        p,
        drifted=False,
        test="ks",
        rows=int(present.size),
        null_share=null_share,
        notes=tuple(notes),
    )


def _ks(batch: np.ndarray, reference: np.ndarray, reference_count: int) -> tuple[float, float]:
    """KS statistic against the stored sample; conservative p-value for the real reference size (module doc)."""
    if reference.size >= reference_count:  # the full reference is stored: the two-sample test as is
        return ks_two_sample(batch, reference)
    statistic = ks_statistic(batch, reference)
    resolution = 1.0 / (2 * reference.size)
    effective_n = max(1, round(batch.size * reference_count / (batch.size + reference_count)))
    p = kstwo_sf(max(statistic - resolution, 0.0), effective_n)
    return statistic, min(1.0, p)


# --- categorical / boolean -----------------------------------------------------------------------------------


def _level(value: Any, kind: str) -> str | None:
    """The level a value counts as; None for nulls. Integral floats read as ints (CSV columns with NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        text = "true" if value else "false"
    elif isinstance(value, float | np.floating) and float(value).is_integer():
        text = str(int(value))
    else:
        text = str(value).strip()
    if kind == BOOLEAN:
        lowered = text.lower()
        if lowered in TRUE_WORDS:
            return "true"
        if lowered in FALSE_WORDS:
            return "false"
    return text[:_MAX_LEVEL_CHARS]


def _level_counts(levels: list[str | None], known: list[str]) -> np.ndarray:
    """Counts of the known levels, then of every other non-missing level."""
    counts: dict[str, int] = {}
    for level in levels:
        if level is not None:
            counts[level] = counts.get(level, 0) + 1
    kept = [counts.get(level, 0) for level in known]
    return np.array([*kept, sum(counts.values()) - sum(kept)], dtype=float)


def _measure_levels(name: str, spec: Mapping[str, Any], levels: list[str | None], *, eps: float) -> FeatureDrift:
    kind = spec["kind"]
    null_share = _none_share(levels)
    known = list(spec["levels"])
    observed = _level_counts(levels, known)
    reference = np.array([spec["levels"][level] for level in known] + [spec["other"]], dtype=float)
    n = int(observed.sum())
    psi = None
    if len(levels):
        psi = population_stability_index(
            _with_null_bin(reference, spec["null_share"]),
            _with_null_bin(observed / n if n else observed, null_share),
            eps,
        )
    notes: list[str] = []
    statistic: float | None = None
    p: float | None = None
    unseen = int(observed[-1]) if reference[-1] == 0 else 0
    if unseen:
        notes.append(f"{unseen} value(s) of levels never seen in the reference")
    if n and reference.sum() > 0:
        statistic, p = _chi_squared(observed, reference, eps)
    elif not n:
        notes.append("no values in the batch: chi-squared not computed")
    else:
        notes.append("no values in the reference: chi-squared not computed")
    return FeatureDrift(
        name, kind, psi, statistic, p, drifted=False, test="chi2", rows=n, null_share=null_share, notes=tuple(notes)
    )


def _chi_squared(observed: np.ndarray, reference: np.ndarray, eps: float) -> tuple[float, float]:
    """Chi-squared goodness of fit; the last cell is "other" (dropped when empty on both sides)."""
    if reference[-1] == 0 and observed[-1] == 0:
        observed, reference = observed[:-1], reference[:-1]
    shares = _normalised(np.maximum(reference, np.where(reference > 0, 0.0, eps)))
    if observed.size < 2:  # a single category cannot differ
        return 0.0, 1.0
    return chi_squared_test(observed, shares * observed.sum())


# --- shared ---------------------------------------------------------------------------------------------------


def _decide(
    result: FeatureDrift, batch_rows: int, psi_threshold: float, p_value: float, min_psi_rows: int
) -> FeatureDrift:
    notes = list(result.notes)
    # PSI's bins include the null bin, so its sample size is every row of the batch
    psi_votes = result.psi is not None and batch_rows >= min_psi_rows
    if result.psi is not None and not psi_votes:
        notes.append(f"PSI not used for the verdict: {batch_rows} rows < {min_psi_rows} (PSI is noisy)")
    if 0 < result.rows < LOW_POWER_ROWS:
        notes.append(f"low power: only {result.rows} value(s) in the batch")
    by_psi = psi_votes and result.psi is not None and result.psi > psi_threshold
    by_test = result.p_value is not None and math.isfinite(result.p_value) and result.p_value < p_value
    return FeatureDrift(
        result.name,
        result.kind,
        result.psi,
        result.statistic,
        result.p_value,
        drifted=bool(by_psi or by_test),
        test=result.test,
        rows=result.rows,
        null_share=result.null_share,
        missing=result.missing,
        notes=tuple(notes),
    )


def _with_null_bin(value_shares: np.ndarray, null_share: float) -> np.ndarray:
    """Shares of all rows: the value bins scaled by the non-null share, then one bin for nulls."""
    return np.append(value_shares * (1.0 - null_share), null_share)


def _normalised(shares: np.ndarray) -> np.ndarray:
    total = shares.sum()
    return shares / total if total > 0 else shares


def _round(value: float) -> float:
    return float(f"{float(value):.{_SIG_DIGITS}g}")


def _share(value: float) -> float:
    return round(float(value), 6)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _nan_share(values: np.ndarray) -> float:
    return float(np.isnan(values).mean()) if len(values) else 0.0


def _none_share(levels: list[str | None]) -> float:
    return sum(level is None for level in levels) / len(levels) if levels else 0.0
