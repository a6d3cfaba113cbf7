"""Data drift of a labeled batch against the training data's profile (numpy, pandas; p-values in drift_tests.py).

`build_profile` summarises the reference (training) data into a small JSON-safe dict that lives in the dataset
manifest; `measure_drift` compares a new batch with it, feature by feature, and returns a `DriftReport`.

Profile format (version 1)::

    {"version": 1, "rows": <int>, "bins": <int>,
     "features": {
       "<numeric column>": {"kind": "numeric", "count": <non-null rows>, "null_share": <float>,
                            "edges": [e1, ..., ek],     # unique reference deciles (data values); bins are
                                                        # (-inf, e1], (e1, e2], ..., (ek, +inf)
                            "shares": [s0, ..., sk],    # reference share of non-null values per bin
                            "ks_sample": [q1, ..., qm]},  # see "KS reference sample" below
       "<categorical or boolean column>": {"kind": "categorical" | "boolean", "count": ..., "null_share": ...,
                            "levels": {"<level>": <share of non-null values>, ...},  # top-K, most frequent first
                            "other": <share of non-null values outside the top-K>}},
     "skipped": {"<date column>": "<why>"}}

The infinite outer bins are implicit (only the finite inner edges are stored), so the profile never holds
inf/NaN. Numbers are rounded to 6 significant digits (shares to 6 decimals): about 0.55 KB per numeric feature
(~17 KB for 30, mostly the KS sample; lower `ks_points` to shrink it), ~0.1 KB per categorical one.

KS reference sample: if the reference has at most `ks_points` non-null values, all of them are stored (sorted) and
the KS test is exactly `scipy.stats.ks_2samp(batch, reference)` (as drift_tests.ks_two_sample computes it).
Otherwise the `ks_points` reference quantiles at probabilities (i - 0.5) / m are stored (method "inverted_cdf", so
they are real data values, ties included). Their step ECDF is within 1/(2m) of the reference ECDF everywhere, so
the statistic D against them is within 1/(2m) of the true two-sample statistic. The p-value is then computed for
the *real* sample sizes (the reference `count`, not m) from the resolution-corrected statistic max(D - 1/(2m), 0)
with scipy's asymptotic two-sample distribution (`kstwo`, as drift_tests.kstwo_sf computes it, at
n = n_batch * n_ref / (n_batch + n_ref), as `ks_2samp(method="asymp")` does): a
conservative p-value that keeps most of the power of the full reference without storing it.

Drift rule (per feature): drifted when its test rejects (p < `p_value`) or, for batches of at least
`min_psi_rows` rows, when PSI > `psi_threshold`. PSI is always reported, but below that size it is
dominated by sampling noise (its expectation on unchanged data is about (bins - 1) / n: ~0.2 at n = 50 with 10
bins), so it does not vote. A profiled feature absent from the batch is reported as missing and counts as drifted.

- Numeric: PSI on the reference bins plus a null bin (so a jump in missing values shows); two-sample KS on the
  non-null values. Values that are not numbers (junk strings, +-inf) are treated as null.
- Categorical / boolean: PSI on the top-K levels + "other" + a null bin; chi-squared goodness of fit of the
  batch's non-null level counts against the reference shares, levels unseen in the reference pooled into
  "other" (whose expected share is floored at `eps` when the reference had none, and which is dropped when both
  sides are empty).
- Date features are not profiled: a fresh batch is later than the training data by construction, so a date's
  distribution always "drifts" and would only add noise. They are listed under "skipped".
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopline_runtime.drift_tests import chi_squared_test, ks_statistic, ks_two_sample, kstwo_sf
from loopline_runtime.schema import FALSE_WORDS, TRUE_WORDS

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


def build_profile(
    df: pd.DataFrame,
    features: Mapping[str, str],
    *,
    bins: int = 10,
    top_k: int = 20,
    ks_points: int = 32,
) -> dict[str, Any]:
    """Profile the reference (training) data for later drift checks; the result is JSON-safe and a few KB.

    Args:
        df: the reference rows.
        features: column -> 'numeric' | 'categorical' | 'boolean' | 'date' (dates are skipped, see module doc).
        bins: quantile bins for numeric features (deciles by default; duplicate edges are merged).
        top_k: levels kept per categorical feature; the rest form the "other" bucket.
        ks_points: size of the stored KS reference sample (all values when the reference is that small).

    Raises:
        ValueError: a feature is not a column of `df`, or has an unknown kind.
    """
    if bins < 1 or top_k < 1 or ks_points < 2:
        raise ValueError("bins and top_k must be >= 1 and ks_points >= 2")
    absent = [name for name in features if name not in df.columns]
    if absent:
        raise ValueError(f"cannot profile features missing from the reference data: {', '.join(absent)}")
    profiled: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for name, kind in features.items():
        kind = str(kind)
        if kind == NUMERIC:
            profiled[name] = _profile_numeric(df[name], bins=bins, ks_points=ks_points)
        elif kind in (CATEGORICAL, BOOLEAN):
            profiled[name] = _profile_levels(df[name], kind=kind, top_k=top_k)
        elif kind == DATE:
            skipped[name] = "date features are not profiled: a new batch is later than the training data"
        else:
            raise ValueError(f"feature {name!r} has unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    return {"version": PROFILE_VERSION, "rows": len(df), "bins": bins, "features": profiled, "skipped": skipped}


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
    df: pd.DataFrame,
    *,
    psi_threshold: float = 0.2,
    p_value: float = 0.05,
    min_psi_rows: int = 100,
    eps: float = DEFAULT_EPS,
) -> DriftReport:
    """Compare a batch with the reference profile; see the module docstring for the tests and the drift rule."""
    results: list[FeatureDrift] = []
    for name, spec in profile.get("features", {}).items():
        kind = spec["kind"]
        if name not in df.columns:
            results.append(
                FeatureDrift(
                    name, kind, None, None, None, drifted=True, missing=True, notes=("column absent from the batch",)
                )
            )
            continue
        if kind == NUMERIC:
            measured = _measure_numeric(name, spec, df[name], eps=eps)
        else:
            measured = _measure_levels(name, spec, df[name], eps=eps)
        results.append(_decide(measured, len(df), psi_threshold, p_value, min_psi_rows))
    return DriftReport(
        features=tuple(results),
        rows=len(df),
        psi_threshold=psi_threshold,
        p_value_threshold=p_value,
        min_psi_rows=min_psi_rows,
        skipped=tuple(profile.get("skipped", {})),
    )


def feature_distributions(profile: Mapping[str, Any], df: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per feature, the reference and the batch shares over the reference's own bins (deciles or levels, then
    "missing"): what a report draws side by side. Features absent from the batch are left out."""
    distributions: dict[str, dict[str, Any]] = {}
    for name, spec in profile.get("features", {}).items():
        if name not in df.columns:
            continue
        if spec["kind"] == NUMERIC:
            values = _numeric_values(df[name])
            edges = list(spec["edges"])
            batch = _bin_shares(values.dropna().to_numpy(), edges)
            reference = np.asarray(spec["shares"], dtype=float)
            bounds = [f"{edge:g}" for edge in edges]
            labels = ([f"<= {bounds[0]}"] if bounds else ["all"]) + [
                f"{low} - {high}" for low, high in itertools.pairwise(bounds)
            ] + ([f"> {bounds[-1]}"] if bounds else [])
        else:
            levels = _levels(df[name], spec["kind"]).dropna()
            known = list(spec["levels"])
            counts = levels.value_counts()
            observed = np.array([counts.get(level, 0) for level in known]
                                + [counts[~counts.index.isin(known)].sum()], dtype=float)
            batch = observed / observed.sum() if observed.sum() else observed
            reference = np.array([spec["levels"][level] for level in known] + [spec["other"]], dtype=float)
            labels = [*known, "other"]
        present = _numeric_values(df[name]) if spec["kind"] == NUMERIC else _levels(df[name], spec["kind"])
        null_share = _null_share(present)
        distributions[name] = {
            "kind": spec["kind"],
            "bins": [*labels, "missing"],
            "reference": [_share(v) for v in _with_null_bin(reference, spec["null_share"])],
            "batch": [_share(v) for v in _with_null_bin(batch, null_share)],
        }
    return distributions


