"""What happens after a step: start the training state machine, ask for a monitoring run, or stand aside."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from loopline_runtime.errors import LooplineError


class TrainingAlreadyRunning(LooplineError):
    """An older training execution is still running; this one stands aside (concurrent triggers -> one run)."""


def execution_name(reason: str, subject: str) -> str:
    """A unique, valid Step Functions execution name (80 chars of [A-Za-z0-9-_])."""
    reason = re.sub(r"[^A-Za-z0-9_-]", "-", reason)[:20]
    subject = re.sub(r"[^A-Za-z0-9_-]", "-", subject)[: 80 - len(reason) - 10]
    return f"{reason}-{subject}-{uuid.uuid4().hex[:8]}"


def start_training(sfn: Any, state_machine_arn: str, *, reason: str, dataset_version: str | None = None) -> str:
    """Start a training execution; returns its ARN."""
    payload: dict[str, Any] = {"reason": reason}
    if dataset_version:
        payload["dataset_version"] = dataset_version
    response = sfn.start_execution(
        stateMachineArn=state_machine_arn,
        name=execution_name(reason, dataset_version or "run"),
        input=json.dumps(payload),
    )
    return str(response["executionArn"])


def request_monitoring(lambda_client: Any, function_name: str, *, dataset_version: str, reason: str) -> None:
    """Ask the evaluate function (asynchronously) to measure the champion on a new labeled batch."""
    lambda_client.invoke(
        FunctionName=function_name,
        InvocationType="Event",
        Payload=json.dumps({"action": "monitor", "dataset_version": dataset_version, "reason": reason}).encode(),
    )


def ensure_single_training_run(sfn: Any, state_machine_arn: str, execution_arn: str) -> None:
    """Raise TrainingAlreadyRunning when an older execution of the state machine is still running.

    Every concurrent execution sees the same set of running executions, so exactly the oldest one proceeds.
    """
    mine = sfn.describe_execution(executionArn=execution_arn)["startDate"]
    paginator = sfn.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=state_machine_arn, statusFilter="RUNNING"):
        for other in page["executions"]:
            if other["executionArn"] == execution_arn:
                continue
            if (other["startDate"], other["executionArn"]) < (mine, execution_arn):
                raise TrainingAlreadyRunning(
                    f"training execution {other['name']} (started {other['startDate'].isoformat()}) is still "
                    "running; this trigger is covered by it"
                )
