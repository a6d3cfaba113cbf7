"""The drift tests' p-values without scipy equal scipy's to 1e-9 (scipy stays a dev dependency, for this check)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from loopline_runtime.drift_tests import chi_squared_sf, chi_squared_test

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
