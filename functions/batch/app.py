"""Batch scoring: an upload under batch/incoming/ starts the batch scoring state machine, whose tasks run here
(split the file into chunks, score one chunk, write the predictions and the summary)."""

from __future__ import annotations

import functools
import json
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import boto3
from aws_lambda_powertools import Logger

from loopline_runtime.batch import ModelCache, finalize_run, record_failure, score_chunk, split_upload
from loopline_runtime.batch_layout import run_id_for
from loopline_runtime.csv_delimiter import configured_delimiter
from loopline_runtime.notifications import Notifier
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.storage import ObjectStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
store = ObjectStore.from_env()
registry = ModelRegistry(store)
models = ModelCache(registry)
notifier = Notifier.from_env("default")  # the name from PIPELINE_NAME, which the template sets


@functools.cache
def _delimiter() -> str:
    """The pipeline config's csv.delimiter (read once, by the split only)."""
    return configured_delimiter()


@functools.cache
def _sfn() -> Any:
    """Only an S3 event starts a run: the chunk-scoring invocations never build this client."""
    return boto3.client("stepfunctions")


def start_runs(event: dict[str, Any]) -> dict[str, Any]:
    """One execution per uploaded object, named after the object's version: a redelivered event starts none."""
    started = []
    for record in event["Records"]:
        key = unquote_plus(record["s3"]["object"]["key"])  # S3 events carry URL-encoded keys
        if not key.lower().endswith(".csv"):  # the notification has no suffix filter (S3's is case-sensitive)
            logger.info("not a CSV: ignored", extra={"source_key": key})
            continue
        obj = record["s3"]["object"]
        run_id = run_id_for(key, obj.get("versionId") or obj.get("eTag"))  # an unversioned bucket: the ETag
        try:
            # the version the event names is the one scored: a newer upload to the same key is its own run
            _sfn().start_execution(stateMachineArn=os.environ["BATCH_STATE_MACHINE_ARN"], name=run_id,
                                   input=json.dumps({"source_key": key, "version_id": obj.get("versionId")}))
        except _sfn().exceptions.ExecutionAlreadyExists:
            logger.info("batch run already started", extra={"run_id": run_id, "source_key": key})
            continue
        started.append(run_id)
        logger.info("batch run started", extra={"run_id": run_id, "source_key": key})
    return {"started": started}


def finalize(event: dict[str, Any]) -> dict[str, Any]:
    """Write the run's predictions and summary, then say so on the notification topic."""
    # the Map's Catch adds map_error to the state when more chunks failed than tolerated
    result = finalize_run(store, event["run_id"], map_error=event.get("state", {}).get("map_error"))
    notifier.batch_scoring_finished(status=result["status"], rows=result["rows_in"], output=result["summary_key"],
                                    model_version=result["model_version"], execution_arn=event.get("execution_arn"))
    return result


def fail(event: dict[str, Any]) -> dict[str, Any]:
    """A run that ended before its predictions: summary.json says why, and the topic says so."""
    summary = record_failure(store, event["run_id"], event.get("source_key"), event.get("error") or {})
    notifier.batch_scoring_stopped(status=summary["status"], error=summary["error"], reason=summary["reason"],
                                   output=summary["summary_key"], execution_arn=event.get("execution_arn"))
    return summary


TASKS = {
    "split": lambda e: split_upload(store, registry, e["source_key"], e["run_id"], chunk_rows=e.get("chunk_rows"),
                                    version_id=(e.get("upload") or {}).get("version_id"),
                                    delimiter=_delimiter()),
    "score": lambda e: score_chunk(store, models, e["run_id"], e["chunk_key"], e["model_version"], e.get("pins")),
    "finalize": finalize,
    "fail": fail,
}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        return start_runs(event)
    return TASKS[event["action"]](event)
