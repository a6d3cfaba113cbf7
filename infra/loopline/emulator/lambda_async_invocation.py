"""Gap: moto runs `Invoke` with InvocationType=Event synchronously; Lambda queues it and answers 202 at once
(retries and the on-failure destination: on_failure_destinations). Every invocation passes Lambda's limits
first (payload sizes, reserved concurrency: lambda_limits)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any
from unittest import mock

from moto.awslambda.models import LambdaFunction

from loopline.emulator.background import run_in_background
from loopline.emulator.lambda_limits import CONCURRENCY, check_request_size, limit_response
from loopline.emulator.on_failure_destinations import invoke_asynchronously

_synchronous_invoke = LambdaFunction.invoke


def invoke_event_type_asynchronously() -> AbstractContextManager[object]:
    """Patch LambdaFunction.invoke so Event invocations return immediately and run in the background."""

    def invoke(self: LambdaFunction, body: str, request_headers: Any, response_headers: Any) -> str | bytes:
        invocation_type = (request_headers or {}).get("x-amz-invocation-type") or (request_headers or {}).get(
            "X-Amz-Invocation-Type"
        )
        check_request_size(body, asynchronous=invocation_type == "Event")
        if invocation_type == "Event":
            run_in_background(f"invoke-{self.function_name}", invoke_asynchronously, self, body)
            return ""
        with CONCURRENCY.slot(self.function_arn, self.reserved_concurrency):
            payload = _synchronous_invoke(self, body, request_headers, response_headers)
        return limit_response(payload, response_headers)

    return mock.patch.object(LambdaFunction, "invoke", invoke)
