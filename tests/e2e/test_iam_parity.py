"""What passes offline passes on AWS: every function runs as its role, and the emulator refuses what IAM refuses.

The loop after its first champion needs the ingest role to read the champion's manifest (to leave the champion's
own training data unmonitored). With that grant the loop goes on; without it, ingest's read is AccessDenied in the
worker, the upload event is retried and lands in the ingest on-failure queue (whose alarm notifies), and nothing
is measured (the defect that passed every offline test while moto did not enforce IAM)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loopline.client import StackClient
from loopline.examples import breast_cancer, split_batches
from loopline_runtime.bucket_layout import CHAMPION_KEY, MONITORING_PREFIX
from tests.support.notifications import Inbox
from tests.support.stack import REPO_ROOT

INGEST_MODELS_READ = (
    '                - !Sub "arn:${AWS::Partition}:s3:::${AWS::StackName}-artifacts-${AWS::AccountId}-${AWS::Region}'
    '/models/*"\n'
)


@pytest.fixture(scope="module")
def batches() -> list[Any]:
    initial, labeled = split_batches(breast_cancer(), [250, 100])
    return [initial, labeled]


@pytest.fixture
def template_without_ingest_models_read() -> Iterator[Path]:
    """template.yaml with the ingest role's models/ read taken out (beside it: CodeUri paths are relative)."""
    text = (REPO_ROOT / "template.yaml").read_text(encoding="utf-8")
    ingest = text.index("  IngestFunction:\n")
    grant = text.index(INGEST_MODELS_READ, ingest)
    assert grant < text.index("  TrainFunction:\n"), "the ingest role's models/ read moved: update this test"
    path = REPO_ROOT / f".e2e-{uuid.uuid4().hex[:6]}.template.yaml"
    path.write_text(text[:grant] + text[grant + len(INGEST_MODELS_READ):], encoding="utf-8")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _first_champion(stack: StackClient, initial: Any) -> str:
    stack.upload_csv(initial, "initial.csv")
    execution = stack.wait_for_new_execution(set(), timeout=180)
    assert stack.wait_for_execution(execution["executionArn"], timeout=600)["status"] == "SUCCEEDED"
    return str(stack.read_json(CHAMPION_KEY)["version"])


def _failure_records(stack: StackClient, timeout: float) -> list[dict[str, Any]]:
    sqs = stack.client("sqs")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = sqs.receive_message(QueueUrl=stack.outputs["IngestFailureQueueUrl"], MaxNumberOfMessages=10,
                                    WaitTimeSeconds=1)
        if reply.get("Messages"):
            return [json.loads(m["Body"]) for m in reply["Messages"]]
    return []


def test_a_labeled_batch_after_the_first_champion_is_measured_with_every_role_enforced(
        start_stack: Callable[..., StackClient], batches: list[Any]) -> None:
    # given a stack whose functions run as their roles, with a first champion
    stack = start_stack()
    champion = _first_champion(stack, batches[0])

    # when a labeled batch arrives
    stack.upload_csv(batches[1], "labeled.csv")

    # then ingest hands it to monitoring, which measures the champion on it
    keys = stack.wait_for_keys(MONITORING_PREFIX, 1, timeout=180)
    assert keys, "the labeled batch was not measured"
    assert stack.read_json(keys[0])["champion_version"] == champion


def test_without_the_ingest_roles_models_read_the_upload_is_denied_and_kept_in_the_on_failure_queue(
        start_stack: Callable[..., StackClient], batches: list[Any],
        template_without_ingest_models_read: Path) -> None:
    # given a stack from a template whose ingest role may not read models/, with a first champion
    stack = start_stack(template=template_without_ingest_models_read)
    _first_champion(stack, batches[0])
    inbox = Inbox(stack)

    # when a labeled batch arrives
    stack.upload_csv(batches[1], "labeled.csv")

    # then ingest's read of the champion's manifest is AccessDenied, as on AWS; after its retries the event is
    # kept in the ingest on-failure queue with that error, the queue's alarm tells the notification topic, and
    # the champion is never measured
    fired = inbox.wait_for("alarm_alarm", timeout=180,
                           where=lambda message: message["AlarmName"].endswith("-ingest-failures"))
    assert "ingest-failures queue" in fired["message"]["AlarmDescription"]
    records = _failure_records(stack, timeout=120)
    assert len(records) == 1, "the denied upload event did not reach the ingest on-failure queue"
    error = records[0]["responsePayload"]
    assert "AccessDenied" in error["errorMessage"] and "s3:GetObject" in error["errorMessage"]
    assert "/models/" in error["errorMessage"] and "manifest.json" in error["errorMessage"]
    assert records[0]["requestContext"]["approximateInvokeCount"] == 3
    assert stack.keys(MONITORING_PREFIX) == []
