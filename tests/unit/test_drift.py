"""Drift: the reference profile, PSI, and the per-feature KS / chi-squared verdicts, checked against scipy."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from loopline_runtime.drift import (
    build_profile,
    measure_drift,
    population_stability_index,
)

REFERENCE_ROWS = 5000


@pytest.fixture
def normal_reference() -> pd.DataFrame:
    rng = np.random.default_rng(1234)
    return pd.DataFrame({"x": rng.normal(10.0, 2.0, REFERENCE_ROWS)})


@pytest.fixture
def normal_profile(normal_reference: pd.DataFrame) -> dict:
    return build_profile(normal_reference, {"x": "numeric"})


# --- PSI -----------------------------------------------------------------------------------------------------


def test_psi_matches_hand_computed_value() -> None:
    # given two bins, half/half expected and a quarter/three-quarters actual
    expected, actual = [0.5, 0.5], [0.25, 0.75]

    # when
    psi = population_stability_index(expected, actual)

    # then (0.25 - 0.5)·ln(0.25/0.5) + (0.75 - 0.5)·ln(0.75/0.5)
    assert psi == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert psi == pytest.approx(0.2746530721670274)


def test_psi_floors_empty_bins_at_eps() -> None:
    # given a bin that is empty in the reference but holds a quarter of the batch
    expected, actual = [0.5, 0.5, 0.0], [0.5, 0.25, 0.25]

    # when
    psi = population_stability_index(expected, actual, eps=1e-4)

    # then 0 + (0.25 - 0.5)·ln(0.5) + (0.25 - 1e-4)·ln(0.25 / 1e-4)
    assert psi == pytest.approx(2.1285158932529735)


def test_psi_of_identical_shares_is_zero_and_counts_are_normalised() -> None:
    # given / when
    same = population_stability_index([0.2, 0.3, 0.5], [0.2, 0.3, 0.5])
    counts = population_stability_index([50, 50], [25, 75])

    # then
    assert same == 0.0
    assert counts == pytest.approx(0.2746530721670274)


def test_psi_rejects_mismatched_bins() -> None:
    # given / when / then
    with pytest.raises(ValueError, match="same non-zero number of bins"):
        population_stability_index([0.5, 0.5], [1.0])


# --- numeric: PSI + KS ---------------------------------------------------------------------------------------


def test_same_normal_distribution_is_not_drift(normal_profile: dict) -> None:
    # given a fresh batch from the reference distribution
    batch = pd.DataFrame({"x": np.random.default_rng(11).normal(10.0, 2.0, 1000)})

    # when
    result = measure_drift(normal_profile, batch).feature("x")

    # then
    assert result.psi is not None and result.psi < 0.1
    assert result.p_value is not None and result.p_value > 0.05
    assert result.test == "ks"
    assert not result.drifted


def test_mean_shift_of_one_sigma_is_drift(normal_profile: dict) -> None:
    # given a batch whose mean moved by one standard deviation
    batch = pd.DataFrame({"x": np.random.default_rng(11).normal(12.0, 2.0, 1000)})

    # when
    report = measure_drift(normal_profile, batch)
    result = report.feature("x")

    # then
    assert result.psi is not None and result.psi > 0.2
    assert result.p_value is not None and result.p_value < 0.01
    assert result.drifted
    assert report.drifted_share == 1.0


def test_ks_equals_scipy_when_the_full_reference_is_stored() -> None:
    # given a reference small enough to be stored whole (values already at profile precision)
    rng = np.random.default_rng(3)
    reference = np.round(rng.normal(0.0, 1.0, 30), 3)
    batch = np.round(rng.normal(0.3, 1.0, 200), 3)
    profile = build_profile(pd.DataFrame({"x": reference}), {"x": "numeric"}, ks_points=32)

    # when
    result = measure_drift(profile, pd.DataFrame({"x": batch})).feature("x")

    # then
    expected = stats.ks_2samp(batch, reference)
    assert profile["features"]["x"]["ks_sample"] == sorted(reference.tolist())
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_ks_on_stored_quantiles_is_close_to_the_full_test_and_conservative(
    normal_reference: pd.DataFrame, normal_profile: dict
) -> None:
    # given a batch with a small shift, tested against the 32 stored quantiles of a 5000-row reference
    batch = np.random.default_rng(5).normal(10.3, 2.0, 2000)
    points = len(normal_profile["features"]["x"]["ks_sample"])

    # when
    result = measure_drift(normal_profile, pd.DataFrame({"x": batch})).feature("x")

    # then the statistic is within the quantile resolution of the full two-sample KS, and the p-value never
    # claims more evidence than the full test would
    full = stats.ks_2samp(batch, normal_reference["x"].to_numpy(), method="asymp")
    assert points == 32
    assert result.statistic == pytest.approx(full.statistic, abs=1 / (2 * points) + 1e-6)
    assert result.p_value is not None and result.p_value >= full.pvalue
    assert result.p_value < 0.01  # yet a 0.15 sigma shift on 2000 rows is still found


# --- categorical / boolean: PSI + chi-squared ----------------------------------------------------------------


def test_chi_squared_matches_scipy_on_a_hand_made_example() -> None:
    # given reference shares a: 0.5, b: 0.3, c: 0.2 and a batch of 40 a, 40 b, 20 c
    reference = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 20})
    batch = pd.DataFrame({"c": ["a"] * 40 + ["b"] * 40 + ["c"] * 20})
    profile = build_profile(reference, {"c": "categorical"})

    # when
    result = measure_drift(profile, batch).feature("c")

    # then (40-50)²/50 + (40-30)²/30 + 0 = 16/3
    expected = stats.chisquare([40, 40, 20], f_exp=[50, 30, 20])
    assert result.test == "chi2"
    assert result.statistic == pytest.approx(16 / 3)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.p_value == pytest.approx(math.exp(-8 / 3))  # chi² with 2 dof: sf(x) = exp(-x/2)


def test_unseen_levels_are_pooled_into_other() -> None:
    # given top-2 levels a, b (other = c at 0.2) and a batch with c and a never-seen z
    reference = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 20})
    batch = pd.DataFrame({"c": ["a"] * 45 + ["b"] * 25 + ["c"] * 10 + ["z"] * 20})
    profile = build_profile(reference, {"c": "categorical"}, top_k=2)

    # when
    result = measure_drift(profile, batch).feature("c")

    # then other observed = 10 + 20 against an expected 20
    expected = stats.chisquare([45, 25, 30], f_exp=[50, 30, 20])
    assert profile["features"]["c"]["levels"] == {"a": 0.5, "b": 0.3}
    assert profile["features"]["c"]["other"] == 0.2
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)


def test_a_level_never_seen_in_the_reference_is_drift_with_finite_statistics() -> None:
    # given a reference whose levels all fit in the top-K (no "other" mass) and a batch with a new level
    reference = pd.DataFrame({"c": ["a"] * 500 + ["b"] * 500})
    batch = pd.DataFrame({"c": ["a"] * 100 + ["b"] * 95 + ["new"] * 5})
    profile = build_profile(reference, {"c": "categorical"})

    # when
    report = measure_drift(profile, batch)
    result = report.feature("c")

    # then "other" is expected at the eps floor (1e-4 of 200 rows), so the statistic is large but finite
    shares = np.array([0.5, 0.5, 1e-4]) / 1.0001
    expected = stats.chisquare([100, 95, 5], f_exp=shares * 200)
    assert profile["features"]["c"]["other"] == 0.0
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value is not None and result.p_value < 1e-6
    assert result.drifted
    assert "5 value(s) of levels never seen in the reference" in result.notes
    json.dumps(report.to_dict(), allow_nan=False)


def test_categorical_shift_is_detected_and_unchanged_categories_are_not() -> None:
    # given a reference with shares 0.6 / 0.3 / 0.1
    rng = np.random.default_rng(21)
    levels, shares = ["red", "green", "blue"], [0.6, 0.3, 0.1]
    reference = pd.DataFrame({"c": rng.choice(levels, REFERENCE_ROWS, p=shares)})
    profile = build_profile(reference, {"c": "categorical"})
    same = pd.DataFrame({"c": rng.choice(levels, 1000, p=shares)})
    shifted = pd.DataFrame({"c": rng.choice(levels, 1000, p=[0.3, 0.3, 0.4])})

    # when
    unchanged = measure_drift(profile, same).feature("c")
    moved = measure_drift(profile, shifted).feature("c")

    # then
    assert unchanged.psi is not None and unchanged.psi < 0.05
    assert unchanged.p_value is not None and unchanged.p_value > 0.05
    assert not unchanged.drifted
    assert moved.psi is not None and moved.psi > 0.2
    assert moved.p_value is not None and moved.p_value < 1e-6
    assert moved.drifted


def test_boolean_spellings_are_one_level_and_a_shift_is_detected() -> None:
    # given a boolean reference (30% true) and batches spelled differently
    rng = np.random.default_rng(4)
    reference = pd.DataFrame({"b": rng.random(REFERENCE_ROWS) < 0.3})
    profile = build_profile(reference, {"b": "boolean"})
    same = pd.DataFrame({"b": np.where(rng.random(1000) < 0.3, "True", "false")})
    shifted = pd.DataFrame({"b": np.where(rng.random(1000) < 0.7, 1, 0)})

    # when
    unchanged = measure_drift(profile, same).feature("b")
    moved = measure_drift(profile, shifted).feature("b")

    # then
    assert set(profile["features"]["b"]["levels"]) == {"true", "false"}
    assert not unchanged.drifted and not unchanged.notes
    assert moved.drifted and moved.psi is not None and moved.psi > 0.5


def test_integer_codes_read_as_floats_keep_their_levels() -> None:
    # given integer category codes, and a batch where a null made pandas read them as floats
    reference = pd.DataFrame({"code": [1, 2, 3] * 100})
    batch = pd.DataFrame({"code": [1.0, 2.0, 3.0] * 100 + [np.nan]})

    # when
    result = measure_drift(build_profile(reference, {"code": "categorical"}), batch).feature("code")

    # then
    assert result.statistic == pytest.approx(0.0)
    assert not result.notes
    assert result.null_share == pytest.approx(1 / 301)


# --- the profile ---------------------------------------------------------------------------------------------


def test_profile_is_json_safe_and_small_for_thirty_numeric_features() -> None:
    # given 30 numeric columns of mixed scale, with nulls and infinities
    rng = np.random.default_rng(9)
    frame = pd.DataFrame({f"f{i}": rng.lognormal(i % 5, 1.0, 20_000) * 10 ** (i % 7) for i in range(30)})
    frame.iloc[::50, 0] = np.nan
    frame.iloc[::70, 1] = np.inf

    # when
    profile = build_profile(frame, {column: "numeric" for column in frame})

    # then
    text = json.dumps(profile, allow_nan=False)
    assert len(text.encode()) < 20_000
    first = profile["features"]["f0"]
    assert first["null_share"] == pytest.approx(0.02)
    assert len(first["edges"]) == 9 and first["edges"] == sorted(first["edges"])
    assert len(first["shares"]) == 10 and sum(first["shares"]) == pytest.approx(1.0, abs=1e-5)
    assert profile["features"]["f1"]["null_share"] == pytest.approx(286 / 20_000)  # inf is not a value


def test_discrete_numeric_edges_are_deduplicated() -> None:
    # given a column with few distinct values
    reference = pd.DataFrame({"n": [0] * 70 + [1] * 20 + [5] * 10})

    # when
    spec = build_profile(reference, {"n": "numeric"})["features"]["n"]

    # then bins are (-inf, 0], (0, 1], (1, inf): each point mass keeps its own bin
    assert spec["edges"] == [0.0, 1.0]
    assert spec["shares"] == [0.7, 0.2, 0.1]


def test_dates_are_skipped_and_unknown_kinds_rejected() -> None:
    # given
    frame = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=10), "x": range(10)})

    # when
    profile = build_profile(frame, {"when": "date", "x": "numeric"})
    report = measure_drift(profile, frame)

    # then
    assert list(profile["features"]) == ["x"]
    assert "when" in profile["skipped"]
    assert report.skipped == ("when",)
    with pytest.raises(ValueError, match="unknown kind 'text'"):
        build_profile(frame, {"x": "text"})
    with pytest.raises(ValueError, match="missing from the reference data: nope"):
        build_profile(frame, {"nope": "numeric"})


# --- edge cases ----------------------------------------------------------------------------------------------


def test_missing_feature_is_reported_and_counts_as_drifted(normal_reference: pd.DataFrame) -> None:
    # given a profile of two features and a batch that lacks one
    reference = normal_reference.assign(y=normal_reference["x"] * 2)
    profile = build_profile(reference, {"x": "numeric", "y": "numeric"})
    batch = pd.DataFrame({"x": np.random.default_rng(17).normal(10.0, 2.0, 500)})

    # when
    report = measure_drift(profile, batch)

    # then
    missing = report.feature("y")
    assert missing.missing and missing.drifted and missing.psi is None
    assert not report.feature("x").drifted
    assert report.drifted == ("y",)
    assert report.drifted_share == 0.5


def test_all_null_batch_column_is_drift_by_null_share(normal_profile: dict) -> None:
    # given a batch where the feature is entirely null
    batch = pd.DataFrame({"x": [None] * 200})

    # when
    result = measure_drift(normal_profile, batch).feature("x")

    # then the null bin carries the PSI; KS has nothing to test
    assert result.statistic is None and result.p_value is None
    assert result.null_share == 1.0
    assert result.psi == pytest.approx(population_stability_index([0.1] * 10 + [0.0], [0.0] * 10 + [1.0]))
    assert result.drifted


def test_all_null_reference_column_profiles_and_measures() -> None:
    # given a reference column with no values at all
    profile = build_profile(pd.DataFrame({"x": [np.nan] * 50}), {"x": "numeric"})

    # when
    still_null = measure_drift(profile, pd.DataFrame({"x": [np.nan] * 150})).feature("x")
    filled = measure_drift(profile, pd.DataFrame({"x": np.arange(150.0)})).feature("x")

    # then
    json.dumps(profile, allow_nan=False)
    assert profile["features"]["x"] == {
        "kind": "numeric", "count": 0, "null_share": 1.0, "edges": [], "shares": [0.0], "ks_sample": [],
    }  # fmt: skip
    assert still_null.psi == 0.0 and not still_null.drifted
    assert filled.drifted and filled.statistic is None


def test_constant_reference_column(normal_reference: pd.DataFrame) -> None:
    # given a constant reference column
    profile = build_profile(pd.DataFrame({"k": [3.0] * 1000}), {"k": "numeric"})

    # when
    same = measure_drift(profile, pd.DataFrame({"k": [3.0] * 200})).feature("k")
    moved = measure_drift(profile, pd.DataFrame({"k": [4.0] * 200})).feature("k")

    # then
    assert profile["features"]["k"]["edges"] == [3.0]
    assert same.psi == 0.0 and same.statistic == 0.0 and not same.drifted
    assert moved.statistic == 1.0 and moved.p_value is not None and moved.p_value < 1e-10
    assert moved.drifted


def test_tiny_batch_still_gets_statistics_with_a_low_power_note(normal_profile: dict) -> None:
    # given three rows from the reference distribution
    batch = pd.DataFrame({"x": [9.5, 10.2, 11.0]})

    # when
    result = measure_drift(normal_profile, batch).feature("x")

    # then statistics exist, PSI is large by noise alone but does not decide, KS finds nothing
    assert result.psi is not None and result.psi > 0.2
    assert result.statistic is not None and result.p_value is not None and result.p_value > 0.05
    assert not result.drifted
    assert any("low power" in note for note in result.notes)
    assert any("PSI not used" in note for note in result.notes)


def test_non_numeric_junk_is_coerced_to_null(normal_profile: dict) -> None:
    # given a numeric column with junk strings and an infinity
    batch = pd.DataFrame({"x": ["9.8", "abc", 10.4, "", float("inf"), "11.1"]})

    # when
    result = measure_drift(normal_profile, batch).feature("x")

    # then only the three numbers are tested
    assert result.rows == 3
    assert result.null_share == pytest.approx(0.5)
    expected = stats.ks_2samp([9.8, 10.4, 11.1], normal_profile["features"]["x"]["ks_sample"])
    assert result.statistic == pytest.approx(expected.statistic)


def test_report_aggregates_and_is_json_safe(normal_reference: pd.DataFrame) -> None:
    # given one feature that moved and two that did not
    rng = np.random.default_rng(13)
    reference = normal_reference.assign(
        y=rng.normal(0.0, 1.0, REFERENCE_ROWS), c=rng.choice(["a", "b"], REFERENCE_ROWS)
    )
    profile = build_profile(reference, {"x": "numeric", "y": "numeric", "c": "categorical"})
    batch = pd.DataFrame(
        {"x": rng.normal(14.0, 2.0, 800), "y": rng.normal(0.0, 1.0, 800), "c": rng.choice(["a", "b"], 800)}
    )

    # when
    report = measure_drift(profile, batch)
    data = report.to_dict()

    # then
    json.dumps(data, allow_nan=False)
    assert report.drifted == ("x",)
    assert report.drifted_share == pytest.approx(1 / 3)
    assert report.max_psi == max(f.psi for f in report.features if f.psi is not None)
    assert report.max_psi == report.feature("x").psi
    assert data["drifted_share"] == pytest.approx(1 / 3)
    assert data["rule"] == {"psi_threshold": 0.2, "p_value": 0.05, "min_psi_rows": 100}
    assert [f["name"] for f in data["features"]] == ["x", "y", "c"]
    with pytest.raises(AttributeError):
        report.rows = 1  # type: ignore[misc]
