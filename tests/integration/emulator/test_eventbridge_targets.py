"""moto gap: EventBridge cannot deliver to Step Functions or Lambda targets."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

PASS_THROUGH = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


def make_state_machine(aws: Callable[[str], Any]) -> str:
    return str(
        aws("stepfunctions").create_state_machine(
            name=f"sm-{uuid.uuid4().hex[:8]}", definition=PASS_THROUGH, roleArn="arn:aws:iam::123456789012:role/sfn"
        )["stateMachineArn"]
    )


def target_role(aws: Callable[[str], Any], state_machine_arn: str, allowed: bool = True) -> str:
    """The role EventBridge starts executions as (SAM makes one per EventBridgeRule event)."""
    name = f"events-{uuid.uuid4().hex[:8]}"
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                            "Action": "sts:AssumeRole"}]}
    arn = str(aws("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])
    action = "states:StartExecution" if allowed else "states:DescribeExecution"
    aws("iam").put_role_policy(RoleName=name, PolicyName="start", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": state_machine_arn}]}))
    return arn


def put_rule(aws: Callable[[str], Any], source: str, target: dict[str, Any], role_allowed: bool = True) -> None:
    name = f"rule-{uuid.uuid4().hex[:8]}"
    rule_arn = aws("events").put_rule(Name=name, EventPattern=json.dumps({"source": [source]}))["RuleArn"]
    if ":states:" in target["Arn"]:
        target = {"RoleArn": target_role(aws, target["Arn"], role_allowed), **target}
    else:  # a Lambda target: the function's resource policy must let EventBridge invoke it for this rule
        aws("lambda").add_permission(FunctionName=target["Arn"], StatementId=name, Action="lambda:InvokeFunction",
                                     Principal="events.amazonaws.com", SourceArn=rule_arn)
    aws("events").put_targets(Rule=name, Targets=[{"Id": "t", **target}])


def execution_inputs(aws: Callable[[str], Any], state_machine_arn: str, count: int) -> list[Any]:
    sfn = aws("stepfunctions")
    deadline = time.time() + 10
    executions: list[dict[str, Any]] = []
    while time.time() < deadline and len(executions) < count:
        executions = sfn.list_executions(stateMachineArn=state_machine_arn)["executions"]
        time.sleep(0.2)
    return [json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"]) for e in executions]


def put_event(aws: Callable[[str], Any], source: str, detail: dict[str, Any]) -> None:
    aws("events").put_events(Entries=[{"Source": source, "DetailType": "Test", "Detail": json.dumps(detail)}])


def test_a_states_target_starts_an_execution_with_the_target_input_each_time(aws):
    # given
    source = f"test.{uuid.uuid4().hex[:8]}"
    state_machine_arn = make_state_machine(aws)
    put_rule(aws, source, {"Arn": state_machine_arn, "Input": '{"reason": "alarm"}'})

    # when
    put_event(aws, source, {"n": 1})
    put_event(aws, source, {"n": 2})

    # then (two executions: each gets a unique name)
    assert execution_inputs(aws, state_machine_arn, 2) == [{"reason": "alarm"}, {"reason": "alarm"}]


def test_input_path_and_input_transformer_shape_the_execution_input(aws):
    # given
    source = f"test.{uuid.uuid4().hex[:8]}"
    by_path, by_transformer = make_state_machine(aws), make_state_machine(aws)
    put_rule(aws, source, {"Arn": by_path, "InputPath": "$.detail"})
    transformer = {"InputPathsMap": {"n": "$.detail.n"}, "InputTemplate": '{"number": <n>}'}
    put_rule(aws, source, {"Arn": by_transformer, "InputTransformer": transformer})

    # when
    put_event(aws, source, {"n": 5})

    # then
    assert execution_inputs(aws, by_path, 1) == [{"n": 5}]
    assert execution_inputs(aws, by_transformer, 1) == [{"number": 5}]


def test_a_states_target_whose_role_may_not_start_executions_starts_none(aws):
    # given a rule whose target role is not allowed states:StartExecution, and one that is
    source = f"test.{uuid.uuid4().hex[:8]}"
    denied, allowed = make_state_machine(aws), make_state_machine(aws)
    put_rule(aws, source, {"Arn": denied}, role_allowed=False)
    put_rule(aws, source, {"Arn": allowed})

    # when
    put_event(aws, source, {"n": 1})

    # then only the allowed target starts an execution, as on AWS
    assert len(execution_inputs(aws, allowed, 1)) == 1
    assert aws("stepfunctions").list_executions(stateMachineArn=denied)["executions"] == []


def test_without_input_the_whole_event_is_delivered(aws):
    # given
    source = f"test.{uuid.uuid4().hex[:8]}"
    state_machine_arn = make_state_machine(aws)
    put_rule(aws, source, {"Arn": state_machine_arn})

    # when
    put_event(aws, source, {"n": 9})

    # then
    (delivered,) = execution_inputs(aws, state_machine_arn, 1)
    assert delivered["source"] == source
    assert delivered["detail"] == {"n": 9}


def test_a_lambda_target_is_invoked_asynchronously(aws, create_function):
    # given
    source = f"test.{uuid.uuid4().hex[:8]}"
    name = create_function("def lambda_handler(event, context):\n    print('got', event['detail']['n'])\n")
    arn = aws("lambda").get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    put_rule(aws, source, {"Arn": arn})

    # when
    put_event(aws, source, {"n": 3})

    # then
    deadline, messages = time.time() + 15, []
    while time.time() < deadline and "got 3" not in messages:
        time.sleep(0.3)
        if aws("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"]:
            events = aws("logs").filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
            messages = [e["message"] for e in events]
    assert "got 3" in messages


def test_a_schedule_rule_is_not_delivered_the_events_of_the_bus(aws):
    # given a schedule rule (no event pattern) targeting a state machine, and a pattern rule for the same events
    source = f"test.{uuid.uuid4().hex[:8]}"
    scheduled, matched = make_state_machine(aws), make_state_machine(aws)
    name = f"rule-{uuid.uuid4().hex[:8]}"
    aws("events").put_rule(Name=name, ScheduleExpression="rate(60 minutes)")
    aws("events").put_targets(Rule=name, Targets=[{"Id": "t", "Arn": scheduled,
                                                   "RoleArn": target_role(aws, scheduled)}])
    put_rule(aws, source, {"Arn": matched})

    # when an event is put on the bus
    put_event(aws, source, {"n": 1})

    # then only the pattern rule's target runs (the schedule's runs on its schedule, never on events)
    assert len(execution_inputs(aws, matched, 1)) == 1
    assert aws("stepfunctions").list_executions(stateMachineArn=scheduled)["executions"] == []
