"""moto gaps: CloudWatch never evaluates alarms and emits no "CloudWatch Alarm State Change" events."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any


def alarm_with_queue(aws: Callable[[str], Any], treat_missing_data: str = "ignore") -> tuple[str, str, str]:
    """An alarm on a fresh metric and an SQS queue receiving its state-change events: (alarm, metric, queue url)."""
    suffix = uuid.uuid4().hex[:8]
    alarm, metric = f"quality-{suffix}", f"Quality{suffix}"
    aws("cloudwatch").put_metric_alarm(
        AlarmName=alarm, Namespace="Test", MetricName=metric, Dimensions=[{"Name": "Pipeline", "Value": "p"}],
        Statistic="Average", Period=10, EvaluationPeriods=1, DatapointsToAlarm=1, Threshold=0.9,
        ComparisonOperator="LessThanThreshold", TreatMissingData=treat_missing_data,
    )  # fmt: skip
    alarm_arn = aws("cloudwatch").describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["AlarmArn"]
    queue_url = aws("sqs").create_queue(QueueName=f"q-{suffix}")["QueueUrl"]
    queue_arn = aws("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    pattern = {"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"], "resources": [alarm_arn]}
    aws("events").put_rule(Name=f"r-{suffix}", EventPattern=json.dumps(pattern))
    aws("events").put_targets(Rule=f"r-{suffix}", Targets=[{"Id": "q", "Arn": queue_arn}])
    return alarm, metric, queue_url


def received(aws: Callable[[str], Any], queue_url: str) -> list[dict[str, Any]]:
    messages = aws("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def test_a_breaching_datapoint_puts_the_alarm_in_alarm_and_emits_the_state_change_event(aws):
    # given
    alarm, metric, queue_url = alarm_with_queue(aws)

    # when
    aws("cloudwatch").put_metric_data(
        Namespace="Test",
        MetricData=[{"MetricName": metric, "Dimensions": [{"Name": "Pipeline", "Value": "p"}], "Value": 0.5,
                     "StorageResolution": 1}],
    )  # fmt: skip

    # then
    state = aws("cloudwatch").describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]
    assert state["StateValue"] == "ALARM"
    assert "less than the threshold (0.9)" in state["StateReason"]
    assert json.loads(state["StateReasonData"])["recentDatapoints"] == [0.5]
    (event,) = received(aws, queue_url)
    assert event["source"] == "aws.cloudwatch"
    assert event["detail-type"] == "CloudWatch Alarm State Change"
    assert event["resources"] == [state["AlarmArn"]]
    assert event["detail"]["alarmName"] == alarm
    assert event["detail"]["state"]["value"] == "ALARM"
    assert event["detail"]["previousState"]["value"] == "OK"
    assert event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["name"] == metric


def test_a_datapoint_on_other_dimensions_does_not_change_the_alarm(aws):
    # given
    alarm, metric, queue_url = alarm_with_queue(aws)

    # when
    aws("cloudwatch").put_metric_data(
        Namespace="Test",
        MetricData=[{"MetricName": metric, "Dimensions": [{"Name": "Pipeline", "Value": "other"}], "Value": 0.1}],
    )

    # then
    assert aws("cloudwatch").describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"] == "OK"
    assert received(aws, queue_url) == []


def test_missing_data_treated_as_missing_makes_the_alarm_insufficient_data_on_the_timer(aws):
    # given
    alarm, _, _ = alarm_with_queue(aws, treat_missing_data="missing")

    # when (the timer ticks every second in these tests)
    deadline = time.time() + 5
    state = "OK"
    while time.time() < deadline and state == "OK":
        time.sleep(0.3)
        state = aws("cloudwatch").describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"]

    # then
    assert state == "INSUFFICIENT_DATA"


def test_set_alarm_state_emits_the_state_change_event_too(aws):
    # given
    alarm, _, queue_url = alarm_with_queue(aws)

    # when
    aws("cloudwatch").set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="testing the retrain loop")

    # then
    (event,) = received(aws, queue_url)
    assert event["detail"]["state"] == {"value": "ALARM", "reason": "testing the retrain loop",
                                        "timestamp": event["detail"]["state"]["timestamp"]}  # fmt: skip