# --- numeric -------------------------------------------------------------------------------------------------


def _numeric_values(column: pd.Series) -> pd.Series:
    """Numbers only: junk strings and +-inf become NaN (bools become 0/1)."""
    if column.dtype == bool:
        column = column.astype(float)
    values = pd.to_numeric(column, errors="coerce").astype(float)
    return values.where(np.isfinite(values))


def _profile_numeric(column: pd.Series, *, bins: int, ks_points: int) -> dict[str, Any]:
    values = _numeric_values(column)
    present = np.sort(values.dropna().to_numpy())
    edges: list[float] = []
    if present.size:
        deciles = np.quantile(present, np.arange(1, bins) / bins, method="inverted_cdf") if bins > 1 else np.array([])
        edges = sorted({_round(q) for q in deciles})
    shares = _bin_shares(present, edges)
    if present.size <= ks_points:
        sample = present
    else:
        probabilities = (np.arange(1, ks_points + 1) - 0.5) / ks_points
        sample = np.quantile(present, probabilities, method="inverted_cdf")
    return {
        "kind": NUMERIC,
        "count": int(present.size),
        "null_share": _share(_null_share(values)),
        "edges": edges,
        "shares": [_share(s) for s in shares],
        "ks_sample": [_round(v) for v in sample],
    }


