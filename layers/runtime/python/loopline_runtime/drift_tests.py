"""p-values of the drift tests in numpy and the standard library (no scipy), so that monitoring can run on the
serving layer. Each function equals scipy's to 1e-9 (tests/unit/test_drift_tests.py compares them on a corpus).

- `chi_squared_test`: Pearson's goodness of fit, as `scipy.stats.chisquare(observed, f_exp=expected)`.
- `chi_squared_sf`: the chi-squared survival function, as `scipy.stats.chi2.sf`: the regularized upper incomplete
  gamma function Q(dof / 2, x / 2), by its power series below a + 1 and its continued fraction above (Numerical
  Recipes' gser/gcf, the continued fraction by the modified Lentz method).
- `ks_two_sample`: the two-sided two-sample KS test, as `scipy.stats.ks_2samp(a, b)` (method "auto"): the exact
  lattice-path probability (Hodges 1958; the recursion on probabilities of Viehmann 2021) up to 10,000 values per
  sample, else `kstwo_sf` at the effective size.
- `kstwo_sf`: the one-sample two-sided KS distribution, as `scipy.stats.kstwo.sf`: Durbin's matrix where it is
  exact and cheap, Birnbaum and Tingey's one-sided sum (`smirnov_sf`, as `scipy.special.smirnov`) doubled where
  the two tails cannot both be crossed or their overlap is negligible, Pelz and Good's series for large n.
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


# --- Kolmogorov-Smirnov --------------------------------------------------------------------------------------------
# scipy.stats.ks_2samp(method="auto") takes the exact path when both samples have at most this many values, else the
# asymptotic one (kstwo.sf of the statistic at n = round(n1 * n2 / (n1 + n2))); the branches of `kstwo_sf` below are
# the ones scipy's kstwo takes, so that where scipy uses an approximation we use the same one.
EXACT_MAX_N = 10_000
_SMIRNOV_MAX_EXACT_N = 1_000_000  # above: scipy's smirnov uses exp(-(6nx + 1)^2 / (18 n))
_MIN_LOG = math.log(2.0**-1022) - 52 * math.log(2.0)  # below: exp underflows to 0
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def ks_two_sample(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sided two-sample Kolmogorov-Smirnov statistic and p-value, as `scipy.stats.ks_2samp(a, b)`."""
    statistic = ks_statistic(a, b)
    return statistic, ks_two_sample_p_value(statistic, np.size(a), np.size(b))


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """The largest gap between the two samples' empirical CDFs."""
    x = np.sort(np.asarray(a, dtype=float))
    y = np.sort(np.asarray(b, dtype=float))
    if not x.size or not y.size:
        raise ValueError("the KS test needs at least one value in each sample")
    pooled = np.concatenate([x, y])
    gaps = np.searchsorted(x, pooled, side="right") / x.size - np.searchsorted(y, pooled, side="right") / y.size
    return float(np.max(np.abs(gaps)))


def ks_two_sample_p_value(statistic: float, n1: int, n2: int) -> float:
    """P(D >= statistic) for samples of n1 and n2 values: exact up to EXACT_MAX_N values each, else asymptotic."""
    if max(n1, n2) <= EXACT_MAX_N:
        exact = _exact_two_sample_p(statistic, n1, n2)
        if exact is not None:
            return exact
    m, n = float(max(n1, n2)), float(min(n1, n2))
    return min(max(kstwo_sf(statistic, round(m * n / (m + n))), 0.0), 1.0)


