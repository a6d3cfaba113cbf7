"""Gap: moto's CloudWatch emits no "CloudWatch Alarm State Change" events. Emit them into moto's EventBridge
default bus, in the shape CloudWatch uses, on every state change (evaluation or SetAlarmState)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from unittest import mock

from moto.cloudwatch.models import Alarm, CloudWatchBackend
from moto.events.models import events_backends

from loopline.emulator.alarm_actions import run_alarm_actions

DETAIL_TYPE = "CloudWatch Alarm State Change"


@dataclass(frozen=True)
class AlarmState:
    """An alarm state as the event reports it."""

    value: str
    reason: str
    reason_data: str
    timestamp: datetime


def state_change_event(alarm: Alarm, previous: AlarmState) -> dict[str, Any]:
    """The PutEvents entry CloudWatch sends when `alarm` leaves `previous` for its current state."""
    current = AlarmState(alarm.state_value, alarm.state_reason, alarm.state_reason_data, alarm.state_updated_timestamp)
    configuration: dict[str, Any] = {
        "metrics": [
            {
                "id": "m1",
                "metricStat": {
                    "metric": {
                        "namespace": alarm.namespace,
                        "name": alarm.metric_name,
                        "dimensions": {d.name: d.value for d in alarm.dimensions},
                    },
                    "period": int(alarm.period),
                    "stat": alarm.statistic or alarm.extended_statistic,
                },
                "returnData": True,
            }
        ]
    }
    if alarm.description:
        configuration["description"] = alarm.description
    detail = {
        "alarmName": alarm.name,
        "state": _state(current),
        "previousState": _state(previous),
        "configuration": configuration,
    }
    return {
        "Source": "aws.cloudwatch",
        "DetailType": DETAIL_TYPE,
        "Resources": [alarm.alarm_arn],
        "Detail": json.dumps(detail),
    }


def _state(state: AlarmState) -> dict[str, Any]:
    result: dict[str, Any] = {"value": state.value, "reason": state.reason, "timestamp": _iso(state.timestamp)}
    if state.reason_data and state.reason_data != "{}":
        result["reasonData"] = state.reason_data
    return result


def _iso(moment: datetime) -> str:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def emit_alarm_state_change(account_id: str, region: str, alarm: Alarm, previous: AlarmState) -> None:
    """Put the state-change event on the default bus of the alarm's account and region (rules deliver it)."""
    events_backends[account_id][region].put_events([state_change_event(alarm, previous)])
    run_alarm_actions(account_id, region, alarm, previous.value)  # moto runs no alarm actions either


def emit_events_on_set_alarm_state() -> AbstractContextManager[object]:
    """Patch SetAlarmState so a manual state change emits the event too, as CloudWatch does."""
    original = CloudWatchBackend.set_alarm_state

    def set_alarm_state(
        self: CloudWatchBackend, alarm_name: str, reason: str, reason_data: str, state_value: str
    ) -> None:
        alarm = self.alarms.get(alarm_name)
        previous = (
            AlarmState(alarm.state_value, alarm.state_reason, alarm.state_reason_data, alarm.state_updated_timestamp)
            if alarm
            else None
        )
        original(self, alarm_name, reason, reason_data, state_value)
        if previous is not None and alarm is not None and previous.value != state_value:
            emit_alarm_state_change(self.account_id, self.region_name, alarm, previous)

    return mock.patch.object(CloudWatchBackend, "set_alarm_state", set_alarm_state)
