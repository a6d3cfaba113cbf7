"""stack_parameters: the pipeline config is the single source of the template's Parameters."""

from __future__ import annotations

from loopline.params import stack_parameters
from loopline_runtime.config import PipelineConfig, parse_config


def config(**overrides: object) -> PipelineConfig:
    data = {"name": "churn", "target": "y", "gate": {"threshold": 0.8}, "alarm": {"threshold": 0.75}, **overrides}
    return parse_config(data)


def test_a_higher_is_better_metric_alarms_below_the_threshold():
    # when
    parameters = stack_parameters(config(metric="f1"))

    # then
    assert parameters["QualityMetric"] == "f1"
    assert parameters["AlarmComparisonOperator"] == "LessThanThreshold"
    assert parameters["AlarmThreshold"] == "0.75"
    assert parameters["PipelineName"] == "churn"


def test_an_error_metric_alarms_above_the_threshold():
    # when
    parameters = stack_parameters(config(metric="rmse", task="regression"))

    # then
    assert parameters["AlarmComparisonOperator"] == "GreaterThanThreshold"


def test_without_a_metric_the_task_default_is_used_and_f1_without_a_task():
    # when
    regression = stack_parameters(config(task="regression"))
    unknown_task = stack_parameters(config())

    # then
    assert regression["QualityMetric"] == "r2"
    assert unknown_task["QualityMetric"] == "f1"


def test_alarm_settings_become_string_parameters():
    # when
    parameters = stack_parameters(
        config(alarm={"threshold": 1, "period_seconds": 10, "evaluation_periods": 3, "datapoints_to_alarm": 2,
                      "treat_missing_data": "ignore"})
    )  # fmt: skip

    # then
    assert {k: v for k, v in parameters.items() if k.startswith("Alarm")} == {
        "AlarmMetricName": "ModelQuality", "AlarmThreshold": "1", "AlarmComparisonOperator": "LessThanThreshold",
        "AlarmPeriodSeconds": "10",
        "AlarmEvaluationPeriods": "3", "AlarmDatapointsToAlarm": "2", "AlarmTreatMissingData": "ignore",
    }  # fmt: skip


def test_a_champion_relative_alarm_watches_the_drop_above_max_drop_for_every_metric():
    # when
    parameters = [stack_parameters(config(metric=metric, task=task, alarm={"max_drop": 0.1}))
                  for metric, task in (("f1", "classification"), ("rmse", "regression"), ("r2", "regression"))]

    # then the drop is positive when quality got worse, whatever the metric's direction
    for each in parameters:
        assert each["AlarmMetricName"] == "ModelQualityDrop"
        assert each["AlarmThreshold"] == "0.1"
        assert each["AlarmComparisonOperator"] == "GreaterThanThreshold"
