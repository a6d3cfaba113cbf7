"""Faults after an upload: every upload ends as a dataset version, a quarantined file with reason.json, or a record
in the ingest on-failure queue, whatever fails on the way."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from faults_support import CRASH, TIMEOUT, Loop, assert_invariant, failing_writes, upload_outcome

from loopline_runtime.bucket_layout import (
    BATCH_INCOMING_PREFIX,
    DATASET_INDEX_PREFIX,
    DATASETS_PREFIX,
    MONITORING_PREFIX,
    QUARANTINE_PREFIX,
)
from loopline_runtime.datasets import version_for


def _batch(batches: dict[str, pd.DataFrame], tag: int) -> pd.DataFrame:
    """A distinct labeled batch (its own dataset version): the clean rows with a few dropped."""
    return batches["rest"].drop(index=list(range(tag, tag + 3))).reset_index(drop=True)


def test_start_execution_failure_is_finished_by_the_retry(loop: Loop, cancer_batches: dict[str, Any],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # given no champion yet, and StartExecution failing once for the ingest function
    ingest = loop.handler("IngestFunction")
    original, calls = ingest.follow_ups.sfn.start_execution, []

    def start_execution(**kwargs: Any) -> Any:
        calls.append(kwargs["name"])
        if len(calls) == 1:
            raise ConnectionError("injected: StartExecution failed")
        return original(**kwargs)

    monkeypatch.setattr(ingest.follow_ups.sfn, "start_execution", start_execution)

    # when the first upload arrives
    key = loop.upload(cancer_batches["first"], "first.csv")

    # then Lambda's retry starts the training the first attempt could not, under the same name
    loop.wait_for(lambda: loop.client.executions(), what="the training execution")
    (execution,) = loop.client.executions()
    assert calls == [execution["name"], execution["name"]]
    assert loop.client.wait_for_execution(execution["executionArn"], timeout=300)["status"] == "SUCCEEDED"
    assert upload_outcome(loop, key) == "dataset"
    assert_invariant(loop)


@pytest.mark.parametrize(("write", "tag"), [
    pytest.param(lambda key: key.endswith("/data.csv"), 0, id="dataset-rows"),
    pytest.param(lambda key: key.startswith(DATASETS_PREFIX) and key.endswith("/manifest.json"), 4,
                 id="dataset-manifest"),
    pytest.param(lambda key: key.startswith(DATASET_INDEX_PREFIX), 8, id="dataset-index"),
])
def test_a_failed_dataset_write_is_finished_by_the_retry(loop: Loop, cancer_batches: dict[str, Any],
                                                         write: Any, tag: int) -> None:
    # given one of ingest's dataset writes failing once
    with failing_writes(write) as hit:
        # when a good upload arrives
        key = loop.upload(_batch(cancer_batches, tag), f"batch-{tag}.csv")

        # then Lambda's retry completes the dataset version
        assert loop.wait_for_upload(key) == "dataset"
    assert len(hit) == 1
    assert_invariant(loop)


@pytest.mark.parametrize("write", [
    pytest.param(lambda key: key.startswith(QUARANTINE_PREFIX) and key.endswith(".csv"), id="quarantine-copy"),
    pytest.param(lambda key: key.endswith("/reason.json"), id="quarantine-reason"),
])
def test_a_failed_quarantine_write_is_finished_by_the_retry(loop: Loop, cancer_batches: dict[str, Any],
                                                            write: Any) -> None:
    # given a write of the quarantine failing once
    rows = cancer_batches["rest"].drop(columns=[loop.config.target])
    with failing_writes(write) as hit:
        # when an upload without the target column arrives
        key = loop.upload(rows.iloc[: 40 + len(loop.uploads)], f"no-label-{len(loop.uploads)}.csv")

        # then the retry quarantines it with its reason
        assert loop.wait_for_upload(key) == "quarantined"
    assert len(hit) == 1
    assert_invariant(loop)


def test_a_write_failing_on_every_attempt_ends_in_the_on_failure_queue(loop: Loop,
                                                                        cancer_batches: dict[str, Any]) -> None:
    # given the dataset rows write failing on every attempt
    with failing_writes(lambda key: key.endswith("/data.csv"), times=10**6) as hit:
        # when a good upload arrives
        key = loop.upload(_batch(cancer_batches, 12), "unlucky.csv")

        # then after the first attempt and two retries its event is in the ingest on-failure queue, with the error
        assert loop.wait_for_upload(key) == "on_failure_queue"
    assert len(hit) == 3
    [record] = [r for r in loop.failure_messages("IngestFailureQueueUrl")
                if "unlucky.csv" in json.dumps(r["requestPayload"])]
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert "injected: PutObject" in record["responsePayload"]["errorMessage"]
    assert_invariant(loop)


@pytest.mark.parametrize("answer", [CRASH, TIMEOUT])
def test_an_ingest_crash_or_timeout_is_retried(loop: Loop, cancer_batches: dict[str, Any], answer: str) -> None:
    # given the ingest function crashing (or timing out) on its next invocation
    loop.answer_next("IngestFunction", answer)

    # when a good upload arrives
    key = loop.upload(_batch(cancer_batches, 16 if answer == CRASH else 20), f"after-{answer}.csv")

    # then the retry ingests it
    assert loop.wait_for_upload(key) == "dataset"
    assert_invariant(loop)


@pytest.mark.parametrize("answer", [CRASH, TIMEOUT])
def test_ingest_failing_every_attempt_ends_in_the_on_failure_queue(loop: Loop, cancer_batches: dict[str, Any],
                                                                   answer: str) -> None:
    # given the ingest function crashing (or timing out) on all three attempts
    loop.answer_next("IngestFunction", answer, answer, answer)

    # when an upload arrives
    key = loop.upload(_batch(cancer_batches, 24 if answer == CRASH else 28), f"lost-{answer}.csv")

    # then its event is kept in the on-failure queue with the error type
    assert loop.wait_for_upload(key) == "on_failure_queue"
    [record] = [r for r in loop.failure_messages("IngestFailureQueueUrl")
                if f"lost-{answer}.csv" in json.dumps(r["requestPayload"])]
    assert record["responsePayload"]["errorType"] in {"Runtime.ExitError", "Sandbox.Timedout"}
    assert_invariant(loop)


def test_the_same_event_delivered_five_times_makes_one_version_and_one_measurement(
        loop: Loop, cancer_batches: dict[str, Any]) -> None:
    # given a champion, and a new batch ingested once
    loop.settled()
    key = loop.upload(_batch(cancer_batches, 32), "repeated.csv")
    assert loop.wait_for_upload(key) == "dataset"
    version = version_for(loop.store.get_bytes(key))
    measured = f"{loop.registry.prefix(loop.registry.champion_version() or '')}measured/{version}.json"
    loop.wait_for(lambda: loop.store.exists(measured), what="the measurement")
    reports = loop.client.keys(MONITORING_PREFIX)
    executions = loop.client.executions()

    # when S3 delivers the same event five more times
    event = {"Records": [{"s3": {"bucket": {"name": loop.client.bucket}, "object": {"key": key}}}]}
    ingested, evaluated = (loop.runtime.invocations[f] for f in ("IngestFunction", "MonitorFunction"))
    for _ in range(5):
        loop.client.client("lambda").invoke(FunctionName=loop.function_names["IngestFunction"],
                                            InvocationType="Event", Payload=json.dumps(event).encode())
    loop.wait_for(lambda: loop.runtime.invocations["IngestFunction"] >= ingested + 5, what="five deliveries")
    loop.wait_for(lambda: loop.runtime.invocations["MonitorFunction"] >= evaluated + 5, what="five requests")
    loop.settled()

    # then still one dataset version, one index entry, one measurement, and no new execution
    assert [k for k in loop.store.list_keys(DATASET_INDEX_PREFIX) if k.endswith(version)] != []
    assert len([k for k in loop.store.list_keys(DATASET_INDEX_PREFIX) if k.endswith(version)]) == 1
    assert loop.client.keys(MONITORING_PREFIX) == reports
    assert loop.client.executions() == executions
    assert_invariant(loop)


def test_a_batch_upload_whose_run_cannot_start_ends_in_the_batch_on_failure_queue(
        loop: Loop, cancer_batches: dict[str, Any]) -> None:
    # given the batch function crashing on all three attempts
    loop.answer_next("BatchFunction", CRASH, CRASH, CRASH)

    # when a file to score arrives under batch/incoming/
    key = f"{BATCH_INCOMING_PREFIX}lost-batch.csv"
    loop.store.put_bytes(key, _batch(cancer_batches, 32).to_csv(index=False).encode(), content_type="text/csv")

    # then its event is kept in the batch on-failure queue with the error, not dropped
    def record() -> dict[str, Any] | None:
        found = [r for r in loop.failure_messages("BatchFailureQueueUrl")  # the event's key is URL-encoded
                 if "lost-batch.csv" in json.dumps(r["requestPayload"])]
        return found[0] if found else None

    kept = loop.wait_for(record, timeout=120, what=f"{key} in the batch on-failure queue")
    assert kept["requestContext"]["approximateInvokeCount"] == 3
    assert kept["responsePayload"]["errorType"] == "Runtime.ExitError"
