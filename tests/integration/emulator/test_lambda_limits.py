"""Lambda's limits on the emulator, each with the error AWS reports (gap modules lambda_limits, worker_limits)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from loopline.emulator.enforcement_switches import SWITCH_VARIABLE

ALLOCATE = """
def lambda_handler(event, context):
    block = bytearray(event["mb"] * 1024 * 1024)
    for i in range(0, len(block), 4096):  # touch every page: resident, not just reserved
        block[i] = 1
    return len(block)
"""


def _invoke(aws: Any, name: str, event: Any, **extra: Any) -> tuple[dict[str, Any], Any]:
    response = aws("lambda").invoke(FunctionName=name, Payload=json.dumps(event), **extra)
    return response, json.loads(response["Payload"].read() or b"null")


def test_a_worker_past_its_memory_size_fails_with_runtime_out_of_memory(aws, create_function):
    # given a 128 MB function
    name = create_function(ALLOCATE, memory=128)

    # when an invocation holds 300 MB
    response, error = _invoke(aws, name, {"mb": 300})

    # then Lambda's error: the environment was stopped
    assert response.get("FunctionError")
    assert error["errorType"] == "Runtime.OutOfMemory"
    assert "signal: killed" in error["errorMessage"]


def test_the_same_allocation_passes_with_memory_enforcement_switched_off(aws, create_function, monkeypatch):
    # given the same function and the debugging switch
    name = create_function(ALLOCATE, memory=128)
    monkeypatch.setenv(SWITCH_VARIABLE, "memory")

    # when / then the invocation completes (the enforcement is what stopped it above)
    response, result = _invoke(aws, name, {"mb": 300})
    assert "FunctionError" not in response and result == 300 * 1024 * 1024


def test_tmp_holds_only_the_ephemeral_storage(aws, create_function):
    # given a function with the minimum /tmp (512 MB)
    name = create_function(
        """
        import os, tempfile
        def lambda_handler(event, context):
            path = os.path.join(tempfile.gettempdir(), "big.bin")
            chunk = b"x" * (1024 * 1024)
            with open(path, "wb") as handle:
                for _ in range(event["mb"]):
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            written = os.path.getsize(path)
            os.remove(path)
            return written
        """,
        timeout=60, EphemeralStorage={"Size": 512},
    )

    # when it writes 100 MB, then 600 MB
    _, small = _invoke(aws, name, {"mb": 100})
    response, error = _invoke(aws, name, {"mb": 600})

    # then the first fits and the second runs out of space, as on Lambda
    assert small == 100 * 1024 * 1024
    assert response.get("FunctionError")
    assert "No space left on device" in error["errorMessage"]


def test_a_synchronous_request_over_6_mb_is_refused(aws, create_function):
    name = create_function("def lambda_handler(event, context):\n    return 1\n")
    with pytest.raises(ClientError) as refused:
        _invoke(aws, name, {"blob": "x" * 6_300_000})
    assert refused.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_an_asynchronous_event_over_256_kb_is_refused(aws, create_function):
    name = create_function("def lambda_handler(event, context):\n    return 1\n")
    with pytest.raises(ClientError) as refused:
        aws("lambda").invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"b": "x" * 270_000}))
    assert refused.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    # and one under the limit is accepted
    accepted = aws("lambda").invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"b": "x"}))
    assert accepted["StatusCode"] == 202


def test_a_synchronous_response_over_6_mb_fails_the_invocation(aws, create_function):
    name = create_function("def lambda_handler(event, context):\n    return 'x' * 6_300_000\n")
    response, error = _invoke(aws, name, {})
    assert response.get("FunctionError")
    assert error["errorType"] == "Function.ResponseSizeTooLarge"


def test_environment_variables_over_4_kb_are_refused_at_creation(aws, create_function):
    with pytest.raises(ClientError) as refused:
        create_function("def lambda_handler(event, context):\n    return 1\n", environment={"BIG": "x" * 4_100})
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "4KB" in refused.value.response["Error"]["Message"]


def test_a_state_output_over_256_kb_fails_the_execution(aws, create_function, make_role):
    # given a state machine whose task returns 300 KB
    name = create_function("def lambda_handler(event, context):\n    return {'blob': 'x' * 300_000}\n")
    function_arn = aws("lambda").get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    role = make_role("states.amazonaws.com", [{"Effect": "Allow", "Action": "lambda:InvokeFunction",
                                               "Resource": function_arn}])
    definition = {"StartAt": "Big", "States": {"Big": {"Type": "Task", "Resource": function_arn, "End": True}}}
    sfn = aws("stepfunctions")
    machine = sfn.create_state_machine(name=f"big-{uuid.uuid4().hex[:6]}", definition=json.dumps(definition),
                                       roleArn=role)["stateMachineArn"]

    # when it runs
    execution = sfn.start_execution(stateMachineArn=machine)["executionArn"]
    deadline = time.monotonic() + 60
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)

    # then it fails with States.DataLimitExceeded
    assert described["status"] == "FAILED"
    assert described.get("error") == "States.DataLimitExceeded"


def test_reserved_concurrency_throttles_the_invocation_past_it(aws, create_function, emulator, aws_session):
    # given a function with one reserved concurrent execution that takes a second, and a client that does not
    # retry throttles (botocore's default retries them, as SDKs do)
    name = create_function("import time\ndef lambda_handler(event, context):\n    time.sleep(1)\n    return 1\n")
    aws("lambda").put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    outcomes: list[str] = []

    def call() -> None:
        client = aws_session.client("lambda", endpoint_url=emulator["endpoint"],
                                    config=Config(retries={"max_attempts": 0, "mode": "standard"}))
        try:
            client.invoke(FunctionName=name, Payload=b"{}")
            outcomes.append("ran")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])

    # when two synchronous invocations overlap
    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.2)
    for thread in threads:
        thread.join()

    # then one runs and the other is throttled, as Lambda does
    assert sorted(outcomes) == ["TooManyRequestsException", "ran"]
