"""`loopline approve` / `loopline reject`: answer a training execution waiting for a person after the gate.

With `gate.approval: manual` the state machine asks the evaluate function (`lambda:invoke.waitForTaskToken`) to
publish an approval request on the notification topic, without the task token, and waits. The token is in that
state's scheduled parameters in the execution history (readable with states:GetExecutionHistory, which an approver
has and a topic subscriber does not), where these commands find it for a model version; they answer with
SendTaskSuccess (with who approved: the local user and the AWS identity, recorded on the promotion) or
SendTaskFailure(ApprovalRejected), and the state machine promotes or rejects.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loopline.client import StackClient
from loopline_runtime.errors import UnknownModelVersion

WAIT_STATE = "Wait for approval"
REJECTED_ERROR = "ApprovalRejected"


@dataclass(frozen=True)
class PendingApproval:
    model_version: str
    execution_arn: str
    task_token: str
    requested_at: str
    request: dict[str, Any]


def pending_approvals(stack: StackClient) -> list[PendingApproval]:
    """Running executions waiting in the approval state, oldest first."""
    running = stack.sfn.list_executions(stateMachineArn=stack.state_machine_arn, statusFilter="RUNNING")
    pending = []
    for execution in sorted(running["executions"], key=lambda e: e["startDate"]):
        approval = _waiting(stack, execution["executionArn"])
        if approval:
            pending.append(approval)
    return pending


def _waiting(stack: StackClient, execution_arn: str) -> PendingApproval | None:
    events = stack.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    entered = [e for e in events if "stateEnteredEventDetails" in e]
    if not entered or entered[-1]["stateEnteredEventDetails"]["name"] != WAIT_STATE:
        return None
    scheduled = [e for e in events if e.get("type") == "TaskScheduled" and e["id"] > entered[-1]["id"]]
    if not scheduled:
        return None
    parameters = json.loads(scheduled[-1]["taskScheduledEventDetails"]["parameters"])
    payload = parameters.get("Payload")
    request = json.loads(payload) if isinstance(payload, str) else dict(payload or {})
    return PendingApproval(str(request["model_version"]), execution_arn, str(request["task_token"]),
                           str(scheduled[-1]["timestamp"].isoformat()), request)


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