def _bin_shares(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Share of values per bin (-inf, e1], (e1, e2], ..., (ek, inf); zeros when there are no values."""
    counts = np.bincount(
        np.searchsorted(np.asarray(edges, dtype=float), values, side="left"), minlength=len(edges) + 1
    ).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def _measure_numeric(name: str, spec: Mapping[str, Any], column: pd.Series, *, eps: float) -> FeatureDrift:
    values = _numeric_values(column)
    present = values.dropna().to_numpy()
    null_share = _null_share(values)
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
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
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


def _levels(column: pd.Series, kind: str) -> pd.Series:
    # once per distinct value, not per cell: a profiled column has many rows and few levels
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    levels = np.asarray([_level(v, kind) for v in uniques] + [None], dtype=object)
    return pd.Series(levels[codes], index=column.index, dtype=object)


def _profile_levels(column: pd.Series, *, kind: str, top_k: int) -> dict[str, Any]:
    levels = _levels(column, kind)
    present = levels.dropna()
    counts = present.value_counts(sort=False)
    # most frequent first, ties by level so the profile is deterministic
    ranked = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    total = int(present.size)
    kept = {str(level): _share(count / total) for level, count in ranked[:top_k]}
    other = sum(count for _, count in ranked[top_k:]) / total if total else 0.0
    return {
        "kind": kind,
        "count": total,
        "null_share": _share(_null_share(levels)),
        "levels": kept,
        "other": _share(other),
    }


def _measure_levels(name: str, spec: Mapping[str, Any], column: pd.Series, *, eps: float) -> FeatureDrift:
    kind = spec["kind"]
    levels = _levels(column, kind)
    present = levels.dropna()
    null_share = _null_share(levels)
    known = list(spec["levels"])
    counts = present.value_counts()
    observed = np.array(
        [counts.get(level, 0) for level in known] + [counts[~counts.index.isin(known)].sum()], dtype=float
    )
    reference = np.array([spec["levels"][level] for level in known] + [spec["other"]], dtype=float)
    n = int(present.size)
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


# --- shared --------------------------------------------------------------------------------------------------


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


def _null_share(values: pd.Series) -> float:
    return float(values.isna().mean()) if len(values) else 0.0


def _normalised(shares: np.ndarray) -> np.ndarray:
    total = shares.sum()
    return shares / total if total > 0 else shares


def _round(value: float) -> float:
    return float(f"{float(value):.{_SIG_DIGITS}g}")


def _share(value: float) -> float:
    return round(float(value), 6)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
