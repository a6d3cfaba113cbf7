"""Optional approval (`gate.approval: manual`): after the gate the training execution waits, notifies what to
run, and `loopline approve` promotes, `loopline reject --reason` rejects with the reason, no answer rejects."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loopline.cli import main
from loopline.client import StackClient
from loopline.examples import breast_cancer, split_batches
from tests.support.approvals import manual_approval_config, wait_for_pending_approval

pytestmark = pytest.mark.e2e


def _loopline(stack: StackClient, *args: str) -> int:
    return main([*args, "--stack-name", stack.stack_name, "--endpoint-url", stack.s3.meta.endpoint_url])


@pytest.fixture(scope="module")
def frames() -> list[Any]:
    return split_batches(breast_cancer(), [250, 150])


def test_approve_promotes_and_reject_rejects_with_the_reason(
        start_stack: Callable[..., StackClient], local_stack_config_path: Path, tmp_path: Path,
        frames: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    # given a stack with manual approval, and a first upload that passed the gate
    stack = start_stack(manual_approval_config(local_stack_config_path, tmp_path, 600))
    inbox = stack.client("sqs").create_queue(QueueName=f"{stack.stack_name}-inbox")["QueueUrl"]
    queue_arn = stack.client("sqs").get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])
    stack.client("sns").subscribe(TopicArn=stack.outputs["NotificationTopicArn"], Protocol="sqs",
                                  Endpoint=queue_arn["Attributes"]["QueueArn"])
    stack.upload_csv(frames[0], "first.csv")
    waiting = wait_for_pending_approval(stack)

    # then nothing is promoted yet, status lists the pending approval, and the request says what to run
    assert stack.keys("registry/champion.json") == []
    assert _loopline(stack, "status") == 0
    assert f" approve {waiting.model_version} --stack-name {stack.stack_name}" in capsys.readouterr().out
    request = _notification(stack, inbox, "approval_requested")
    assert request["model_version"] == waiting.model_version
    assert request["approve"] == f"loopline approve {waiting.model_version} --stack-name {stack.stack_name}"
    assert "task_token" not in request and waiting.task_token not in json.dumps(request)

    # when a person approves
    assert _loopline(stack, "approve", waiting.model_version, "--reason", "reviewed the report") == 0

    # then it is promoted and serves, with who approved it on the record
    pointer = stack.read_json("registry/champion.json")
    assert pointer["version"] == waiting.model_version and pointer["approved_by"]
    assert _notification(stack, inbox, "promoted")["approved_by"] == pointer["approved_by"]
    assert stack.entered_states(waiting.execution_arn)[-1] == "Promoted"
    assert stack.http("GET", "model").body["model_version"] == waiting.model_version

    # when the next challenger waits and a person rejects it
    known = {e["executionArn"] for e in stack.executions()}
    stack.upload_csv(frames[1], "second.csv")
    stack.wait_for_keys("monitoring/", 1, timeout=180)
    stack.sfn.start_execution(stateMachineArn=stack.state_machine_arn, name="manual-second",
                              input=json.dumps({"reason": "manual"}))
    second = wait_for_pending_approval(stack)
    assert second.execution_arn not in known
    assert _loopline(stack, "reject", second.model_version, "--reason", "calibration looks off") == 0

    # then it is rejected with the person's reason, recorded and notified; the champion is unchanged
    assert stack.entered_states(second.execution_arn)[-1] == "Challenger rejected"
    evaluation = stack.read_json(f"models/{second.model_version}/evaluation.json")
    assert evaluation["promote"] is False
    assert "calibration looks off" in evaluation["reasons"][-1]
    rejected = _notification(stack, inbox, "rejected")
    assert "calibration looks off" in rejected["reasons"][-1], rejected
    assert stack.read_json("registry/champion.json")["version"] == waiting.model_version


def test_no_answer_within_the_timeout_rejects(start_stack: Callable[..., StackClient],
                                              local_stack_config_path: Path, tmp_path: Path,
                                              frames: list[Any]) -> None:
    # given a stack whose approvals time out after 3 seconds
    stack = start_stack(manual_approval_config(local_stack_config_path, tmp_path, 3))

    # when a challenger passes the gate and nobody answers
    stack.upload_csv(frames[0], "first.csv")
    execution = stack.wait_for_new_execution(set(), timeout=180)
    described = stack.wait_for_execution(execution["executionArn"], timeout=600)

    # then it ends rejected, the evaluation says why, and nothing is promoted
    assert described["status"] == "SUCCEEDED"
    states = stack.entered_states(execution["executionArn"])
    assert "Wait for approval" in states and states[-1] == "Challenger rejected"
    [key] = [k for k in stack.keys("models/") if k.endswith("evaluation.json")]
    assert "no approval within 3 seconds" in stack.read_json(key)["reasons"][-1]
    assert stack.keys("registry/champion.json") == []


def _notification(stack: StackClient, queue: str, event: str, *, timeout: float = 60) -> dict[str, Any]:
    sqs = stack.client("sqs")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []):
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            body = json.loads(json.loads(message["Body"])["Message"])
            if body.get("event") == event:
                return dict(body)
    raise TimeoutError(f"no {event!r} notification")
