"""evaluate_alarm: CloudWatch's metric alarm rule, without moto (a few cases; more may follow)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from loopline.emulator.alarm_evaluation import AlarmDefinition, Datapoint, evaluate_alarm

NOW = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)


def alarm(**overrides: object) -> AlarmDefinition:
    settings: dict[str, object] = {
        "statistic": "Average", "period_seconds": 10, "evaluation_periods": 1, "threshold": 0.9,
        "comparison_operator": "LessThanThreshold", "treat_missing_data": "missing", **overrides,
    }  # fmt: skip
    return AlarmDefinition(**settings)  # type: ignore[arg-type]


def point(seconds_ago: float, value: float) -> Datapoint:
    return Datapoint.single(NOW - timedelta(seconds=seconds_ago), value)


def test_the_period_average_below_the_threshold_is_alarm():
    # when
    outcome = evaluate_alarm([point(1, 0.7), point(2, 0.8)], alarm(), NOW, "OK")

    # then
    assert outcome.state == "ALARM"
    assert "less than the threshold (0.9)" in outcome.reason
    assert outcome.reason_data["recentDatapoints"] == [0.75]


def test_m_of_n_needs_m_breaching_periods():
    # given
    definition = alarm(evaluation_periods=3, datapoints_to_alarm=2)

    # when
    one = evaluate_alarm([point(0, 0.5), point(10, 0.95), point(20, 0.95)], definition, NOW, "OK")
    two = evaluate_alarm([point(0, 0.5), point(10, 0.5), point(20, 0.95)], definition, NOW, "OK")

    # then
    assert (one.state, two.state) == ("OK", "ALARM")


def test_all_missing_follows_treat_missing_data():
    # when
    states = {
        mode: evaluate_alarm([], alarm(treat_missing_data=mode), NOW, "ALARM").state
        for mode in ("missing", "ignore", "breaching", "notBreaching")
    }

    # then
    assert states == {"missing": "INSUFFICIENT_DATA", "ignore": "ALARM", "breaching": "ALARM", "notBreaching": "OK"}


def test_old_datapoints_outside_the_evaluation_range_do_not_count():
    # when
    outcome = evaluate_alarm([point(60, 0.1)], alarm(treat_missing_data="notBreaching"), NOW, "ALARM")

    # then
    assert outcome.state == "OK"