def _exact_two_sample_p(statistic: float, n1: int, n2: int) -> float | None:
    """The share of the C(n1 + n2, n1) equally likely orderings whose ECDF gap reaches the statistic (the lattice
    paths leaving the band |i/n1 - j/n2| < h/lcm); None when it cannot be computed in floating point."""
    g = math.gcd(n1, n2)
    lcm = (n1 // g) * n2
    h = round(statistic * lcm)
    if h == 0:
        return 1.0
    p = _outside_square(n1, h) if n1 == n2 else _outside_band(n1, n2, g, h)
    return p if 0.0 <= p <= 1.0 else None


def _outside_square(n: int, h: int) -> float:
    """Equal sizes: 2 * sum_k (-1)^(k-1) C(2n, n - kh) / C(2n, n), nested so no term is formed on its own."""
    total = 0.0
    for k in range(n // h, -1, -1):
        ratio = 1.0  # C(2n, n - kh) / C(2n, n - (k-1)h)
        for j in range(h):
            ratio = ratio * (n - k * h - j) / (n + k * h + j + 1)
        total = ratio * (1.0 - total)
    return 2.0 * total


def _outside_band(n1: int, n2: int, g: int, h: int) -> float:
    """Unequal sizes: the probability that a uniformly random lattice path from (0, 0) to (m, n) leaves the band,
    by the recursion u(i, j) = (i u(i-1, j) + j u(i, j-1)) / (i + j) on the probabilities, outside cells worth 1
    (no binomial coefficient is formed, so nothing overflows)."""
    m, n = max(n1, n2), min(n1, n2)
    mg, ng = m // g, n // g
    # column i holds j in [low, high): the cells inside the band, |ng * i - mg * j| < h
    low, high = 0, min(math.ceil(h / mg), n + 1)
    column = [0.0] * (high - low)  # column 0: j < h / mg is inside and still on the start, so 0 ways out
    for i in range(1, m + 1):
        new_low = min(max((ng * i - h) // mg + 1, 0), n)
        new_high = min(-(-(ng * i + h) // mg), n + 1)
        if new_high <= new_low:
            return 1.0
        below = 0.0 if new_low == 0 else 1.0  # the cell under the band has left it
        new_column = []
        for j in range(new_low, new_high):
            left = column[j - low] if low <= j < high else 1.0
            below = (left * i + below * j) / (i + j)
            new_column.append(below)
        column, low, high = new_column, new_low, new_high
    return column[-1]


def kstwo_sf(x: float, n: int) -> float:
    """P(D_n >= x) for the one-sample two-sided KS statistic of n values, as `scipy.stats.kstwo.sf(x, n)`
    (Simard and L'Ecuyer's choice of method by n and n x^2)."""
    if math.isnan(x):
        return math.nan
    if x >= 1.0:
        return 0.0
    t = n * x
    if t <= 0.5:
        return 1.0
    if t <= 1.0:  # Ruben-Gambino: P(D_n <= x) = n!/n^n (2t - 1)^n
        return 1.0 - math.exp(math.lgamma(n + 1) - n * math.log(n) + n * math.log(2 * t - 1))
    if t >= n - 1:
        return 2.0 * (1.0 - x) ** n
    if x >= 0.5:  # the two one-sided events are disjoint
        return 2.0 * smirnov_sf(n, x)
    nx2 = t * x
    if n <= 140:
        return 1.0 - _durbin_cdf(n, x) if nx2 <= 4.0 else 2.0 * smirnov_sf(n, x)
    if nx2 >= 370.0:
        return 0.0
    if nx2 >= 2.2:
        return 2.0 * smirnov_sf(n, x)
    if n <= 100_000 and n * x**1.5 <= 1.4:
        return 1.0 - _durbin_cdf(n, x)
    return 1.0 - _pelz_good_cdf(n, x)


def smirnov_sf(n: int, x: float) -> float:
    """P(D_n^+ >= x), the one-sided KS statistic, as `scipy.special.smirnov(n, x)`: Birnbaum and Tingey's sum of
    positive terms, each formed in logarithms (so no binomial coefficient or power overflows)."""
    if n == 1:
        return 1.0 - x
    if x <= 0.0:
        return 1.0
    if x >= 1.0:
        return 0.0
    if -2.0 * n * x * x < _MIN_LOG:
        return 0.0
    if n > _SMIRNOV_MAX_EXACT_N:
        log_p = -((6.0 * n * x + 1.0) ** 2) / 18.0 / n
        return math.exp(log_p) if log_p < -math.log(2.0) else 1.0 + math.expm1(log_p)
    j = np.arange(0, math.floor(n * (1.0 - x)) + 1, dtype=float)
    rest = ((n - j) - n * x) / n  # 1 - x - j/n, formed without cancelling n x against 1
    keep = rest > 0
    j, rest = j[keep], rest[keep]
    log_binomial = math.lgamma(n + 1) - _lgamma(j + 1) - _lgamma(n - j + 1)
    log_terms = log_binomial + (n - j) * np.log(rest) + (j - 1) * np.log(x + j / n)
    return min(max(float(x * np.sum(np.exp(log_terms))), 0.0), 1.0)


_SMALL_LGAMMA = np.array([math.lgamma(v) if v > 0 else math.inf for v in range(16)])


def _lgamma(values: np.ndarray) -> np.ndarray:
    """log Gamma of positive integers: a table below 16, Stirling's series above (its error there is below the
    rounding of the result), vectorised, as a sum may need a million of them."""
    z = np.asarray(values, dtype=float)
    small = z < 16
    big = np.where(small, 16.0, z)
    inverse = 1.0 / big
    inverse2 = inverse * inverse
    series = inverse * (1 / 12 - inverse2 * (1 / 360 - inverse2 * (1 / 1260 - inverse2 / 1680)))
    stirling = (big - 0.5) * np.log(big) - big + _LOG_SQRT_2PI + series
    return np.where(small, _SMALL_LGAMMA[np.where(small, z, 0).astype(int)], stirling)


def _durbin_cdf(n: int, x: float) -> float:
    """P(D_n <= x) exactly, by Durbin's matrix (Marsaglia, Tsang and Wang 2003): n!/n^n (H^n)[k, k], the power
    taken by squaring with the powers of two kept apart so that nothing overflows."""
    nx = n * x
    k = math.ceil(nx)
    h = k - nx
    m = 2 * k - 1
    i = np.arange(m)
    lag = i[:, None] - i[None, :] + 1  # H[i, j] = 1/(i - j + 1)! below the superdiagonal, 0 above
    factorials = np.array([math.factorial(v) if v > 0 else 1 for v in range(m + 1)], dtype=float)
    H = np.where(lag >= 0, 1.0 / factorials[np.clip(lag, 0, m)], 0.0)
    powers = h ** (i + 1.0)
    H[:, 0] -= powers / factorials[i + 1]
    H[m - 1, :] -= powers[::-1] / factorials[i[::-1] + 1]
    H[m - 1, 0] += (max(2.0 * h - 1.0, 0.0) ** m) / factorials[m]
    result, result_exp = np.eye(m), 0
    square, square_exp = H, 0
    power = n
    while power:
        if power & 1:
            result, result_exp = _rescaled(result @ square, result_exp + square_exp)
        power >>= 1
        if power:
            square, square_exp = _rescaled(square @ square, 2 * square_exp)
    entry = float(result[k - 1, k - 1])
    if entry <= 0.0:
        return 0.0
    log_cdf = math.log(entry) + result_exp * math.log(2.0) + math.lgamma(n + 1) - n * math.log(n)
    return min(math.exp(log_cdf), 1.0)


def _rescaled(matrix: np.ndarray, exponent: int) -> tuple[np.ndarray, int]:
    """The matrix scaled by a power of two so its largest entry is about 1, and the exponent that restores it."""
    largest = float(np.max(np.abs(matrix)))
    if largest == 0.0:
        return matrix, exponent
    _, shift = math.frexp(largest)
    return np.ldexp(matrix, -shift), exponent + shift


def _pelz_good_cdf(n: int, x: float) -> float:
    """Pelz and Good's (1976) asymptotic series for P(D_n <= x): K0(z) + K1(z)/sqrt(n) + K2(z)/n + K3(z)/n^1.5
    at z = x sqrt(n), in the theta-function form that converges fast for small z (Simard and L'Ecuyer, eq. 18-21)."""
    z = math.sqrt(n) * x
    z2 = z * z
    if -math.pi**2 / 8.0 / z2 < -708:
        return 0.0
    pi2 = math.pi**2
    count = math.ceil(16.0 * z / math.pi)
    odd = 2.0 * np.arange(1, count + 1) - 1.0  # 2k - 1
    a = pi2 * odd**2 / 4.0  # pi^2 (k - 1/2)^2
    weights = np.exp(-a / (2.0 * z2))
    sqrt_2pi = math.sqrt(2.0 * math.pi)
    k0 = sqrt_2pi / z * np.sum(weights)
    k1 = sqrt_2pi / (6.0 * z**4) * np.sum((a - z2) * weights)
    k2 = sqrt_2pi / (72.0 * z**7) * np.sum(
        (6 * z**6 + 2 * z**4 + (2 * z**4 - 5 * z2) * a + (1 - 2 * z2) * a**2) * weights)
    k3 = sqrt_2pi / (6480.0 * z**10) * np.sum(
        (-30 * z**6 - 90 * z**8 + (135 * z**4 - 96 * z**6) * a + (-60 * z2 + 212 * z**4) * a**2
         + (5 - 30 * z2) * a**3) * weights)
    whole = np.arange(1, count + 1, dtype=float)
    b = pi2 * whole**2  # pi^2 k^2
    whole_weights = np.exp(-b / (2.0 * z2))
    k2 -= sqrt_2pi / (36.0 * z**3) * np.sum(b * whole_weights)
    k3 += sqrt_2pi / (216.0 * z**6) * np.sum((3.0 * z2 - b) * b * whole_weights)
    return float(k0 + k1 / math.sqrt(n) + k2 / n + k3 / n**1.5)
