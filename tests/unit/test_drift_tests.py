"""The drift tests' p-values without scipy equal scipy's to 1e-9 (scipy stays a dev dependency, for this check)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from loopline_runtime.drift_tests import (
    chi_squared_sf,
    chi_squared_test,
    ks_two_sample,
    kstwo_sf,
    smirnov_sf,
)

TOLERANCE = 1e-9
DEGREES = [1, 2, 3, 4, 5, 7, 10, 19, 20, 49, 50, 99, 100, 250, 500, 1000]
# around the mean (dof), far below and far above it, and the edges
POINTS = [0.0, 1e-12, 1e-6, 0.01, 0.5, 1.0, 2.0, 3.5, 10.0, 25.0, 60.0, 150.0, 400.0, 1000.0, 3000.0]


@pytest.mark.parametrize("dof", DEGREES)
def test_the_chi_squared_survival_function_equals_scipy_s(dof: int) -> None:
    # given points spread over the distribution and relative to its mean
    points = sorted({*POINTS, dof * 0.5, dof - 1.0, float(dof), dof + 1.0, dof * 1.5, dof * 3.0} - {-1.0})
    points = [x for x in points if x >= 0]

    # when
    ours = np.array([chi_squared_sf(x, dof) for x in points])
    theirs = stats.chi2.sf(points, dof)

    # then
    np.testing.assert_allclose(ours, theirs, rtol=TOLERANCE, atol=TOLERANCE)


def test_pearson_s_test_equals_scipy_s_chisquare_on_a_corpus_of_count_tables() -> None:
    # given seeded tables of counts: few and many cells, small and large totals, matching and drifted shares
    rng = np.random.default_rng(7)
    cases = []
    for cells, total in itertools.product([2, 3, 5, 12, 51], [10, 200, 5_000, 1_000_000]):
        shares = rng.dirichlet(np.ones(cells))
        drifted = rng.dirichlet(np.ones(cells))
        for truth in (shares, drifted):
            observed = rng.multinomial(total, truth).astype(float)
            cases.append((observed, shares * observed.sum()))

    # when / then every statistic and p-value agrees with scipy's
    for observed, expected in cases:
        ours = chi_squared_test(observed, expected)
        theirs = stats.chisquare(observed, f_exp=expected)
        assert ours[0] == pytest.approx(float(theirs.statistic), rel=TOLERANCE, abs=TOLERANCE)
        assert ours[1] == pytest.approx(float(theirs.pvalue), rel=TOLERANCE, abs=TOLERANCE)


def test_the_survival_function_refuses_no_degrees_of_freedom() -> None:
    with pytest.raises(ValueError, match="degrees of freedom must be positive"):
        chi_squared_sf(1.0, 0)


# effective sizes of the asymptotic path: small (scipy's n <= 140 branches), middling, and beyond 100,000 (Pelz-Good)
KSTWO_SIZES = [1, 2, 5, 10, 33, 80, 140, 141, 500, 2_000, 20_000, 100_000, 100_001, 2_000_000]


@pytest.mark.parametrize("n", KSTWO_SIZES)
def test_the_one_sample_ks_survival_function_equals_scipy_s_kstwo(n: int) -> None:
    # given statistics from below 1/(2n) to 1, dense where the p-value moves (around 1/sqrt(n)) and at every
    # cut-over scipy makes between its methods (n x^2 = 0.754693, 2.2, 4, 18, 370; n x^1.5 = 1.4; x = 0.5)
    cuts = [np.sqrt(c / n) for c in (0.754693, 2.2, 4.0, 18.0, 370.0)] + [(1.4 / n) ** (2 / 3), 0.5, 1 / n, 1 - 1 / n]
    # (fewer for large n, where scipy's own sum takes about a second a point)
    dense = 60 if n <= 20_000 else 8
    points = {*np.geomspace(0.1 / n, 1.0, dense), *np.linspace(0.2, 6.0, dense) / np.sqrt(n)}
    points |= {c * f for c in cuts for f in ((0.999, 1.0, 1.001) if n <= 20_000 else (0.999, 1.001))}
    points = sorted(x for x in points if 0.0 <= x <= 1.0)

    # when
    ours = np.array([kstwo_sf(x, n) for x in points])
    theirs = stats.kstwo.sf(points, n)

    # then
    np.testing.assert_allclose(ours, theirs, rtol=TOLERANCE, atol=TOLERANCE)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 100, 1_000, 20_000])
def test_the_one_sided_smirnov_survival_function_equals_scipy_s(n: int) -> None:
    # given
    points = sorted({*np.linspace(0.0, 1.0, 41), *np.geomspace(0.01, 3.0, 30) / np.sqrt(n)} - {-1.0})
    points = [x for x in points if x <= 1.0]

    # when / then
    from scipy import special

    np.testing.assert_allclose([smirnov_sf(n, x) for x in points], special.smirnov(n, points),
                               rtol=TOLERANCE, atol=TOLERANCE)


def _ks_corpus() -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded pairs of samples: the sizes monitoring meets (a batch against the stored reference of up to
    ks_points values, or two full samples), equal and unequal sizes on either side of scipy's exact limit
    (10,000), ties (rounded values, integers, booleans as 0/1), shifts from none to total."""
    rng = np.random.default_rng(11)
    pairs = []
    sizes = [(1, 1), (1, 7), (5, 5), (8, 32), (32, 32), (200, 32), (1_000, 32), (10_000, 32), (10_001, 32),
             (50_000, 32), (300, 250), (997, 1_003), (2_000, 2_000), (12_000, 12_000), (40_000, 9_000)]
    for (n1, n2), shift in itertools.product(sizes, (0.0, 0.05, 0.3, 3.0)):
        a = rng.normal(shift, 1.0, n1)
        b = rng.normal(0.0, 1.0, n2)
        pairs.append((a, b))
        pairs.append((np.round(a, 1), np.round(b, 1)))  # ties within and across the samples
    pairs.append((rng.integers(0, 2, 500).astype(float), rng.integers(0, 2, 32).astype(float)))
    pairs.append((rng.integers(0, 5, 3_000).astype(float), rng.integers(1, 6, 32).astype(float)))
    return pairs


def test_the_two_sample_ks_test_equals_scipy_s_ks_2samp_on_a_corpus_of_samples() -> None:
    # given the corpus
    corpus = _ks_corpus()

    # when / then every statistic and p-value agrees with scipy's default (method="auto")
    for a, b in corpus:
        statistic, p_value = ks_two_sample(a, b)
        theirs = stats.ks_2samp(a, b)
        where = f"sizes {a.size} and {b.size}"
        assert statistic == pytest.approx(float(theirs.statistic), rel=TOLERANCE, abs=TOLERANCE), where
        assert p_value == pytest.approx(float(theirs.pvalue), rel=TOLERANCE, abs=TOLERANCE), where


def test_the_two_sample_ks_test_refuses_an_empty_sample() -> None:
    with pytest.raises(ValueError, match="at least one value in each sample"):
        ks_two_sample(np.array([]), np.array([1.0]))
