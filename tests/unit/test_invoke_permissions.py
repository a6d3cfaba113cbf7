"""Who may invoke which function, from the translated template: only the state machines may invoke the evaluate
function (whose actions move the champion pointer); ingest, which parses untrusted CSVs, may invoke only the
monitor function, whose role cannot write the registry."""

from __future__ import annotations

import json
from typing import Any

import pytest

from loopline.params import stack_parameters
from loopline_runtime.bucket_layout import REGISTRY_PREFIX, ROLE_ACCESS
from loopline_runtime.config import PipelineConfig
from tests.support.stack import REGION
from tests.support.translated import translated_template


@pytest.fixture(scope="module")
def translated(template: dict[str, Any], pipeline_config: PipelineConfig) -> dict[str, Any]:
    parameters = {name: str(spec["Default"]) for name, spec in template["Parameters"].items() if "Default" in spec}
    parameters.update(stack_parameters(pipeline_config))
    return translated_template(template, parameters, REGION)


def _invokers(translated: dict[str, Any]) -> dict[str, set[str]]:
    """Per function (logical id): the owners whose roles SAM granted lambda:InvokeFunction on it."""
    invokers: dict[str, set[str]] = {}
    for role_id, role in translated["Resources"].items():
        if role["Type"] != "AWS::IAM::Role":
            continue
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement.get("Action", [])
                if "lambda:InvokeFunction" not in (actions if isinstance(actions, list) else [actions]):
                    continue
                resources = statement["Resource"]
                for resource in resources if isinstance(resources, list) else [resources]:
                    _, names = resource["Fn::Sub"]
                    invokers.setdefault(names["functionName"]["Ref"], set()).add(role_id.removesuffix("Role"))
    return invokers


def test_only_the_state_machines_may_invoke_the_function_that_moves_the_champion(translated: dict[str, Any]) -> None:
    # given the invoke grants of every role
    invokers = _invokers(translated)

    # then the evaluate function (gate, promote, reject, rollback) is invoked by the state machines only
    assert invokers["EvaluateFunction"] == {"TrainingStateMachine", "RollbackStateMachine"}
    # and ingest may invoke the monitor function only, whose role cannot write the registry
    assert {function for function, owners in invokers.items() if "IngestFunction" in owners} == {"MonitorFunction"}
    assert REGISTRY_PREFIX not in ROLE_ACCESS["MonitorFunction"].writes


def _starters(translated: dict[str, Any], state_machine_name_suffix: str) -> set[str]:
    """The owners whose roles may states:StartExecution on the state machine named `<stack>-<suffix>`."""
    owners = set()
    for role_id, role in translated["Resources"].items():
        if role["Type"] != "AWS::IAM::Role":
            continue
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement.get("Action", [])
                if not {"states:StartExecution", "states:*", "*"} & set(actions if isinstance(actions, list)
                                                                         else [actions]):
                    continue
                resources = statement["Resource"]
                for resource in resources if isinstance(resources, list) else [resources]:
                    text = json.dumps(resource)
                    if f"stateMachine:${{AWS::StackName}}-{state_machine_name_suffix}" in text or text == '"*"':
                        owners.add(role_id.removesuffix("Role"))
    return owners


def test_only_the_rollback_api_function_may_start_a_rollback(translated: dict[str, Any]) -> None:
    # given the StartExecution grants of every role
    # then the rollback state machine's input (with `requested_by`) comes only from the function behind the
    # IAM-authorized route, which takes the caller from API Gateway's request context
    assert _starters(translated, "rollback") == {"RollbackFunction"}


def test_the_rollback_route_authorizes_callers_by_iam_and_invokes_by_the_functions_permission(
        translated: dict[str, Any]) -> None:
    # given the API's definition as SAM translates it
    route = translated["Resources"]["PredictApi"]["Properties"]["Body"]["paths"]["/rollback"]["post"]

    # then callers sign with SigV4 (no API key), and API Gateway invokes with its Lambda permission rather than
    # the caller's own credentials (which would need lambda:InvokeFunction for every operator)
    assert route["security"] == [{"AWS_IAM": []}]
    assert "credentials" not in route["x-amazon-apigateway-integration"]
