"""Data drift of a labeled batch against the training data's profile (pandas here; the measuring itself, numpy only,
in column_drift.py; p-values in drift_tests.py).

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

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from loopline_runtime.column_drift import (  # noqa: F401  (the measuring API, imported from here by callers)
    BOOLEAN,
    CATEGORICAL,
    DATE,
    DEFAULT_EPS,
    KINDS,
    NUMERIC,
    PROFILE_VERSION,
    DriftReport,
    FeatureDrift,
    _bin_shares,
    _level,
    _round,
    _share,
    population_stability_index,
)
from loopline_runtime.column_drift import feature_distributions as column_distributions
from loopline_runtime.column_drift import measure_drift as measure_columns


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


def measure_drift(profile: Mapping[str, Any], df: pd.DataFrame, **rule: Any) -> DriftReport:
    """Compare a batch (a DataFrame) with the reference profile (column_drift.measure_drift, its keyword arguments:
    psi_threshold, p_value, min_psi_rows, eps)."""
    return measure_columns(profile, _columns(df), len(df), **rule)


def feature_distributions(profile: Mapping[str, Any], df: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """column_drift.feature_distributions of a DataFrame."""
    return column_distributions(profile, _columns(df))


def _columns(df: pd.DataFrame) -> dict[str, list[Any]]:
    """A DataFrame's columns as plain Python values, missing (NaN, NA, NaT) as None."""
    return {str(name): df[name].astype(object).where(df[name].notna(), None).tolist() for name in df.columns}


# --- profiles ------------------------------------------------------------------------------------------------


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


def _null_share(values: pd.Series) -> float:
    return float(values.isna().mean()) if len(values) else 0.0
