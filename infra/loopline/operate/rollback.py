"""`loopline rollback`: start the rollback state machine and follow it.

The state machine verifies the target in the evaluate function and moves the champion pointer with the same
`promote` action as a gate's promotion (If-Match on the pointer's ETag, then the history record), so the CLI
needs no write access to the registry.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loopline.client import StackClient
from loopline_runtime.bucket_layout import CHAMPION_KEY
from loopline_runtime.errors import RollbackRefused
from loopline_runtime.orchestration import execution_name


@dataclass(frozen=True)
class RollbackOutcome:
    execution_arn: str
    pointer: dict[str, Any]


def requester(stack: StackClient) -> str:
    """Who asks: the local user and the AWS identity the request is signed with."""
    user = getpass.getuser()
    try:
        arn = stack.client("sts").get_caller_identity()["Arn"]
    except Exception:  # an identity we cannot read still leaves the local user on the record
        return user
    return f"{user} ({arn})"


def request_rollback(stack: StackClient, *, to_version: str | None, note: str, requested_by: str,
                     on_state: Callable[[str, float], None] | None = None, timeout: float = 300) -> RollbackOutcome:
    """Roll the champion back to `to_version` (None: the champion's previous version); wait for the outcome.

    Raises:
        RollbackRefused: the state machine refused (unknown version, failed verification, other schema, ...),
            with the evaluate function's reason.
    """
    payload = {"to_version": to_version, "requested_by": requested_by, "note": note}
    started = stack.sfn.start_execution(stateMachineArn=stack.outputs["RollbackStateMachineArn"],
                                        name=rollback_execution_name(to_version),
                                        input=json.dumps(payload))
    arn = str(started["executionArn"])
    described = stack.wait_for_execution(arn, timeout=timeout, on_state=on_state)
    if described["status"] != "SUCCEEDED":
        raise RollbackRefused(f"rollback refused: {failure_reason(stack, arn)}; the champion is unchanged")
    return RollbackOutcome(arn, dict(stack.read_json(CHAMPION_KEY)))


def rollback_execution_name(to_version: str | None) -> str:
    """Each request is its own execution (a second rollback to the same version is a new request)."""
    requested = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return execution_name("rollback", f"{to_version or 'previous'}-{requested}")


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
