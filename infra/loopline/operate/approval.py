"""`loopline approve` / `loopline reject`: answer a training execution waiting for a person after the gate.

With `gate.approval: manual` the state machine asks the evaluate function (`lambda:invoke.waitForTaskToken`) to
publish an approval request on the notification topic, without the task token, and waits. The token is in that
state's scheduled parameters in the execution history (readable with states:GetExecutionHistory, which an approver
has and a topic subscriber does not), where these commands find it for a model version; they answer with
SendTaskSuccess (with who approved: the local user and the AWS identity, recorded on the promotion) or
SendTaskFailure(ApprovalRejected), and the state machine promotes or rejects.

With `gate.shadow`, a challenger in shadow waits in SHADOW_STATE the same way (its token is renewed every
gate.shadow.check_seconds); `loopline promote-now` / `loopline reject` answer it with SendTaskSuccess
({"decision": "promote" | "reject", "decided_by": who, "note": why}), recorded on its evaluation.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loopline.client import StackClient
from loopline_runtime.bucket_layout import MODELS_PREFIX
from loopline_runtime.errors import UnknownModelVersion

WAIT_STATE = "Wait for approval"
SHADOW_STATE = "Shadow: wait for live labels or a person"
REJECTED_ERROR = "ApprovalRejected"


@dataclass(frozen=True)
class PendingApproval:
    model_version: str
    execution_arn: str
    task_token: str
    requested_at: str
    request: dict[str, Any]


def pending_approvals(stack: StackClient, state: str = WAIT_STATE) -> list[PendingApproval]:
    """Running executions waiting in the approval state (or `state`), oldest first."""
    running = stack.sfn.list_executions(stateMachineArn=stack.state_machine_arn, statusFilter="RUNNING")
    pending = []
    for execution in sorted(running["executions"], key=lambda e: e["startDate"]):
        approval = _waiting(stack, execution["executionArn"], state)
        if approval:
            pending.append(approval)
    return pending


def _waiting(stack: StackClient, execution_arn: str, state: str = WAIT_STATE) -> PendingApproval | None:
    events = _history(stack, execution_arn)
    entered = [e for e in events if "stateEnteredEventDetails" in e]
    if not entered or entered[-1]["stateEnteredEventDetails"]["name"] != state:
        return None
    scheduled = [e for e in events if e.get("type") == "TaskScheduled" and e["id"] > entered[-1]["id"]]
    if not scheduled:
        return None
    parameters = json.loads(scheduled[-1]["taskScheduledEventDetails"]["parameters"])
    payload = parameters.get("Payload")
    request = json.loads(payload) if isinstance(payload, str) else dict(payload or {})
    return PendingApproval(str(request["model_version"]), execution_arn, str(request["task_token"]),
                           str(scheduled[-1]["timestamp"].isoformat()), request)


def _history(stack: StackClient, execution_arn: str) -> list[dict[str, Any]]:
    """The whole history (a shadow's loop outgrows one page), oldest first."""
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = stack.sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def find_in_shadow(stack: StackClient, version: str) -> PendingApproval | None:
    for waiting in pending_approvals(stack, SHADOW_STATE):
        if waiting.model_version == version:
            return waiting
    return None


def end_shadow(stack: StackClient, version: str, *, promote: bool, by: str, reason: str,
               timeout: float = 120) -> dict[str, Any]:
    """End the shadow of `version` by hand; returns the decision recorded on its evaluation.json.

    Raises:
        UnknownModelVersion: no execution waits with `version` in shadow.
    """
    waiting = find_in_shadow(stack, version)
    if waiting is None:
        raise UnknownModelVersion(f"{version!r} is not in shadow (no training execution waits on its live labels)")
    stack.sfn.send_task_success(taskToken=waiting.task_token, output=json.dumps(
        {"decision": "promote" if promote else "reject", "decided_by": by, "note": reason}))
    deadline = time.monotonic() + timeout
    key = f"{MODELS_PREFIX}{version}/evaluation.json"
    while True:
        shadow = stack.read_json(key).get("shadow") or {}
        if shadow.get("status") in ("promoted", "rejected") or time.monotonic() > deadline:
            return dict(shadow)
        time.sleep(0.5)


def find_pending(stack: StackClient, version: str) -> PendingApproval:
    pending = pending_approvals(stack)
    for approval in pending:
        if approval.model_version == version:
            return approval
    waiting = ", ".join(a.model_version for a in pending) or "none"
    raise UnknownModelVersion(f"no execution is waiting for approval of {version!r} (waiting: {waiting})")


def answer(stack: StackClient, version: str, *, approve: bool, by: str, reason: str,
           on_state: Callable[[str, float], None] | None = None, timeout: float = 300) -> dict[str, Any]:
    """Approve or reject `version`; follow its execution to the end and return the final description."""
    approval = find_pending(stack, version)
    if approve:
        stack.sfn.send_task_success(taskToken=approval.task_token,
                                    output=json.dumps({"approved_by": by, "note": reason}))
    else:
        stack.sfn.send_task_failure(taskToken=approval.task_token, error=REJECTED_ERROR,
                                    cause=f"rejected by {by}: {reason}"[:32768])
    return dict(stack.wait_for_execution(approval.execution_arn, timeout=timeout, on_state=on_state))
