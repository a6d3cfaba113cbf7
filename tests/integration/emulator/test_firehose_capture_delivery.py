"""CloudWatch Logs -> subscription filter -> Firehose -> S3 on the emulator, as AWS delivers: only matching log
events, one message per line, buffered into one gzipped object under the hour partition, with the roles checked."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from loopline_runtime.bucket_layout import capture_hour_prefix

CAPTURE_PATTERN = '{ $.capture = "prediction/1" }'
PREFIX = "capture/predictions/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/"


def _role(aws: Callable[[str], Any], service: str, statements: list[dict[str, Any]]) -> str:
    name = f"{service.split('.')[0]}-{uuid.uuid4().hex[:8]}"
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}
    arn = aws("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    if statements:
        aws("iam").put_role_policy(RoleName=name, PolicyName="grants",
                                   PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))
    return str(arn)


def _pipeline(aws: Callable[[str], Any], *, logs_may_put: bool = True, firehose_may_write: bool = True
              ) -> tuple[str, str]:
    """A bucket, a log group subscribed to a delivery stream as template.yaml does it; (bucket, log group)."""
    suffix = uuid.uuid4().hex[:8]
    bucket, group, stream = f"capture-{suffix}", f"/aws/lambda/predict-{suffix}", f"capture-{suffix}"
    aws("s3").create_bucket(Bucket=bucket)
    stream_arn = f"arn:aws:firehose:us-east-1:123456789012:deliverystream/{stream}"
    delivery_role = _role(aws, "firehose.amazonaws.com", [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/capture/*"}]
        if firehose_may_write else [])
    logs_role = _role(aws, "logs.amazonaws.com", [
        {"Effect": "Allow", "Action": "firehose:PutRecord", "Resource": stream_arn}] if logs_may_put else [])
    aws("firehose").create_delivery_stream(
        DeliveryStreamName=stream, DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "BucketARN": f"arn:aws:s3:::{bucket}", "RoleARN": delivery_role, "Prefix": PREFIX,
            "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 5}, "CompressionFormat": "GZIP",
            "ProcessingConfiguration": {"Enabled": True, "Processors": [
                {"Type": "Decompression", "Parameters": [{"ParameterName": "CompressionFormat",
                                                          "ParameterValue": "GZIP"}]},
                {"Type": "CloudWatchLogProcessing", "Parameters": [{"ParameterName": "DataMessageExtraction",
                                                                    "ParameterValue": "true"}]},
                {"Type": "AppendDelimiterToRecord", "Parameters": [{"ParameterName": "Delimiter",
                                                                    "ParameterValue": "\\n"}]}]}})
    aws("logs").create_log_group(logGroupName=group)
    aws("logs").create_log_stream(logGroupName=group, logStreamName="s")
    aws("logs").put_subscription_filter(logGroupName=group, filterName="capture", filterPattern=CAPTURE_PATTERN,
                                        destinationArn=stream_arn, roleArn=logs_role)
    return bucket, group


def _log(aws: Callable[[str], Any], group: str, messages: list[str]) -> None:
    now = int(time.time() * 1000)
    aws("logs").put_log_events(logGroupName=group, logStreamName="s",
                               logEvents=[{"timestamp": now, "message": m} for m in messages])


def _objects(aws: Callable[[str], Any], bucket: str, wait: float) -> list[str]:
    deadline = time.monotonic() + wait
    while True:
        keys = [o["Key"] for o in aws("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]
        if keys or time.monotonic() > deadline:
            return keys
        time.sleep(0.1)


def _capture_line(prediction_id: str) -> str:
    return json.dumps({"capture": "prediction/1", "prediction_id": prediction_id, "inputs": {"x": 1}})


def test_matching_log_lines_arrive_as_one_gzipped_newline_delimited_object_in_the_hour_partition(
    aws: Callable[[str], Any],
) -> None:
    # given the predict log group subscribed to the capture stream
    bucket, group = _pipeline(aws)
    hour = capture_hour_prefix(datetime.now(UTC))

    # when predict logs two capture lines between its other log lines, in two invocations
    _log(aws, group, ["START RequestId: 1", _capture_line("a"), '{"level":"INFO","message":"x"}'])
    _log(aws, group, [_capture_line("b"), "END RequestId: 1"])

    # then one object (the buffer), gzipped, under the hour's partition, holds exactly the capture lines
    (key,) = _objects(aws, bucket, wait=10)
    assert key.startswith(hour) or key.startswith(capture_hour_prefix(datetime.now(UTC)))
    assert key.endswith(".gz")
    body = gzip.decompress(aws("s3").get_object(Bucket=bucket, Key=key)["Body"].read()).decode()
    assert body == _capture_line("a") + "\n" + _capture_line("b") + "\n"


@pytest.mark.parametrize(("logs_may_put", "firehose_may_write"), [(False, True), (True, False)],
                         ids=["logs-role-without-firehose-PutRecord", "delivery-role-without-s3-PutObject"])
def test_a_role_without_its_grant_delivers_nothing(aws: Callable[[str], Any], logs_may_put: bool,
                                                    firehose_may_write: bool) -> None:
    # given one of the two roles lacks its grant
    bucket, group = _pipeline(aws, logs_may_put=logs_may_put, firehose_may_write=firehose_may_write)

    # when a capture line is logged
    _log(aws, group, [_capture_line("a")])

    # then nothing reaches the bucket (the emulator's buffer interval is 1 s; wait well past it)
    assert _objects(aws, bucket, wait=3) == []
