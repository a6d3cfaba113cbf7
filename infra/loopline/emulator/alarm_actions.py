"""Gap: moto's CloudWatch never runs an alarm's actions. On every state change, publish to the SNS topics among
the new state's actions (AlarmActions, OKActions, InsufficientDataActions) the message CloudWatch sends: the
subject `ALARM: "<name>" in <region>` and the JSON document with the old and new state and the trigger."""

from __future__ import annotations

import json
import logging
from typing import Any

from moto.cloudwatch.models import Alarm
from moto.sns.models import sns_backends
from moto.utilities.arns import parse_arn

from loopline.emulator.topic_policies import cloudwatch_may_publish

LOG = logging.getLogger(__name__)
SUBJECT_LIMIT = 100  # SNS refuses longer subjects


def alarm_message(alarm: Alarm, previous_state: str, account_id: str, region: str) -> tuple[str, str]:
    """(subject, message) as CloudWatch publishes them for an alarm's state change."""
    moment = alarm.state_updated_timestamp
    message: dict[str, Any] = {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": account_id,
        "AlarmConfigurationUpdatedTimestamp": moment.isoformat(),
        "NewStateValue": alarm.state_value,
        "NewStateReason": alarm.state_reason,
        "StateChangeTime": moment.isoformat(),
        "Region": region,
        "AlarmArn": alarm.alarm_arn,
        "OldStateValue": previous_state,
        "Trigger": {
            "MetricName": alarm.metric_name,
            "Namespace": alarm.namespace,
            "Statistic": str(alarm.statistic or "").upper(),
            "Dimensions": [{"name": d.name, "value": d.value} for d in alarm.dimensions],
            "Period": int(alarm.period),
            "EvaluationPeriods": int(alarm.evaluation_periods),
            "ComparisonOperator": alarm.comparison_operator,
            "Threshold": float(alarm.threshold),
            "TreatMissingData": alarm.treat_missing_data,
        },
    }
    subject = f'{alarm.state_value}: "{alarm.name}" in {region}'
    return subject[:SUBJECT_LIMIT], json.dumps(message, default=str)


def run_alarm_actions(account_id: str, region: str, alarm: Alarm, previous_state: str) -> None:
    """Publish the state change to the SNS topics among the actions of the alarm's new state."""
    if not alarm.actions_enabled:
        return
    actions = {"ALARM": alarm.alarm_actions, "OK": alarm.ok_actions,
               "INSUFFICIENT_DATA": alarm.insufficient_data_actions}.get(alarm.state_value) or []
    topics = [arn for arn in actions if parse_arn(arn).service == "sns"]
    if not topics:
        return
    subject, message = alarm_message(alarm, previous_state, account_id, region)
    for topic in topics:
        if not cloudwatch_may_publish(topic, alarm.alarm_arn, account_id):
            # AWS: the action fails ("Failed to execute action") and the alarm's state changes anyway
            LOG.warning("alarm %s: the policy of topic %s does not allow cloudwatch.amazonaws.com to publish: "
                        "its %s action failed", alarm.name, topic, alarm.state_value)
            continue
        arn = parse_arn(topic)
        sns_backends[arn.account][arn.region].publish(message, arn=topic, subject=subject)
