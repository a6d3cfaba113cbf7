"""Batch input is bounded: a file over a cap is refused with a reason before anything is scored, and every run that
ends before its predictions leaves a summary.json saying why and a notification. A run scores the S3 version its
event names, not a newer upload to the same key."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import boto3
import pandas as pd
import pytest

from loopline_runtime import batch
from loopline_runtime.batch import split_upload
from loopline_runtime.batch_layout import CHUNK_ROWS_METADATA, summary_key
from loopline_runtime.bucket_layout import BATCH_INCOMING_PREFIX
from loopline_runtime.errors import InvalidBatch
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.storage import ObjectStore
from tests.support.asl import resolve
from tests.support.stack import Stack

KEY = f"{BATCH_INCOMING_PREFIX}patients.csv"


@pytest.fixture
def rows(breast_cancer: pd.DataFrame, config: Any) -> pd.DataFrame:
    frame = breast_cancer.drop(columns=[config.target]).head(30).astype(object)
    frame.insert(0, "patient_id", [f"p{i}" for i in range(len(frame))])
    return frame


def _put(aws_stack: Stack, body: bytes, **metadata: str) -> str | None:
    response = boto3.client("s3").put_object(Bucket=aws_stack.bucket, Key=KEY, Body=body, Metadata=metadata)
    return response.get("VersionId")


def test_a_file_with_more_columns_than_the_cap_is_refused(
    aws_stack: Stack, store: ObjectStore, registry: ModelRegistry, champion: str, rows: pd.DataFrame,
) -> None:
    # given the model's features and more extra columns than the cap
    wide = rows.join(pd.DataFrame({f"extra_{i}": ["x"] * len(rows) for i in range(batch.MAX_BATCH_COLUMNS)}))
    _put(aws_stack, wide.to_csv(index=False).encode())

    # when / then the split refuses it, naming the cap
    with pytest.raises(InvalidBatch, match="columns, over the batch cap"):
        split_upload(store, registry, KEY, "run-wide")


def test_a_value_over_the_csv_field_limit_is_refused_with_a_reason_not_a_crash(
    aws_stack: Stack, store: ObjectStore, registry: ModelRegistry, champion: str, rows: pd.DataFrame,
) -> None:
    # given a row whose id is one quoted value longer than the csv module reads (on one short-enough line)
    rows = rows.copy()
    rows.loc[3, "patient_id"] = "x" * (csv.field_size_limit() + 1)
    _put(aws_stack, rows.to_csv(index=False).encode())

    # when / then the split refuses the file with a typed error the state machine routes
    with pytest.raises(InvalidBatch, match="value longer than"):
        split_upload(store, registry, KEY, "run-field")


@pytest.mark.parametrize("chunk_rows", ["1", "lots", "10000000"])
def test_chunk_rows_metadata_outside_its_range_is_refused(
    chunk_rows: str, aws_stack: Stack, store: ObjectStore, registry: ModelRegistry, champion: str,
    rows: pd.DataFrame,
) -> None:
    # given an upload asking for chunks of one row (one Map child per row), of no number, or huge
    _put(aws_stack, rows.to_csv(index=False).encode(), **{CHUNK_ROWS_METADATA: chunk_rows})

    # when / then the split refuses it and says the range
    with pytest.raises(InvalidBatch, match="is not a whole number from 10 to 100,000"):
        split_upload(store, registry, KEY, "run-chunks")


def test_a_file_over_the_size_cap_is_refused_unread(
    aws_stack: Stack, store: ObjectStore, registry: ModelRegistry, champion: str, rows: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a cap smaller than the file
    body = rows.to_csv(index=False).encode()
    _put(aws_stack, body)
    monkeypatch.setattr(batch, "MAX_BATCH_BYTES", len(body) - 1)

    # when / then the split refuses it
    with pytest.raises(InvalidBatch, match="over the batch cap"):
        split_upload(store, registry, KEY, "run-size")


def test_a_run_scores_the_version_its_event_names_not_a_newer_upload_to_the_same_key(
    aws_stack: Stack, store: ObjectStore, champion: str, rows: pd.DataFrame,
    upload: Callable[[str, pd.DataFrame], dict[str, Any]], load_handler: Callable[[str], ModuleType],
    lambda_context: Any,
) -> None:
    # given an upload of 30 rows, its S3 event, and a second upload of 5 rows to the same key right after
    event = upload(KEY, rows)
    _put(aws_stack, rows.head(5).to_csv(index=False).encode())
    app = load_handler("batch")

    # when the first event starts its run and the split runs with the execution's input
    (run_id,) = app.lambda_handler(event, lambda_context)["started"]
    sfn = boto3.client("stepfunctions")
    machine = aws_stack.physical_ids["BatchScoringStateMachine"]
    execution = sfn.describe_execution(executionArn=machine.replace(":stateMachine:", ":execution:") + f":{run_id}")
    definition = json.loads(aws_stack.state_machine_definition("BatchScoringStateMachine"))
    split = resolve(definition["States"]["Split into chunks"]["Parameters"], json.loads(execution["input"]),
                    {"Execution": {"Name": run_id}})
    result = app.lambda_handler(split, lambda_context)

    # then it read the 30 rows of the version its event named
    assert result["rows_in"] == 30


def test_every_way_a_run_can_stop_early_goes_through_the_step_that_records_why(aws_stack: Stack) -> None:
    # given the batch state machine's states
    definition = json.loads(aws_stack.state_machine_definition("BatchScoringStateMachine"))
    states = definition["States"]
    recorder = next(name for name, state in states.items() if state.get("Parameters", {}).get("action") == "fail")

    # then no Catch but the recorder's own leads straight to a Fail state
    direct = [(name, catch["Next"]) for name, state in states.items() if name != recorder
              for catch in state.get("Catch", []) if states[catch["Next"]]["Type"] == "Fail"]
    assert direct == []


def test_a_refused_file_leaves_a_summary_saying_why(
    aws_stack: Stack, store: ObjectStore, registry: ModelRegistry, champion: str, rows: pd.DataFrame,
    load_handler: Callable[[str], ModuleType], lambda_context: Any,
) -> None:
    # given a split refused for its chunk-rows metadata, as the state machine's Catch hands it on
    _put(aws_stack, rows.to_csv(index=False).encode(), **{CHUNK_ROWS_METADATA: "1"})
    app = load_handler("batch")
    with pytest.raises(InvalidBatch) as refused:
        app.lambda_handler({"action": "split", "source_key": KEY, "run_id": "run-refused"}, lambda_context)
    error = {"Error": "InvalidBatch", "Cause": json.dumps({"errorMessage": str(refused.value)})}

    # when the run's failure is recorded
    app.lambda_handler({"action": "fail", "run_id": "run-refused", "source_key": KEY, "error": error},
                       lambda_context)

    # then summary.json says it was rejected, and why
    summary = store.get_json(summary_key("run-refused"))
    assert summary["status"] == "rejected" and "chunk-rows '1'" in summary["reason"]
