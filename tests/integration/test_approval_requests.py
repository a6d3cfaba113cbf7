"""Approval requests carry no bearer token: the training state machine's task token stays in the execution's
history (read by the approver's `loopline approve`), never in a message on the topic, which may have an e-mail
subscriber; the promotion records who approved; and a trigger that arrives meanwhile waits instead of being
skipped."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
import pytest

from loopline_runtime.bucket_layout import TRAINING_LEASE_KEY
from loopline_runtime.errors import PromotionRefused
from loopline_runtime.orchestration import acquire_training_lease
from loopline_runtime.registry import ModelRegistry
from tests.support.asl import resolve
from tests.support.stack import Stack

TOKEN = "AAAAKgAAAAIAAAAAAAAAAbearer-token-of-the-approval-task"


@pytest.fixture
def training_definition(aws_stack: Stack) -> dict[str, Any]:
    return json.loads(aws_stack.state_machine_definition("TrainingStateMachine"))


@pytest.fixture
def inbox(aws_stack: Stack, load_handler: Callable[[str], ModuleType]) -> str:
    """An SQS queue subscribed to the stack's notification topic, as a subscriber would read it."""
    topic_arn = aws_stack.function_environment("evaluate")["NOTIFICATION_TOPIC_ARN"]
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    sns.create_topic(Name=topic_arn.rsplit(":", 1)[-1])
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return queue


def _messages(queue: str) -> list[str]:
    response = boto3.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    return [message["Body"] for message in response.get("Messages", [])]


def test_no_state_of_the_training_state_machine_publishes_the_task_token(training_definition: dict[str, Any]) -> None:
    # given every task state that publishes to SNS directly
    publishing = {name: state for name, state in training_definition["States"].items()
                  if state.get("Type") == "Task" and ":::sns:publish" in state.get("Resource", "")}

    # then none of them puts the task token in what it publishes
    assert [name for name, state in publishing.items() if "$$.Task.Token" in json.dumps(state)] == []


def test_the_approval_request_reaches_subscribers_without_the_task_token(
    aws_stack: Stack, training_definition: dict[str, Any], load_handler: Callable[[str], ModuleType],
    lambda_context: Any, inbox: str,
) -> None:
    # given the approval state's request for a challenger the gate passed, with its task token
    state = {"training": {"model_version": "m-1"},
             "evaluation": {"metric": "f1", "challenger_score": 0.97, "champion_version": None,
                            "champion_score": None, "reasons": ["ok"], "approval_timeout_seconds": 600}}
    context = {"Task": {"Token": TOKEN}, "Execution": {"Id": "arn:execution"}}
    parameters = resolve(training_definition["States"]["Wait for approval"]["Parameters"], state, context)

    # when the function it invokes publishes the request
    load_handler("evaluate").lambda_handler(parameters["Payload"], lambda_context)

    # then subscribers read what to run, and not the token
    (body,) = _messages(inbox)
    assert TOKEN not in body
    message = json.loads(json.loads(body)["Message"])
    assert message["event"] == "approval_requested" and message["approve"].startswith("loopline approve m-1")


def test_a_challenger_waiting_for_approval_is_promoted_only_with_its_approver_on_record(
    aws_stack: Stack, training_definition: dict[str, Any], registry: ModelRegistry,
    register_model: Callable[..., str], load_handler: Callable[[str], ModuleType], lambda_context: Any,
) -> None:
    # given a challenger the gate passed under gate.approval: manual
    version = register_model()
    evaluation = {"model_version": version, "metric": "f1", "challenger_score": 0.97, "promote": True,
                  "reasons": ["ok"], "pins": registry.pins(version), "champion_version": None,
                  "champion_etag": None, "approval_required": True}
    registry.store.put_json(registry.prefix(version) + "evaluation.json", evaluation)
    context = {"State": {"EnteredTime": datetime.now(UTC).isoformat()}, "Execution": {"Id": "arn:execution"}}
    evaluate = load_handler("evaluate")

    def promote_event(approval: dict[str, Any]) -> dict[str, Any]:
        state = {"training": {"model_version": version, "reason": "new_data"}, "evaluation": evaluation,
                 "approval": approval}
        return resolve(training_definition["States"]["Promote challenger"]["Parameters"], state, context)

    # when it is promoted without a person's approval, then it is refused
    with pytest.raises(PromotionRefused, match="waits for a person's approval"):
        evaluate.lambda_handler(promote_event({"approved_by": "gate"}), lambda_context)
    assert registry.champion_version() is None

    # when a person approved it, then it serves and the history says who
    evaluate.lambda_handler(promote_event({"approved_by": "ana (arn:aws:iam::1:user/ana)", "note": "ok"}),
                            lambda_context)
    assert registry.champion_version() == version
    assert registry.history()[-1]["approved_by"] == "ana (arn:aws:iam::1:user/ana)"


