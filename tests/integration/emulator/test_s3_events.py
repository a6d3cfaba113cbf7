"""S3 event records as S3 sends them: delivered only with the function's Lambda permission, carrying the
version the upload created on a versioned bucket (gap module s3_async_notifications)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

PRINTS_VERSION = (
    "def lambda_handler(event, context):\n"
    "    print('version', event['Records'][0]['s3']['object'].get('versionId'))\n"
)


def _bucket_notifying(aws: Callable[[str], Any], function_name: str, *, permitted: bool) -> str:
    bucket = f"events-{uuid.uuid4().hex[:8]}"
    aws("s3").create_bucket(Bucket=bucket)
    aws("s3").put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    arn = aws("lambda").get_function(FunctionName=function_name)["Configuration"]["FunctionArn"]
    if permitted:
        aws("lambda").add_permission(FunctionName=function_name, StatementId="s3", Action="lambda:InvokeFunction",
                                     Principal="s3.amazonaws.com", SourceArn=f"arn:aws:s3:::{bucket}")
    aws("s3").put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "LambdaFunctionConfigurations": [{"LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    return bucket


def _printed(aws: Callable[[str], Any], function_name: str, wait: float) -> list[str]:
    deadline, messages = time.time() + wait, []
    while time.time() < deadline:
        time.sleep(0.3)
        if aws("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{function_name}")["logGroups"]:
            events = aws("logs").filter_log_events(logGroupName=f"/aws/lambda/{function_name}")["events"]
            messages = [e["message"] for e in events if e["message"].startswith("version")]
            if messages:
                break
    return messages


def test_an_upload_to_a_versioned_bucket_notifies_with_its_version_id(aws, create_function):
    # given a function S3 may invoke for a versioned bucket
    name = create_function(PRINTS_VERSION)
    bucket = _bucket_notifying(aws, name, permitted=True)

    # when an object is uploaded
    version = aws("s3").put_object(Bucket=bucket, Key="a.csv", Body=b"x")["VersionId"]

    # then the event names the version the upload created
    assert _printed(aws, name, wait=15) == [f"version {version}"]


def test_without_a_lambda_permission_s3_delivers_nothing(aws, create_function):
    # given a function whose resource policy does not let S3 invoke it
    name = create_function(PRINTS_VERSION)
    bucket = _bucket_notifying(aws, name, permitted=False)

    # when an object is uploaded
    aws("s3").put_object(Bucket=bucket, Key="a.csv", Body=b"x")

    # then the function is never invoked
    assert _printed(aws, name, wait=4) == []
