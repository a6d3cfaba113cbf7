"""Lambda's invocation limits, as the Lambda service applies them (the checks; lambda_async_invocation and
lambda_workers call them):

- request payload: 6,291,456 bytes for a synchronous invocation, 262,144 bytes for an asynchronous one
  (`RequestEntityTooLargeException`, HTTP 413);
- response payload of a synchronous invocation: 6,291,556 bytes, else the invocation fails with
  `Function.ResponseSizeTooLarge`;
- `ReservedConcurrentExecutions`: one more concurrent invocation is throttled (`TooManyRequestsException`, HTTP
  429, reason `ReservedFunctionConcurrentInvocationLimitExceeded`); asynchronous sources retry throttles;
- environment variables: at most 4 KB (keys and values), refused when the function is created.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from unittest import mock

from moto.awslambda.models import LambdaBackend, LambdaFunction
from moto.core.exceptions import JsonRESTError

from loopline.emulator.enforcement_switches import enforced
from loopline.emulator.patch_sets import all_of

SYNCHRONOUS_REQUEST_LIMIT = 6_291_456
ASYNCHRONOUS_REQUEST_LIMIT = 262_144
SYNCHRONOUS_RESPONSE_LIMIT = 6_291_556
ENVIRONMENT_LIMIT = 4_096


class RequestEntityTooLarge(JsonRESTError):
    code = 413

    def __init__(self, limit: int, operation: str) -> None:
        super().__init__("RequestEntityTooLargeException",
                         f"Request must be smaller than {limit} bytes for the {operation} operation")


class TooManyRequests(JsonRESTError):
    code = 429

    def __init__(self) -> None:
        super().__init__("TooManyRequestsException", "Rate Exceeded.")
        self.description = json.dumps({"__type": "TooManyRequestsException", "message": "Rate Exceeded.",
                                       "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"})


class EnvironmentTooLarge(JsonRESTError):
    code = 400

    def __init__(self, size: int) -> None:
        super().__init__(
            "InvalidParameterValueException",
            "Lambda was unable to configure your environment variables because the environment variables you have "
            f"provided exceeded the 4KB limit. String measured: {size} bytes",
        )


def check_request_size(body: str | bytes | None, asynchronous: bool) -> None:
    """Raise RequestEntityTooLarge for a payload over the invocation type's limit."""
    if not enforced("payload-size"):
        return
    size = len(body.encode("utf-8") if isinstance(body, str) else body or b"")
    if asynchronous and size > ASYNCHRONOUS_REQUEST_LIMIT:
        raise RequestEntityTooLarge(ASYNCHRONOUS_REQUEST_LIMIT, "InvokeAsync")
    if not asynchronous and size > SYNCHRONOUS_REQUEST_LIMIT:
        raise RequestEntityTooLarge(SYNCHRONOUS_REQUEST_LIMIT, "Invoke")


def limit_response(payload: str | bytes, response_headers: dict[str, Any]) -> str | bytes:
    """A synchronous response over 6 MB becomes Lambda's Function.ResponseSizeTooLarge error."""
    size = len(payload.encode("utf-8") if isinstance(payload, str) else payload)
    if not enforced("payload-size") or size <= SYNCHRONOUS_RESPONSE_LIMIT:
        return payload
    response_headers["x-amz-function-error"] = "Unhandled"
    error = {"errorType": "Function.ResponseSizeTooLarge",
             "errorMessage": f"Response payload size exceeded maximum allowed payload size "
                             f"({SYNCHRONOUS_RESPONSE_LIMIT} bytes)."}
    text = json.dumps(error)
    return text.encode("utf-8") if isinstance(payload, bytes) else text


def environment_size(variables: dict[str, Any]) -> int:
    """The size Lambda counts against the 4 KB limit: every key and value."""
    return sum(len(str(k).encode("utf-8")) + len(str(v).encode("utf-8")) for k, v in variables.items())


def check_environment(variables: dict[str, Any] | None) -> None:
    """Raise EnvironmentTooLarge when a function's environment passes 4 KB."""
    size = environment_size(variables or {})
    if enforced("environment-size") and size > ENVIRONMENT_LIMIT:
        raise EnvironmentTooLarge(size)


class Concurrency:
    """In-flight invocations per function, against its ReservedConcurrentExecutions."""

    def __init__(self) -> None:
        self._running: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, function_arn: str, reserved: Any) -> Iterator[None]:
        """Hold one of the function's concurrent executions; raise TooManyRequests when none is free."""
        with self._lock:
            limit = int(reserved) if reserved not in (None, "") and enforced("concurrency") else None
            if limit is not None and self._running[function_arn] >= limit:
                raise TooManyRequests()
            self._running[function_arn] += 1
        try:
            yield
        finally:
            with self._lock:
                self._running[function_arn] -= 1


CONCURRENCY = Concurrency()


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, str) else str(value)


def refuse_large_environments() -> AbstractContextManager[object]:
    """Patch CreateFunction and UpdateFunctionConfiguration (CloudFormation included) to apply the 4 KB limit."""
    create, update = LambdaBackend.create_function, LambdaBackend.update_function_configuration

    def create_function(self: LambdaBackend, spec: dict[str, Any]) -> Any:
        variables = (spec.get("Environment") or {}).get("Variables")
        check_environment(variables)
        if variables:  # Lambda keeps every value as a string; moto's CloudFormation passes a Number parameter as is
            spec["Environment"]["Variables"] = {name: _as_text(value) for name, value in variables.items()}
        return create(self, spec)

    def update_function_configuration(self: LambdaBackend, function_name: str, qualifier: str,
                                      body: dict[str, Any]) -> Any:
        if "Environment" in body:
            check_environment((body.get("Environment") or {}).get("Variables"))
        return update(self, function_name, qualifier, body)

    return all_of(mock.patch.object(LambdaBackend, "create_function", create_function),
                  mock.patch.object(LambdaBackend, "update_function_configuration", update_function_configuration))


def keep_ephemeral_storage() -> AbstractContextManager[object]:
    """Patch moto's CloudFormation to keep a function's `EphemeralStorage` (it passes only a few properties on, and
    every stack function got the default 512 MB /tmp whatever the template said)."""
    create = LambdaFunction.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_from_cloudformation_json(cls: type[LambdaFunction], resource_name: str,
                                        cloudformation_json: dict[str, Any], account_id: str, region_name: str,
                                        **kwargs: Any) -> LambdaFunction:
        function: LambdaFunction = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        storage = (cloudformation_json.get("Properties") or {}).get("EphemeralStorage") or {}
        if "Size" in storage:
            function.ephemeral_storage = int(storage["Size"])  # moto keeps the number it was given
        return function

    return mock.patch.object(LambdaFunction, "create_from_cloudformation_json",
                             classmethod(create_from_cloudformation_json))
