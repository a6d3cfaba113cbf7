"""moto gap: Lambda code runs only in Docker. The emulator runs handlers in local worker processes."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any


def invoke(aws: Callable[[str], Any], name: str, event: Any, **extra: Any) -> tuple[dict[str, Any], Any]:
    response = aws("lambda").invoke(FunctionName=name, Payload=json.dumps(event), **extra)
    return response, json.loads(response["Payload"].read())


def test_a_handler_result_is_returned_with_the_function_environment_and_a_lambda_context(aws, create_function):
    # given
    name = create_function(
        """
        import os
        def lambda_handler(event, context):
            return {
                "echo": event,
                "color": os.environ["COLOR"],
                "function_name": context.function_name,
                "memory": context.memory_limit_in_mb,
                "arn": context.invoked_function_arn,
                "request_id": context.aws_request_id,
                "remaining": context.get_remaining_time_in_millis(),
                "endpoint": os.environ["AWS_ENDPOINT_URL"],
                "region": os.environ["AWS_REGION"],
            }
        """,
        environment={"COLOR": "blue"},
    )

    # when
    response, payload = invoke(aws, name, {"x": 1})

    # then
    assert "FunctionError" not in response
    assert payload["echo"] == {"x": 1}
    assert payload["color"] == "blue"
    assert payload["function_name"] == name
    assert payload["memory"] == 256
    assert payload["arn"].endswith(f":function:{name}")
    assert payload["request_id"]
    assert 0 < payload["remaining"] <= 10_000
    assert payload["endpoint"].startswith("http://127.0.0.1:")
    assert payload["region"] == "us-east-1"


def test_module_state_survives_between_invocations_like_a_warm_lambda(aws, create_function):
    # given
    name = create_function(
        """
        CALLS = []
        def lambda_handler(event, context):
            CALLS.append(event)
            return len(CALLS)
        """
    )

    # when
    counts = [invoke(aws, name, {})[1] for _ in range(3)]

    # then
    assert counts == [1, 2, 3]


def test_an_exception_is_returned_as_a_function_error_named_after_its_class(aws, create_function):
    # given
    name = create_function(
        """
        class SchemaMismatch(Exception):
            pass
        def lambda_handler(event, context):
            raise SchemaMismatch("column 'age' is missing")
        """
    )

    # when
    response, payload = invoke(aws, name, {})

    # then
    assert response["FunctionError"]
    assert payload["errorType"] == "SchemaMismatch"
    assert payload["errorMessage"] == "column 'age' is missing"
    assert payload["stackTrace"]


def test_a_handler_that_outlives_its_timeout_is_killed_and_reported_as_timed_out(aws, create_function):
    # given
    name = create_function(
        """
        import time
        def lambda_handler(event, context):
            if event.get("sleep"):
                time.sleep(60)
            return "awake"
        """,
        timeout=1,
    )

    # when
    started = time.time()
    response, payload = invoke(aws, name, {"sleep": True})

    # then
    assert time.time() - started < 10
    assert response["FunctionError"]
    assert payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in payload["errorMessage"]
    assert invoke(aws, name, {})[1] == "awake"


def test_a_crashing_worker_is_reported_and_replaced(aws, create_function):
    # given
    name = create_function(
        """
        import os
        def lambda_handler(event, context):
            if event.get("crash"):
                os._exit(3)
            return "alive"
        """
    )

    # when
    response, payload = invoke(aws, name, {"crash": True})

    # then
    assert response["FunctionError"]
    assert payload["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in payload["errorMessage"]
    assert invoke(aws, name, {})[1] == "alive"


def test_an_unimportable_handler_reports_an_import_error(aws, create_function):
    # given
    name = create_function("import no_such_module_anywhere\n")

    # when
    response, payload = invoke(aws, name, {})

    # then
    assert response["FunctionError"]
    assert payload["errorType"] == "Runtime.ImportModuleError"


def test_output_is_captured_at_the_fd_level_and_saved_to_cloudwatch_logs(aws, create_function):
    # given
    name = create_function(
        """
        import os, sys
        STDOUT = sys.stdout  # bound at import, like Powertools' logger
        def lambda_handler(event, context):
            STDOUT.write("via the bound stream\\n")
            os.write(2, b"straight to fd 2\\n")
            return None
        """
    )

    # when
    response, _ = invoke(aws, name, {}, LogType="Tail")

    # then
    tail = base64.b64decode(response["LogResult"]).decode()
    assert "via the bound stream" in tail
    assert "straight to fd 2" in tail
    events = aws("logs").filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
    messages = [e["message"] for e in events]
    assert "via the bound stream" in messages
    assert any(m.startswith("REPORT RequestId:") for m in messages)


def test_event_invocations_return_at_once_and_run_in_the_background(aws, create_function):
    # given
    name = create_function(
        """
        import time
        def lambda_handler(event, context):
            time.sleep(2)
            print("done", event["n"])
        """
    )

    # when
    started = time.time()
    response = aws("lambda").invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"n": 7}))

    # then
    assert response["StatusCode"] == 202
    assert time.time() - started < 1.5
    deadline = time.time() + 15
    messages: list[str] = []
    while time.time() < deadline and "done 7" not in messages:
        time.sleep(0.3)
        groups = aws("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"]
        if groups:
            messages = [
                e["message"] for e in aws("logs").filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
            ]
    assert "done 7" in messages
