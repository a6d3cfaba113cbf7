"""Gap: moto runs an asynchronous Lambda invocation once, whatever happens, and never delivers it to the
function's on-failure destination; its CloudFormation does not create `AWS::Lambda::EventInvokeConfig`.

Lambda retries a failed asynchronous invocation (an error, a crash, a timeout) up to `MaximumRetryAttempts`
times (default 2), then sends an invocation record to the `OnFailure` destination. The emulator creates the
template's event invoke configs with PutFunctionEventInvokeConfig after the stack, and every asynchronous path
(Invoke with InvocationType=Event, S3 notifications, EventBridge Lambda targets) runs through
`invoke_asynchronously`, which retries after short pauses (AWS waits about 1 and 2 minutes) and then sends
the record to an SQS destination in moto.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from moto.awslambda.models import LambdaFunction
from moto.sqs.models import sqs_backends

from loopline.emulator.iam_enforcement import role_may
from loopline.emulator.lambda_limits import TooManyRequests
from loopline.emulator.template_references import remove_resources

DEFAULT_MAXIMUM_RETRY_ATTEMPTS = 2
# pauses before the 1st and 2nd retry; AWS: about 1 and 2 minutes
RETRY_DELAYS_SECONDS: list[float] = [1.0, 2.0]
# a throttled asynchronous invocation goes back to Lambda's queue (for up to MaximumEventAgeInSeconds, 6 h)
THROTTLE_RETRY_SECONDS = 0.5


def extract_event_invoke_configs(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Remove the `AWS::Lambda::EventInvokeConfig` resources from `template` (in place); return their properties."""
    found = {k: r["Properties"] for k, r in template["Resources"].items()
             if r.get("Type") == "AWS::Lambda::EventInvokeConfig"}
    remove_resources(template, set(found))
    return list(found.values())


def apply_event_invoke_configs(lambda_client: Any, configs: list[dict[str, Any]],
                               resolve: Callable[[Any], str]) -> None:
    """PutFunctionEventInvokeConfig for each extracted config (`resolve` turns Ref/GetAtt into names/ARNs)."""
    for properties in configs:
        arguments: dict[str, Any] = {"FunctionName": resolve(properties["FunctionName"])}
        if "MaximumRetryAttempts" in properties:
            arguments["MaximumRetryAttempts"] = int(properties["MaximumRetryAttempts"])
        if "MaximumEventAgeInSeconds" in properties:
            arguments["MaximumEventAgeInSeconds"] = int(properties["MaximumEventAgeInSeconds"])
        destinations = {kind: {"Destination": resolve(target["Destination"])}
                        for kind, target in properties.get("DestinationConfig", {}).items()}
        if destinations:
            arguments["DestinationConfig"] = destinations
        lambda_client.put_function_event_invoke_config(**arguments)


def invocation_record(function: LambdaFunction, payload: Any, error: Any, attempts: int) -> dict[str, Any]:
    """The record Lambda sends to an on-failure destination after the retries are exhausted."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": f"{function.function_arn}:$LATEST",
                           "condition": "RetriesExhausted", "approximateInvokeCount": attempts},
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": error,
    }


def invoke_asynchronously(function: LambdaFunction, body: str) -> None:
    """Run an asynchronous invocation as Lambda does: retries, then the on-failure destination."""
    config = function.event_invoke_config[0].config if function.event_invoke_config else {}
    retries = int(config.get("MaximumRetryAttempts", DEFAULT_MAXIMUM_RETRY_ATTEMPTS))
    attempts = 0
    while True:
        attempts += 1
        headers: dict[str, str] = {}
        try:
            result = function.invoke(body, {}, headers)
        except TooManyRequests:  # a throttle is not an attempt: Lambda queues the event again
            attempts -= 1
            time.sleep(THROTTLE_RETRY_SECONDS)
            continue
        if "x-amz-function-error" not in headers:
            return
        if attempts > retries:
            break
        time.sleep(RETRY_DELAYS_SECONDS[min(attempts - 1, len(RETRY_DELAYS_SECONDS) - 1)])
    destination = config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    if not destination:
        return  # like Lambda without a destination: the event is dropped (the reason every function has one)
    record = invocation_record(function, _json_or_text(body), _json_or_text(result), attempts)
    # Lambda sends the record with the function's execution role, which must allow it
    if not role_may(function.role, "sqs:SendMessage", destination):
        print(f"loopline: {function.function_name}'s role may not sqs:SendMessage to its on-failure destination "
              f"{destination}; the event is dropped, as Lambda drops it", file=sys.stderr)
        return
    _send(destination, json.dumps(record))


def _send(destination_arn: str, message: str) -> None:
    _, _, service, region, account, name = destination_arn.split(":", 5)
    if service != "sqs":
        raise ValueError(f"on-failure destination {destination_arn}: only SQS queues are emulated")
    sqs_backends[account][region].send_message(name, message)


def _json_or_text(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        return json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError:
        return value
