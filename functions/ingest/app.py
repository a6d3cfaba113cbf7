"""Ingest: S3 upload under incoming/ -> validated dataset version (or quarantine) -> training or monitoring."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import boto3
from aws_lambda_powertools import Logger

from loopline_runtime.config import runtime_config
from loopline_runtime.ingest import loggable, process_upload
from loopline_runtime.notifications import Notifier
from loopline_runtime.orchestration import UploadFollowUps
from loopline_runtime.storage import ObjectStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
config = runtime_config()
s3 = boto3.client("s3")
follow_ups = UploadFollowUps(boto3.client("stepfunctions"), boto3.client("lambda"),
                             state_machine_arn=os.environ["STATE_MACHINE_ARN"],
                             monitor_function_name=os.environ["MONITOR_FUNCTION_NAME"])
notifier = Notifier.from_env(config.name)  # a quarantined upload is announced, not only kept


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    results = []
    for record in event.get("Records", []):
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])  # S3 events carry URL-encoded keys
        # the event carries the size: an over-large upload is quarantined without a byte read (no HEAD needed)
        # and its version: a second upload to the same key a moment later is its own event, never read twice
        outcome = process_upload(ObjectStore(bucket, s3), key, config, follow_ups,
                                 size=record["s3"]["object"].get("size"),
                                 version_id=record["s3"]["object"].get("versionId"), notifier=notifier)
        logger.info("upload processed", extra=loggable(outcome))
        results.append(outcome)
    return {"results": results}
