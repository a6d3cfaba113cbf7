"""CloudWatch's metric-alarm rule, case by case: every comparison operator, M of N, every TreatMissingData mode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loopline.emulator.alarm_evaluation import AlarmDefinition, Datapoint, evaluate_alarm, statistic

NOW = datetime(2026, 1, 1, 12, 0, 25, tzinfo=UTC)  # inside the period [12:00:20, 12:00:30)
PERIOD = 10


def definition(operator: str = "LessThanThreshold", *, n: int = 1, m: int | None = None, missing: str = "missing",
               stat: str = "Average", threshold: float = 0.9) -> AlarmDefinition:
    return AlarmDefinition(statistic=stat, period_seconds=PERIOD, evaluation_periods=n, threshold=threshold,
                           comparison_operator=operator, datapoints_to_alarm=m, treat_missing_data=missing)


def in_period(periods_ago: int, value: float) -> Datapoint:
    """A datapoint inside the period `periods_ago` periods before the current one (0 = current)."""
    return Datapoint.single(NOW - timedelta(seconds=PERIOD * periods_ago + 1), value)


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("LessThanThreshold", 0.89, "ALARM"),
        ("LessThanThreshold", 0.90, "OK"),
        ("LessThanThreshold", 0.91, "OK"),
        ("LessThanOrEqualToThreshold", 0.89, "ALARM"),
        ("LessThanOrEqualToThreshold", 0.90, "ALARM"),
        ("LessThanOrEqualToThreshold", 0.91, "OK"),
        ("GreaterThanThreshold", 0.89, "OK"),
        ("GreaterThanThreshold", 0.90, "OK"),
        ("GreaterThanThreshold", 0.91, "ALARM"),
        ("GreaterThanOrEqualToThreshold", 0.89, "OK"),
        ("GreaterThanOrEqualToThreshold", 0.90, "ALARM"),
        ("GreaterThanOrEqualToThreshold", 0.91, "ALARM"),
    ],
)
def test_each_comparison_operator_below_at_and_above_the_threshold(operator: str, value: float,
                                                                    expected: str) -> None:
    # given one datapoint in the current period
    # when the alarm is evaluated
    outcome = evaluate_alarm([in_period(0, value)], definition(operator), NOW, "INSUFFICIENT_DATA")

    # then the operator decides
    assert outcome.state == expected


@pytest.mark.parametrize(
    ("values", "m", "expected"),
    [
        ([0.5, 0.95, 0.95], 2, "OK"),  # 1 of 3 breaching, 2 needed
        ([0.5, 0.5, 0.95], 2, "ALARM"),  # 2 of 3
        ([0.95, 0.5, 0.5], 2, "ALARM"),  # order does not matter
        ([0.5, 0.5, 0.95], 3, "OK"),  # 3 of 3 needed
        ([0.5, 0.5, 0.5], 3, "ALARM"),
        ([0.5, 0.95, 0.95], None, "OK"),  # DatapointsToAlarm unset means N of N
        ([0.5, 0.5, 0.5], None, "ALARM"),
    ],
)
def test_datapoints_to_alarm_m_of_n(values: list[float], m: int | None, expected: str) -> None:
    # given one datapoint in each of the last three periods (newest first)
    points = [in_period(age, value) for age, value in enumerate(values)]

    # when a 3-period alarm needing m breaching periods is evaluated
    outcome = evaluate_alarm(points, definition(n=3, m=m), NOW, "OK")

    # then
    assert outcome.state == expected


@pytest.mark.parametrize(
    ("mode", "current", "expected"),
    [
        ("missing", "ALARM", "INSUFFICIENT_DATA"),
        ("missing", "OK", "INSUFFICIENT_DATA"),
        ("ignore", "ALARM", "ALARM"),
        ("ignore", "OK", "OK"),
        ("breaching", "OK", "ALARM"),
        ("notBreaching", "ALARM", "OK"),
    ],
)
def test_treat_missing_data_when_every_period_is_missing(mode: str, current: str, expected: str) -> None:
    outcome = evaluate_alarm([], definition(n=3, m=2, missing=mode), NOW, current)
    assert outcome.state == expected


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("breaching", "ALARM"),  # 1 breaching + 2 missing counted as breaching >= 2
        ("notBreaching", "OK"),  # missing periods count as good
        ("missing", "OK"),  # missing periods are left out: 1 breaching < 2
        ("ignore", "OK"),
    ],
)
def test_treat_missing_data_with_some_periods_missing(mode: str, expected: str) -> None:
    # given one breaching datapoint in the newest of three periods, the other two missing
    # when a 2-of-3 alarm is evaluated
    outcome = evaluate_alarm([in_period(0, 0.5)], definition(n=3, m=2, missing=mode), NOW, "OK")

    # then the mode decides how the gaps count
    assert outcome.state == expected


def test_the_statistic_is_taken_over_each_period() -> None:
    # given two datapoints in the current period
    points = [in_period(0, 0.6), in_period(0, 1.0)]

    # then Average/Minimum/Maximum/Sum/SampleCount are CloudWatch's per-period statistics
    assert statistic("Average", points) == pytest.approx(0.8)
    assert statistic("Minimum", points) == 0.6
    assert statistic("Maximum", points) == 1.0
    assert statistic("Sum", points) == pytest.approx(1.6)
    assert statistic("SampleCount", points) == 2
    assert evaluate_alarm(points, definition(stat="Minimum"), NOW, "OK").state == "ALARM"
    assert evaluate_alarm(points, definition(stat="Maximum"), NOW, "OK").state == "OK"


def test_a_datapoint_older_than_the_evaluation_range_does_not_count() -> None:
    outcome = evaluate_alarm([in_period(3, 0.1)], definition(n=3, missing="notBreaching"), NOW, "ALARM")
    assert outcome.state == "OK"
