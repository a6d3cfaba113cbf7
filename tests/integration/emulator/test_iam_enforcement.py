"""The emulator refuses what IAM refuses: functions run as their roles, the administrator key is the account owner,
and a bucket policy's Deny binds everyone (gap modules iam_enforcement, access_requests, role_sessions)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from loopline.emulator.enforcement_switches import SWITCH_VARIABLE

READER = """
import boto3, os
def lambda_handler(event, context):
    s3 = boto3.client("s3")
    kwargs = {"VersionId": event["version"]} if event.get("version") else {}
    return s3.get_object(Bucket=event["bucket"], Key=event["key"], **kwargs)["Body"].read().decode()
"""


@pytest.fixture
def bucket(aws: Callable[[str], Any]) -> str:
    name = f"iam-{uuid.uuid4().hex[:8]}"
    aws("s3").create_bucket(Bucket=name)
    aws("s3").put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def _reader(create_function: Callable[..., str], bucket: str, actions: list[str], prefix: str) -> str:
    return create_function(READER, policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": f"arn:aws:s3:::{bucket}/{prefix}*"}]})


def _invoke(aws: Callable[[str], Any], name: str, event: dict[str, Any]) -> tuple[bool, Any]:
    response = aws("lambda").invoke(FunctionName=name, Payload=json.dumps(event))
    return "FunctionError" not in response, json.loads(response["Payload"].read())


def test_a_function_reads_only_what_its_role_allows(aws, create_function, bucket):
    # given a function allowed s3:GetObject under allowed/ only
    aws("s3").put_object(Bucket=bucket, Key="allowed/a.txt", Body=b"yes")
    aws("s3").put_object(Bucket=bucket, Key="other/b.txt", Body=b"no")
    name = _reader(create_function, bucket, ["s3:GetObject"], "allowed/")

    # when it reads inside and outside its grant
    inside = _invoke(aws, name, {"bucket": bucket, "key": "allowed/a.txt"})
    outside = _invoke(aws, name, {"bucket": bucket, "key": "other/b.txt"})

    # then the first succeeds and the second fails the invocation with AccessDenied naming action and key
    assert inside == (True, "yes")
    ok, error = outside
    assert not ok and error["errorType"] == "AccessDenied"  # botocore names the exception after the code
    assert "AccessDenied" in error["errorMessage"] and "s3:GetObject" in error["errorMessage"]
    assert f"{bucket}/other/b.txt" in error["errorMessage"]


def test_the_same_read_passes_with_iam_enforcement_switched_off(aws, create_function, bucket, monkeypatch):
    # given a function without a grant for other/, and the debugging switch that turns IAM enforcement off
    aws("s3").put_object(Bucket=bucket, Key="other/b.txt", Body=b"no")
    name = _reader(create_function, bucket, ["s3:GetObject"], "allowed/")
    monkeypatch.setenv(SWITCH_VARIABLE, "iam")

    # when it reads other/
    # then nothing refuses it (the enforcement above is what refused it)
    assert _invoke(aws, name, {"bucket": bucket, "key": "other/b.txt"}) == (True, "no")


def test_a_read_by_version_id_needs_get_object_version(aws, create_function, bucket):
    # given a pinned object version, and functions allowed GetObject only, or GetObject and GetObjectVersion
    version = aws("s3").put_object(Bucket=bucket, Key="models/m.onnx", Body=b"graph")["VersionId"]
    plain = _reader(create_function, bucket, ["s3:GetObject"], "models/")
    pinned = _reader(create_function, bucket, ["s3:GetObject", "s3:GetObjectVersion"], "models/")
    event = {"bucket": bucket, "key": "models/m.onnx", "version": version}

    # when each reads the pinned version
    # then only the one with s3:GetObjectVersion may (AWS authorises a versioned read as that action)
    ok, error = _invoke(aws, plain, event)
    assert not ok and "s3:GetObjectVersion" in error["errorMessage"]
    assert _invoke(aws, pinned, event) == (True, "graph")


def test_the_administrator_key_may_do_anything_but_what_a_bucket_policy_denies(aws, bucket):
    # given a bucket policy denying writes under protected/ to every principal but one role
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{bucket}/protected/*",
        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/writer"}}}]}
    aws("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    s3 = aws("s3")

    # when the administrator writes elsewhere and under protected/
    s3.put_object(Bucket=bucket, Key="open/a.txt", Body=b"x")
    with pytest.raises(ClientError) as denied:
        s3.put_object(Bucket=bucket, Key="protected/a.txt", Body=b"x")

    # then the explicit deny binds it too, as on AWS
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert "explicit deny" in denied.value.response["Error"]["Message"]


def test_an_unknown_access_key_is_refused(emulator, bucket):
    # given a client with keys the emulator never issued
    s3 = boto3.client("s3", endpoint_url=emulator["endpoint"], region_name="us-east-1",
                      aws_access_key_id="AKIAUNKNOWN", aws_secret_access_key="x")

    # when it lists the bucket
    with pytest.raises(ClientError) as refused:
        s3.list_objects_v2(Bucket=bucket)

    # then it is refused
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_put_metric_data_is_scoped_by_its_namespace_condition(aws, create_function):
    # given a function allowed cloudwatch:PutMetricData in namespace Loopline only
    name = create_function(
        """
        import boto3
        def lambda_handler(event, context):
            boto3.client("cloudwatch").put_metric_data(
                Namespace=event["namespace"], MetricData=[{"MetricName": "m", "Value": 1.0}])
            return "ok"
        """,
        policy={"Statement": [{"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
                               "Condition": {"StringEquals": {"cloudwatch:namespace": "Loopline"}}}]},
    )

    # when it publishes to its namespace and to another
    # then only the first is allowed
    assert _invoke(aws, name, {"namespace": "Loopline"}) == (True, "ok")
    ok, error = _invoke(aws, name, {"namespace": "Elsewhere"})
    assert not ok and "cloudwatch:PutMetricData" in error["errorMessage"]


def test_a_state_machine_task_runs_as_the_state_machine_role(aws, create_function, make_role):
    # given a function, and two state machines invoking it: one role may invoke it, the other may not
    name = create_function("def lambda_handler(event, context):\n    return {'ran': True}\n")
    function_arn = aws("lambda").get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    definition = json.dumps({"StartAt": "Call", "States": {"Call": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function_arn}, "End": True}}})
    sfn = aws("stepfunctions")
    allowed = make_role("states.amazonaws.com", [{"Effect": "Allow", "Action": "lambda:InvokeFunction",
                                                  "Resource": function_arn}])
    denied = make_role("states.amazonaws.com", [{"Effect": "Allow", "Action": "lambda:GetFunction",
                                                 "Resource": function_arn}])
    results = {}
    for label, role in (("allowed", allowed), ("denied", denied)):
        machine = sfn.create_state_machine(name=f"sm-{uuid.uuid4().hex[:8]}", definition=definition,
                                           roleArn=role)["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=machine)["executionArn"]
        results[label] = _wait(sfn, execution)

    # then the task succeeds under the allowed role and fails under the other
    assert results["allowed"]["status"] == "SUCCEEDED"
    assert results["denied"]["status"] == "FAILED"


def _wait(sfn: Any, execution_arn: str) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return dict(described)
        time.sleep(0.2)
    raise AssertionError("the execution did not end")


def test_firehose_puts_are_authorised_on_the_delivery_stream_they_name(aws, create_function, bucket):
    # given two delivery streams, and a function allowed firehose:PutRecordBatch on the first only
    streams = [f"stream-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for stream in streams:
        aws("firehose").create_delivery_stream(DeliveryStreamName=stream, ExtendedS3DestinationConfiguration={
            "BucketARN": f"arn:aws:s3:::{bucket}", "RoleARN": "arn:aws:iam::123456789012:role/firehose"})
    name = create_function(
        """
        import boto3
        def lambda_handler(event, context):
            boto3.client("firehose").put_record_batch(DeliveryStreamName=event["stream"],
                                                      Records=[{"Data": b"{}\\n"}])
            return "ok"
        """,
        policy={"Statement": [{"Effect": "Allow", "Action": "firehose:PutRecordBatch",
                               "Resource": f"arn:aws:firehose:us-east-1:123456789012:deliverystream/{streams[0]}"}]},
    )

    # when it puts to each
    # then only its own stream takes the record
    assert _invoke(aws, name, {"stream": streams[0]}) == (True, "ok")
    ok, error = _invoke(aws, name, {"stream": streams[1]})
    assert not ok and "firehose:PutRecordBatch" in error["errorMessage"] and streams[1] in error["errorMessage"]


PUBLISHER = """
import boto3
def lambda_handler(event, context):
    return boto3.client("sns").publish(TopicArn=event["topic"], Message="m")["MessageId"] != ""
"""


def test_a_topic_policy_deny_binds_a_role_its_identity_policy_allows(aws, create_function):
    # given a function allowed sns:Publish on a topic, and the topic's policy
    topic = aws("sns").create_topic(Name=f"t-{uuid.uuid4().hex[:8]}")["TopicArn"]
    name = create_function(PUBLISHER, policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sns:Publish", "Resource": topic}]})
    role = aws("lambda").get_function(FunctionName=name)["Configuration"]["Role"]
    deny = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "sns:Publish", "Resource": topic,
        "Condition": {"ArnEquals": {"aws:PrincipalArn": role}}}]}

    # when it publishes under moto's default policy, then under one that denies its role
    before = _invoke(aws, name, {"topic": topic})
    aws("sns").set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(deny))
    ok, error = _invoke(aws, name, {"topic": topic})

    # then the topic's Deny wins over the role's Allow, as on AWS
    assert before == (True, True)
    assert not ok and "(AuthorizationError)" in error["errorMessage"]  # SNS's code for AccessDenied
    assert "sns:Publish" in error["errorMessage"] and "explicit deny" in error["errorMessage"]
