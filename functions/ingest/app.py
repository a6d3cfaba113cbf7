"""Ingest: S3 upload under incoming/ -> validated dataset version (or quarantine) -> training or monitoring."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import boto3
from aws_lambda_powertools import Logger

from loopline_runtime.config import runtime_config
from loopline_runtime.ingest import follow_up, ingest_upload
from loopline_runtime.orchestration import request_monitoring, start_training
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.storage import ObjectStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
config = runtime_config()
s3 = boto3.client("s3")
sfn = boto3.client("stepfunctions")
lambda_client = boto3.client("lambda")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    results = []
    for record in event.get("Records", []):
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])  # S3 events carry URL-encoded keys
        store = ObjectStore(bucket, s3)
        outcome = follow_up(
            ingest_upload(store, key, config),
            ModelRegistry(store),
            start_training=lambda version: start_training(sfn, os.environ["STATE_MACHINE_ARN"], reason="new_data",
                                                          dataset_version=version),
            request_monitoring=lambda version: request_monitoring(
                lambda_client, os.environ["EVALUATE_FUNCTION_NAME"], dataset_version=version, reason="new_data"),
        )
        logger.info("upload processed", extra=outcome)
        results.append(outcome)
    return {"results": results}
