"""The two optional watchers are off unless pipeline.yaml turns them on: scheduled retraining (training.schedule)
and the alarm on the quality estimated without labels (alarm.estimated_max_drop)."""

from __future__ import annotations

from typing import Any

from loopline.params import stack_parameters
from loopline_runtime.config import PipelineConfig
from tests.support.stack import REGION
from tests.support.translated import translated_template


def _config(pipeline_config: PipelineConfig, **changes: Any) -> PipelineConfig:
    data = pipeline_config.model_dump(mode="json")
    for section, values in changes.items():
        data[section] = {**data[section], **values}
    return PipelineConfig.model_validate(data)


def test_without_settings_the_schedule_is_disabled_and_the_estimate_has_no_alarm(pipeline_config: PipelineConfig):
    # when
    parameters = stack_parameters(pipeline_config)

    # then
    assert parameters["RetrainingScheduleState"] == "DISABLED" and "RetrainingSchedule" not in parameters
    assert parameters["EstimatedQualityMaxDrop"] == "0"


def test_the_settings_enable_the_schedule_and_the_estimate_alarm(pipeline_config: PipelineConfig):
    # when
    parameters = stack_parameters(_config(pipeline_config, training={"schedule": "rate(7 days)"},
                                          alarm={"estimated_max_drop": 0.08}))

    # then
    assert parameters["RetrainingScheduleState"] == "ENABLED"
    assert parameters["RetrainingSchedule"] == "rate(7 days)"
    assert parameters["EstimatedQualityMaxDrop"] == "0.08"


def test_the_schedule_starts_the_training_state_machine_and_the_estimate_alarm_only_notifies(
        template: dict[str, Any], pipeline_config: PipelineConfig):
    # given the template as CloudFormation sees it
    parameters = {name: str(spec["Default"]) for name, spec in template["Parameters"].items() if "Default" in spec}
    parameters.update(stack_parameters(pipeline_config))
    translated = translated_template(template, parameters, REGION)["Resources"]

    # then a schedule rule targets the training state machine with reason "schedule", in the state set by the config
    (rule,) = [r["Properties"] for r in translated.values() if r["Type"] == "AWS::Events::Rule"
               and r["Properties"].get("ScheduleExpression") == {"Ref": "RetrainingSchedule"}]
    assert rule["State"] == {"Ref": "RetrainingScheduleState"}
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": "TrainingStateMachine"} and target["Input"] == '{"reason": "schedule"}'
    # and the estimate's alarm exists only under its condition, watching the drop, with notifications as its only
    # actions (no EventBridge rule starts training on it)
    alarm = translated["EstimatedQualityAlarm"]
    assert alarm["Condition"] == "AlarmOnEstimatedQuality"
    assert alarm["Properties"]["MetricName"] == "EstimatedModelQualityDrop"
    assert template["Conditions"]["AlarmOnEstimatedQuality"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "EstimatedQualityMaxDrop"}, "0"]}]}
    watched = [r for r in translated.values() if r["Type"] == "AWS::Events::Rule"
               and "EstimatedQualityAlarm" in str(r["Properties"].get("EventPattern"))]
    assert watched == []
