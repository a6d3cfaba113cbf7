"""What happens after a step: start the training state machine, ask for a monitoring run, or stand aside.

Every start is idempotent: an execution's name is derived from what triggered it, so a redelivered trigger
starts the same execution (or finds it already started) instead of a second one. One training run at a time is
decided by a lease object written with S3 conditional writes, not by listing executions (eventually consistent).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopline_runtime.bucket_layout import TRAINING_LEASE_KEY
from loopline_runtime.errors import LooplineError
from loopline_runtime.storage import ObjectChanged, ObjectExists, ObjectNotFound, ObjectStore

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_stepfunctions import SFNClient

# training runs started by the quality alarm (its EventBridge rule's input, or monitoring while the alarm stays in
# ALARM): their gate judges challenger and champion on the batches that breached (evaluation.regime_decision)
REGIME_REASONS = frozenset({"alarm", "alarm_persists"})


class TrainingAlreadyRunning(LooplineError):
    """Another training execution holds the lease and is still running; this one stands aside (concurrent
    triggers -> one run)."""


class TrainingQueued(LooplineError):
    """The lease holder waits for a person's approval (up to gate.approval_timeout_seconds): this trigger's data
    came after that challenger was trained, so it waits and trains after the approval instead of standing aside."""


def mark_awaiting_approval(store: ObjectStore, execution_arn: str) -> None:
    """Note on the lease that its holder now waits for a person: triggers meanwhile queue (TrainingQueued)."""
    try:
        current, etag = store.get_json_with_etag(TRAINING_LEASE_KEY)
    except ObjectNotFound:
        return
    if current.get("execution_arn") != execution_arn:
        return  # not the holder (a run without the lease never gets this far)
    with contextlib.suppress(ObjectChanged):  # taken over meanwhile: the new holder is not waiting
        store.put_json(TRAINING_LEASE_KEY, {**current, "awaiting_approval": True}, if_match=etag)


def release_training_lease(store: ObjectStore, execution_arn: str, *, why: str) -> bool:
    """Give the lease up while this execution is still running (a shadow waits days for live labels): the next
    trigger takes it over like a stopped holder's. Only the holder releases; True when it did."""
    try:
        current, etag = store.get_json_with_etag(TRAINING_LEASE_KEY)
    except ObjectNotFound:
        return False
    if current.get("execution_arn") != execution_arn:
        return False
    try:
        store.put_json(TRAINING_LEASE_KEY, {"execution_arn": "", "released_by": execution_arn, "why": why,
                                            "released_at": datetime.now(UTC).isoformat()}, if_match=etag)
    except ObjectChanged:  # taken over meanwhile: not ours to release
        return False
    return True


def execution_name(reason: str, subject: str) -> str:
    """The Step Functions execution name for a trigger (80 chars of [A-Za-z0-9-_]): the same trigger, the same name."""
    reason = re.sub(r"[^A-Za-z0-9_-]", "-", reason)[:20]
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", subject)
    room = 79 - len(reason)
    if safe != subject or len(safe) > room:  # shortened or rewritten: a digest keeps distinct subjects apart
        digest = hashlib.sha256(subject.encode("utf-8")).hexdigest()[:10]
        safe = f"{safe[: room - 11]}-{digest}"
    return f"{reason}-{safe}"


def execution_arn_for(state_machine_arn: str, name: str) -> str:
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name


def start_training(sfn: SFNClient, state_machine_arn: str, *, reason: str, dataset_version: str | None = None) -> str:
    """Start the training execution for this trigger, or find it already started; returns its ARN."""
    payload: dict[str, Any] = {"reason": reason}
    if dataset_version:
        payload["dataset_version"] = dataset_version
    name = execution_name(reason, dataset_version or "run")
    try:
        response = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload))
    except sfn.exceptions.ExecutionAlreadyExists:
        return execution_arn_for(state_machine_arn, name)  # a repeated trigger: that execution ran or runs
    return str(response["executionArn"])


def request_monitoring(lambda_client: LambdaClient, function_name: str, *, dataset_version: str, reason: str) -> None:
    """Ask the monitor function (asynchronously) to measure the champion on a new labeled batch."""
    lambda_client.invoke(
        FunctionName=function_name,
        InvocationType="Event",
        Payload=json.dumps({"action": "monitor", "dataset_version": dataset_version, "reason": reason}).encode(),
    )


def acquire_training_lease(store: ObjectStore, sfn: SFNClient, execution_arn: str) -> None:
    """Take the one-training-run lease for `execution_arn`, or raise TrainingAlreadyRunning.

    The lease is created with If-None-Match: * (exactly one of any number of concurrent executions creates it).
    A lease whose holder has stopped (succeeded, failed, timed out: DescribeExecution on one ARN is strongly
    consistent) is taken over with If-Match on the ETag read, so two executions cannot both take over.
    """
    lease = {"execution_arn": execution_arn, "acquired_at": datetime.now(UTC).isoformat()}
    try:
        store.put_json(TRAINING_LEASE_KEY, lease, create_only=True)
        return
    except ObjectExists:
        pass
    try:
        current, etag = store.get_json_with_etag(TRAINING_LEASE_KEY)
    except ObjectNotFound:  # released between our write and our read: try once more from the start
        current, etag = {"execution_arn": ""}, None
    holder = str(current.get("execution_arn", ""))
    if holder == execution_arn:
        return  # a retry of this execution's own train step
    if holder and _is_running(sfn, holder):
        if current.get("awaiting_approval"):
            raise TrainingQueued(
                f"training execution {holder.rsplit(':', 1)[-1]} waits for a person's approval; this trigger "
                "trains after it is answered")
        raise TrainingAlreadyRunning(
            f"training execution {holder.rsplit(':', 1)[-1]} holds the training lease and is still running; "
            "this trigger is covered by it"
        )
    try:
        if etag is None:
            store.put_json(TRAINING_LEASE_KEY, lease, create_only=True)
        else:
            store.put_json(TRAINING_LEASE_KEY, lease, if_match=etag)
    except (ObjectExists, ObjectChanged):
        raise TrainingAlreadyRunning(
            "another training execution took over the training lease at the same moment; this trigger is covered "
            "by it"
        ) from None


def _is_running(sfn: SFNClient, execution_arn: str) -> bool:
    try:
        return str(sfn.describe_execution(executionArn=execution_arn)["status"]) == "RUNNING"
    except sfn.exceptions.ExecutionDoesNotExist:
        return False


class UploadFollowUps:
    """What may follow an accepted upload, on AWS: start the training state machine for it, or ask the monitor
    function (asynchronously) to measure the champion on it. The adapter over Step Functions and Lambda."""

    def __init__(self, sfn: SFNClient, lambda_client: LambdaClient, *, state_machine_arn: str,
                 monitor_function_name: str) -> None:
        self.sfn = sfn
        self.lambda_client = lambda_client
        self.state_machine_arn = state_machine_arn
        self.monitor_function_name = monitor_function_name

    def start_training(self, dataset_version: str) -> str:
        return start_training(self.sfn, self.state_machine_arn, reason="new_data", dataset_version=dataset_version)

    def request_monitoring(self, dataset_version: str) -> None:
        request_monitoring(self.lambda_client, self.monitor_function_name, dataset_version=dataset_version,
                           reason="new_data")