def test_a_trigger_during_a_pending_approval_waits_and_trains_after_it_instead_of_being_skipped(
    aws_stack: Stack, training_definition: dict[str, Any], registry: ModelRegistry,
    load_handler: Callable[[str], ModuleType], load_event: Callable[[str], dict[str, Any]], lambda_context: Any,
) -> None:
    # given a running execution that holds the training lease and whose challenger now waits for a person
    sfn = boto3.client("stepfunctions")
    machine = aws_stack.physical_ids["TrainingStateMachine"]
    waiting = sfn.start_execution(stateMachineArn=machine, name="new_data-first",
                                  input=json.dumps({"reason": "new_data"}))["executionArn"]
    acquire_training_lease(registry.store, sfn, waiting)
    state = {"training": {"model_version": "m-1"},
             "evaluation": {"metric": "f1", "challenger_score": 0.97, "champion_version": None,
                            "champion_score": None, "reasons": ["ok"], "approval_timeout_seconds": 600}}
    request = resolve(training_definition["States"]["Wait for approval"]["Parameters"], state,
                      {"Task": {"Token": TOKEN}, "Execution": {"Id": waiting}})
    load_handler("evaluate").lambda_handler(request["Payload"], lambda_context)

    # when a new batch's execution reaches its train step
    newer = sfn.start_execution(stateMachineArn=machine, name="new_data-second",
                                input=json.dumps({"reason": "new_data"}))["executionArn"]
    event = {**load_event("train_task.json"), "trigger": {"reason": "new_data"}, "execution_arn": newer,
             "state_machine_arn": machine}
    with pytest.raises(Exception) as caught:
        load_handler("train").lambda_handler(event, lambda_context)

    # then the state machine routes it to a wait that returns to training, not to a "skipped" end
    states = training_definition["States"]
    start = training_definition["StartAt"]
    (route,) = [c for c in states[start]["Catch"] if type(caught.value).__name__ in c["ErrorEquals"]]
    assert states[route["Next"]]["Type"] == "Wait" and states[route["Next"]]["Next"] == start
    assert registry.store.get_json(TRAINING_LEASE_KEY)["execution_arn"] == waiting


def test_the_approval_task_token_is_in_no_log_line(
    aws_stack: Stack, training_definition: dict[str, Any], load_handler: Callable[[str], ModuleType],
    lambda_context: Any, inbox: str, caplog: pytest.LogCaptureFixture,
) -> None:
    # given the approval state's request with its task token
    state = {"training": {"model_version": "m-1"},
             "evaluation": {"metric": "f1", "challenger_score": 0.97, "champion_version": None,
                            "champion_score": None, "reasons": ["ok"], "approval_timeout_seconds": 600}}
    parameters = resolve(training_definition["States"]["Wait for approval"]["Parameters"], state,
                         {"Task": {"Token": TOKEN}, "Execution": {"Id": "arn:execution"}})

    # when the evaluate function handles it
    load_handler("evaluate").lambda_handler(parameters["Payload"], lambda_context)

    # then its logs name the request, never the token
    logged = " ".join(str(record.__dict__) for record in caplog.records)  # messages and their extra fields
    assert "request_approval" in logged and TOKEN not in logged
