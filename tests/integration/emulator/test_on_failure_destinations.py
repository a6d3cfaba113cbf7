"""Asynchronous invocations on the emulator: retried like Lambda, then kept in the on-failure SQS queue."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from loopline.emulator import on_failure_destinations

FAILS = """
def lambda_handler(event, context):
    raise RuntimeError("injected: " + event["upload"])
"""

# fails on the first attempt only (the worker process survives between attempts: a module-level counter)
FAILS_ONCE = """
attempts = []

def lambda_handler(event, context):
    attempts.append(1)
    if len(attempts) == 1:
        raise RuntimeError("first attempt fails")
    return {"attempts": len(attempts)}
"""


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(on_failure_destinations, "RETRY_DELAYS_SECONDS", [0.1, 0.1])
    yield


def _queue(aws: Callable[[str], Any]) -> tuple[str, str]:
    url = aws("sqs").create_queue(QueueName=f"failures-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _messages(aws: Callable[[str], Any], url: str, wait: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + wait
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        received = aws("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        found += [json.loads(m["Body"]) for m in received.get("Messages", [])]
        if found:
            return found
    return found


def _may_send_to(queue_arn: str) -> dict[str, Any]:
    # Lambda sends the invocation record with the function's role (SAM adds this for a destination)
    return {"Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn}]}


def test_a_destination_the_role_may_not_send_to_receives_nothing(
    aws: Callable[[str], Any], create_function: Callable[..., str],
) -> None:
    # given a failing function whose role may not send to its on-failure destination
    url, arn = _queue(aws)
    name = create_function(FAILS)
    aws("lambda").put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0, DestinationConfig={"OnFailure": {"Destination": arn}})

    # when it is invoked asynchronously
    aws("lambda").invoke(FunctionName=name, InvocationType="Event", Payload=b'{"upload": "a.csv"}')

    # then Lambda cannot deliver the record, as on AWS
    assert _messages(aws, url, wait=4) == []


def test_a_failing_async_invocation_is_retried_twice_then_kept_in_the_on_failure_queue(
    aws: Callable[[str], Any], create_function: Callable[..., str],
) -> None:
    # given a function that always fails, with an SQS on-failure destination its role may send to
    url, arn = _queue(aws)
    name = create_function(FAILS, policy=_may_send_to(arn))
    aws("lambda").put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=2, DestinationConfig={"OnFailure": {"Destination": arn}})

    # when it is invoked asynchronously
    response = aws("lambda").invoke(FunctionName=name, InvocationType="Event", Payload=b'{"upload": "a.csv"}')

    # then the caller gets 202 at once, and after three attempts the event is in the queue with the error
    assert response["StatusCode"] == 202
    (record,) = _messages(aws, url, wait=30)
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestPayload"] == {"upload": "a.csv"}
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert "injected: a.csv" in record["responsePayload"]["errorMessage"]


def test_an_invocation_that_succeeds_on_retry_sends_nothing(
    aws: Callable[[str], Any], create_function: Callable[..., str],
) -> None:
    # given a function that fails once, then succeeds
    url, arn = _queue(aws)
    name = create_function(FAILS_ONCE, policy=_may_send_to(arn))
    aws("lambda").put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=2, DestinationConfig={"OnFailure": {"Destination": arn}})

    # when it is invoked asynchronously
    aws("lambda").invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")

    # then the retry succeeded: the queue stays empty
    assert _messages(aws, url, wait=4) == []
