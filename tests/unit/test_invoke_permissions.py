"""Who may invoke which function, from the translated template: only the state machines may invoke the evaluate
function (whose actions move the champion pointer); ingest, which parses untrusted CSVs, may invoke only the
monitor function, whose role cannot write the registry."""

from __future__ import annotations

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
