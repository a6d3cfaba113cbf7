"""Gap: moto's CloudFormation does not support `AWS::CloudWatch::Alarm`.

The alarms are taken out of the template, their properties resolved (they only use Parameters and pseudo
parameters), references to them replaced by the literal name/ARN, and they are created with put_metric_alarm.
"""

from __future__ import annotations

from typing import Any

from loopline.emulator.function_layers import condition_holds
from loopline.emulator.static_intrinsics import resolve_static
from loopline.emulator.template_references import remove_resources, replace_references

_INTEGER_PROPERTIES = ("Period", "EvaluationPeriods", "DatapointsToAlarm")
_FLOAT_PROPERTIES = ("Threshold",)


def alarm_arn(region: str, account_id: str, name: str) -> str:
    """The ARN CloudWatch gives a metric alarm."""
    return f"arn:aws:cloudwatch:{region}:{account_id}:alarm:{name}"


def extract_cloudwatch_alarms(
    template: dict[str, Any], values: dict[str, str], region: str, account_id: str
) -> list[dict[str, Any]]:
    """Remove the alarms from `template` (in place) and return their put_metric_alarm keyword arguments.

    Args:
        values: template parameter values and pseudo parameters (see static_intrinsics).
    """
    resources = template["Resources"]
    alarms: dict[str, dict[str, Any]] = {}
    conditioned_off: set[str] = set()
    for logical_id, resource in resources.items():
        if resource.get("Type") == "AWS::CloudWatch::Alarm":
            condition = resource.get("Condition")
            if condition is not None and not condition_holds(template, condition, values):
                conditioned_off.add(logical_id)  # CloudFormation does not create it
                continue
            properties = resolve_static(resource.get("Properties", {}), values)
            properties.setdefault("AlarmName", f"{values['AWS::StackName']}-{logical_id}")
            alarms[logical_id] = _as_api_arguments(properties)
    remove_resources(template, set(alarms) | conditioned_off)

    def literal_for(logical_id: str, attribute: str | None) -> str | None:
        if logical_id not in alarms:
            return None
        name = alarms[logical_id]["AlarmName"]
        return alarm_arn(region, account_id, name) if attribute == "Arn" else name

    for section in ("Resources", "Outputs"):
        template[section] = replace_references(template.get(section, {}), literal_for)
    return list(alarms.values())


def _as_api_arguments(properties: dict[str, Any]) -> dict[str, Any]:
    arguments = dict(properties)
    for key in _INTEGER_PROPERTIES:
        if key in arguments:
            arguments[key] = int(arguments[key])
    for key in _FLOAT_PROPERTIES:
        if key in arguments:
            arguments[key] = float(arguments[key])
    if "ActionsEnabled" in arguments:
        arguments["ActionsEnabled"] = str(arguments["ActionsEnabled"]).lower() == "true"
    return arguments


def create_alarms(cloudwatch_client: Any, alarms: list[dict[str, Any]]) -> None:
    """put_metric_alarm each extracted alarm."""
    for arguments in alarms:
        cloudwatch_client.put_metric_alarm(**arguments)
