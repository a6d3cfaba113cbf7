"""`loopline rollback`: ask the rollback API, signed with SigV4, then follow the rollback state machine.

The API route (`POST /rollback`, `Authorizer: AWS_IAM`) records who asks from the request's signature, not from
anything this client says; its function starts the state machine, which verifies the target in the evaluate
function and moves the champion pointer with the same `promote` action as a gate's promotion (If-Match on the
pointer's ETag, then the history record). So the CLI needs `execute-api:Invoke` on that route and read access to
follow the execution, and no write access to the registry.
"""

from __future__ import annotations

import getpass
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from loopline.client import HttpResponse, StackClient, send
from loopline_runtime.bucket_layout import CHAMPION_KEY
from loopline_runtime.errors import LooplineError, RollbackRefused


@dataclass(frozen=True)
class RollbackOutcome:
    execution_arn: str
    requested_by: str  # the caller the rollback API authenticated, as recorded
    pointer: dict[str, Any]


class RollbackNotAllowed(LooplineError):
    """The rollback API refused the request before anything started (not signed, not allowed, bad request)."""


def requester(stack: StackClient) -> str:
    """Who asks (approvals): the local user and the AWS identity the request is signed with."""
    user = getpass.getuser()
    try:
        arn = stack.client("sts").get_caller_identity()["Arn"]
    except Exception:  # an identity we cannot read still leaves the local user on the record
        return user
    return f"{user} ({arn})"


def signed_post(url: str, payload: dict[str, Any], credentials: Any, region: str) -> HttpResponse:
    """POST `payload` as JSON to an API Gateway route with `Authorizer: AWS_IAM`, signed with SigV4 (service
    execute-api) by `credentials` (None: unsigned, as a test of the route's refusal does)."""
    data = json.dumps(payload).encode("utf-8")
    request = AWSRequest(method="POST", url=url, data=data, headers={"Content-Type": "application/json"})
    if credentials is not None:
        SigV4Auth(credentials, "execute-api", region).add_auth(request)
    return send(urllib.request.Request(url, data=data, method="POST", headers=dict(request.headers.items())),
                timeout=60)


def ask_for_rollback(stack: StackClient, *, to_version: str | None, note: str, credentials: Any = "stack",
                     extra: dict[str, Any] | None = None) -> HttpResponse:
    """The rollback API's answer to one request (`credentials`: "stack" signs as the stack client does;
    `extra`: more body fields, which the API refuses)."""
    signer = stack.credentials() if credentials == "stack" else credentials
    return signed_post(stack.outputs["RollbackApiUrl"], {"to_version": to_version, "note": note, **(extra or {})},
                       signer, stack.region)


def request_rollback(stack: StackClient, *, to_version: str | None, note: str,
                     on_state: Callable[[str, float], None] | None = None, timeout: float = 300) -> RollbackOutcome:
    """Roll the champion back to `to_version` (None: the champion's previous version); wait for the outcome.

    Raises:
        RollbackNotAllowed: the API refused the request (unsigned, no execute-api:Invoke, bad request).
        RollbackRefused: the state machine refused (unknown version, failed verification, other schema, ...),
            with the evaluate function's reason.
    """
    answer = ask_for_rollback(stack, to_version=to_version, note=note)
    if answer.status != 202 or not isinstance(answer.body, dict):
        body = answer.body if isinstance(answer.body, dict) else {}
        message = body.get("message") or body.get("Message") or answer.text[:300]
        fix = (". Fix: your AWS identity needs execute-api:Invoke on the route (see README, Rollback)"
               if answer.status == 403 else "")
        raise RollbackNotAllowed(f"the rollback API answered {answer.status}: {message}{fix}")
    arn = str(answer.body["execution_arn"])
    described = stack.wait_for_execution(arn, timeout=timeout, on_state=on_state)
    if described["status"] != "SUCCEEDED":
        raise RollbackRefused(f"rollback refused: {failure_reason(stack, arn)}; the champion is unchanged")
    return RollbackOutcome(arn, str(answer.body["requested_by"]), dict(stack.read_json(CHAMPION_KEY)))


def failure_reason(stack: StackClient, execution_arn: str) -> str:
    """The message of the last failed task in an execution's history (the typed error a Lambda raised)."""
    events = stack.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    for event in reversed(events):
        for key in ("lambdaFunctionFailedEventDetails", "taskFailedEventDetails", "executionFailedEventDetails"):
            details = event.get(key)
            if not details:
                continue
            cause = details.get("cause", "")
            try:
                parsed = json.loads(cause)
            except (TypeError, json.JSONDecodeError):
                parsed = None
            if isinstance(parsed, dict) and parsed.get("errorMessage"):
                return f"{parsed.get('errorType', details.get('error', 'Error'))}: {parsed['errorMessage']}"
            if key != "executionFailedEventDetails":
                return f"{details.get('error', 'Error')}: {cause}"
    return "the execution failed (see its history)"
