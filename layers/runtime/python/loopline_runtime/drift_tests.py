"""p-values of the drift tests in numpy and the standard library (no scipy), so that monitoring can run on the
serving layer. Each function equals scipy's to 1e-9 (tests/unit/test_drift_tests.py compares them on a corpus).

- `chi_squared_test`: Pearson's goodness of fit, as `scipy.stats.chisquare(observed, f_exp=expected)`.
- `chi_squared_sf`: the chi-squared survival function, as `scipy.stats.chi2.sf`: the regularized upper incomplete
  gamma function Q(dof / 2, x / 2), by its power series below a + 1 and its continued fraction above (Numerical
  Recipes' gser/gcf, the continued fraction by the modified Lentz method).
"""

from __future__ import annotations

import math

import numpy as np

_MAX_TERMS = 100_000
_EPSILON = 1e-16
_TINY = 1e-300


def chi_squared_test(observed: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """Pearson's chi-squared statistic of `observed` counts against `expected` counts (same total), and its
    p-value with len(observed) - 1 degrees of freedom."""
    o = np.asarray(observed, dtype=float)
    e = np.asarray(expected, dtype=float)
    if o.shape != e.shape or o.ndim != 1 or o.size < 1:
        raise ValueError(f"observed and expected need the same non-zero number of cells, got {o.shape} and {e.shape}")
    statistic = float(np.sum((o - e) ** 2 / e))
    return statistic, chi_squared_sf(statistic, o.size - 1)


def chi_squared_sf(x: float, dof: float) -> float:
    """P(X >= x) for X chi-squared with `dof` degrees of freedom."""
    if dof <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {dof}")
    if math.isnan(x):
        return math.nan
    return regularized_gamma_q(dof / 2.0, x / 2.0)


def regularized_gamma_q(a: float, x: float) -> float:
    """Q(a, x) = Gamma(a, x) / Gamma(a), the regularized upper incomplete gamma function (a > 0)."""
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    if x < a + 1.0:
        return 1.0 - _lower_series(a, x)
    return _upper_continued_fraction(a, x)


def _prefactor(a: float, x: float) -> float:
    return math.exp(a * math.log(x) - x - math.lgamma(a))


def _lower_series(a: float, x: float) -> float:
    """P(a, x) by its power series, which converges fast for x < a + 1."""
    term = total = 1.0 / a
    denominator = a
    for _ in range(_MAX_TERMS):
        denominator += 1.0
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _EPSILON:
            break
    return total * _prefactor(a, x)


def _upper_continued_fraction(a: float, x: float) -> float:
    """Q(a, x) by its continued fraction (modified Lentz), which converges fast for x >= a + 1."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_TERMS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPSILON:
            break
    return h * _prefactor(a, x)
