"""moto CloudFormation gaps, each filled by its own piece: API Gateway resources, CloudWatch alarms, bucket
notifications (delivered asynchronously), bucket and topic policies, queue metrics and function layers — on small
templates."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from loopline.emulator.api_gateway_resources import LocalApi, drop_api_gateway_resources
from loopline.emulator.bucket_notifications import apply_bucket_notifications, extract_bucket_notifications
from loopline.emulator.bucket_policies import extract_bucket_policies
from loopline.emulator.cloudwatch_alarm_resources import create_alarms, extract_cloudwatch_alarms
from loopline.emulator.function_layers import function_layer_dirs
from loopline.emulator.static_intrinsics import parameter_values, pseudo_parameters
from loopline.emulator.topic_policies import apply_topic_policies, extract_topic_policies


def create_stack(aws: Callable[[str], Any], template: dict[str, Any], parameters: dict[str, str] | None = None) -> str:
    name = f"stack-{uuid.uuid4().hex[:8]}"
    aws("cloudformation").create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
    )
    stack = aws("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    return name


def outputs(aws: Callable[[str], Any], stack_name: str) -> dict[str, str]:
    stack = aws("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def test_api_gateway_resources_are_dropped_and_references_point_at_the_local_api(aws, create_function):
    # given
    function_name = create_function("def lambda_handler(e, c):\n    return {}\n")
    template = {
        "Resources": {
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Body": {"openapi": "3.0"}}},
            "Stage": {"Type": "AWS::ApiGateway::Stage", "Properties": {"RestApiId": {"Ref": "Api"}}},
            "Key": {"Type": "AWS::ApiGateway::ApiKey", "DependsOn": ["Stage"], "Properties": {"Enabled": True}},
            "Permission": {
                "Type": "AWS::Lambda::Permission",
                "DependsOn": "Stage",
                "Properties": {
                    "Action": "lambda:InvokeFunction",
                    "FunctionName": function_name,
                    "Principal": "apigateway.amazonaws.com",
                    "SourceArn": {"Fn::Sub": ["arn:aws:execute-api:${AWS::Region}:${AWS::AccountId}:${Id}/*",
                                              {"Id": {"Ref": "Api"}}]},
                },
            },
        },
        "Outputs": {
            "Url": {"Value": {"Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/Prod/"}},
            "KeyId": {"Value": {"Ref": "Key"}},
        },
    }  # fmt: skip

    # when
    dropped = drop_api_gateway_resources(template, LocalApi("abc123", "key42", "http://127.0.0.1:3999/"))
    stack_name = create_stack(aws, template)

    # then
    assert dropped == {"Api", "Stage", "Key"}
    assert outputs(aws, stack_name) == {"Url": "http://127.0.0.1:3999/Prod/", "KeyId": "key42"}


def test_alarms_are_created_with_resolved_properties_and_referenced_by_literal_arn(aws):
    # given
    template: dict[str, Any] = {
        "Parameters": {"Threshold": {"Type": "Number", "Default": "0.9"}, "Period": {"Type": "Number"}},
        "Resources": {
            "Quality": {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {
                    "AlarmName": {"Fn::Sub": "${AWS::StackName}-quality"},
                    "Namespace": "Loopline",
                    "MetricName": "ModelQuality",
                    "Statistic": "Average",
                    "Period": {"Ref": "Period"},
                    "EvaluationPeriods": 1,
                    "Threshold": {"Ref": "Threshold"},
                    "ComparisonOperator": "LessThanThreshold",
                },
            },
            "Rule": {
                "Type": "AWS::Events::Rule",
                "Properties": {"EventPattern": {"resources": [{"Fn::GetAtt": ["Quality", "Arn"]}]}},
            },
        },
        "Outputs": {"AlarmName": {"Value": {"Ref": "Quality"}}},
    }
    stack = f"stack-{uuid.uuid4().hex[:8]}"
    values = {**parameter_values(template, {"Period": "10"}), **pseudo_parameters(stack, "us-east-1", "123456789012")}

    # when
    alarms = extract_cloudwatch_alarms(template, values, "us-east-1", "123456789012")
    aws("cloudformation").create_stack(StackName=stack, TemplateBody=json.dumps(template),
                                       Parameters=[{"ParameterKey": "Period", "ParameterValue": "10"}])  # fmt: skip
    create_alarms(aws("cloudwatch"), alarms)

    # then
    (alarm,) = aws("cloudwatch").describe_alarms(AlarmNames=[f"{stack}-quality"])["MetricAlarms"]
    assert (alarm["Period"], alarm["Threshold"]) == (10, 0.9)
    assert outputs(aws, stack) == {"AlarmName": f"{stack}-quality"}
    rule_name = aws("cloudformation").describe_stack_resource(StackName=stack, LogicalResourceId="Rule")[
        "StackResourceDetail"
    ]["PhysicalResourceId"]
    pattern = json.loads(aws("events").describe_rule(Name=rule_name)["EventPattern"])
    assert pattern["resources"] == [alarm["AlarmArn"]]


def test_an_alarm_whose_condition_is_false_is_not_created(aws):
    # given an optional alarm, on only when its parameter is set (as the estimated-quality alarm)
    template: dict[str, Any] = {
        "Parameters": {"MaxDrop": {"Type": "Number", "Default": "0"}},
        "Conditions": {"AlarmOn": {"Fn::Not": [{"Fn::Equals": [{"Ref": "MaxDrop"}, "0"]}]}},
        "Resources": {"Optional": {
            "Type": "AWS::CloudWatch::Alarm", "Condition": "AlarmOn",
            "Properties": {"AlarmName": "optional", "Namespace": "Loopline", "MetricName": "Drop",
                           "Statistic": "Average", "Period": 10, "EvaluationPeriods": 1,
                           "Threshold": {"Ref": "MaxDrop"}, "ComparisonOperator": "GreaterThanThreshold"}}},
    }
    stack = f"stack-{uuid.uuid4().hex[:8]}"

    # when it is extracted with the parameter left at 0, and with it set
    off = extract_cloudwatch_alarms(json.loads(json.dumps(template)), {
        **parameter_values(template, {}), **pseudo_parameters(stack, "us-east-1", "123456789012")},
        "us-east-1", "123456789012")
    on = extract_cloudwatch_alarms(json.loads(json.dumps(template)), {
        **parameter_values(template, {"MaxDrop": "0.1"}), **pseudo_parameters(stack, "us-east-1", "123456789012")},
        "us-east-1", "123456789012")

    # then only the stack whose condition holds has it
    assert off == []
    assert [alarm["AlarmName"] for alarm in on] == ["optional"]


def test_bucket_notifications_are_applied_after_creation_and_delivered_asynchronously(aws, create_function):
    # given
    function_name = create_function(
        "import time\ndef lambda_handler(event, context):\n    time.sleep(1)\n"
        "    print('key', event['Records'][0]['s3']['object']['key'])\n"
    )
    bucket = f"bucket-{uuid.uuid4().hex[:8]}"
    template = {
        "Resources": {
            "Bucket": {
                "Type": "AWS::S3::Bucket",
                "Properties": {
                    "BucketName": bucket,
                    "NotificationConfiguration": {
                        "LambdaConfigurations": [{
                            "Event": "s3:ObjectCreated:*",
                            "Function": {"Fn::GetAtt": ["Fn", "Arn"]},
                            "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": "incoming/"}]}},
                        }]
                    },
                },
            },
            "Policy": {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": {"Ref": "Bucket"}}},
            # S3 invokes the function only with its resource policy's leave
            "Permission": {"Type": "AWS::Lambda::Permission", "Properties": {
                "Action": "lambda:InvokeFunction", "FunctionName": function_name, "Principal": "s3.amazonaws.com",
                "SourceArn": f"arn:aws:s3:::{bucket}"}},
        }
    }  # fmt: skip
    pending = extract_bucket_notifications(template)
    extract_bucket_policies(template)
    create_stack(aws, template)
    arn = aws("lambda").get_function(FunctionName=function_name)["Configuration"]["FunctionArn"]

    # when
    apply_bucket_notifications(aws("s3"), pending, {"Bucket": bucket}, lambda value: arn)
    started = time.time()
    aws("s3").put_object(Bucket=bucket, Key="incoming/a b.csv", Body=b"x")
    aws("s3").put_object(Bucket=bucket, Key="elsewhere/c.csv", Body=b"x")

    # then (put_object did not wait for the 1 s handler; the key arrives URL-encoded: moto also encodes "/",
    # real S3 does not, so handlers must unquote_plus it)
    assert time.time() - started < 1.0
    deadline, messages = time.time() + 15, []
    while time.time() < deadline and not any(m.startswith("key") for m in messages):
        time.sleep(0.3)
        if aws("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{function_name}")["logGroups"]:
            events = aws("logs").filter_log_events(logGroupName=f"/aws/lambda/{function_name}")["events"]
            messages = [e["message"] for e in events]
    keys = [unquote_plus(m.removeprefix("key ")) for m in messages if m.startswith("key")]
    time.sleep(1.5)
    events = aws("logs").filter_log_events(logGroupName=f"/aws/lambda/{function_name}")["events"]
    keys = [unquote_plus(e["message"].removeprefix("key ")) for e in events if e["message"].startswith("key")]
    assert keys == ["incoming/a b.csv"]


def test_function_layers_are_mapped_from_the_template(tmp_path: Path):
    # given
    template = {
        "Resources": {
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Layers": [{"Ref": "Runtime"}, "arn:aws:x"]}},
            "Runtime": {"Type": "AWS::Lambda::LayerVersion", "Properties": {"Content": {"S3Key": "rt.zip"}}},
        }
    }

    # when
    layers = function_layer_dirs(template, {"rt.zip": tmp_path})

    # then
    assert layers == {"Fn": [tmp_path]}


@pytest.mark.parametrize(("serving_form", "expected"), [("onnx", ["rt"]), ("scikit-learn", ["rt", "deps"])])
def test_function_layers_chosen_by_a_condition_follow_the_stack_parameter(
    tmp_path: Path, serving_form: str, expected: list[str]
) -> None:
    # given a function whose layers depend on a parameter (PredictFunction's ServeScikitLearn)
    template = {
        "Parameters": {"ServingForm": {"Type": "String", "Default": "onnx"}},
        "Conditions": {"ServeScikitLearn": {"Fn::Equals": [{"Ref": "ServingForm"}, "scikit-learn"]}},
        "Resources": {
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Layers": {"Fn::If": [
                "ServeScikitLearn", [{"Ref": "Runtime"}, {"Ref": "Deps"}], [{"Ref": "Runtime"}]]}}},
            "Runtime": {"Type": "AWS::Lambda::LayerVersion", "Properties": {"Content": {"S3Key": "rt.zip"}}},
            "Deps": {"Type": "AWS::Lambda::LayerVersion", "Properties": {"Content": {"S3Key": "deps.zip"}}},
        },
    }

    # when the layers are mapped with the stack's parameter value
    layers = function_layer_dirs(template, {"rt.zip": tmp_path / "rt", "deps.zip": tmp_path / "deps"},
                                 {"ServingForm": serving_form})

    # then the branch the condition picks is on the path
    assert layers == {"Fn": [tmp_path / name for name in expected]}


def test_a_resource_whose_condition_is_false_is_not_listed(aws):
    # given a stack with a topic and a subscription that exists only when an e-mail address is given (none is)
    template = {
        "Parameters": {"Email": {"Type": "String", "Default": ""}},
        "Conditions": {"HasEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Email"}, ""]}]}},
        "Resources": {
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
            "Subscription": {"Type": "AWS::SNS::Subscription", "Condition": "HasEmail",
                             "Properties": {"TopicArn": {"Ref": "Topic"}, "Protocol": "email",
                                            "Endpoint": {"Ref": "Email"}}},
        },
    }
    name = create_stack(aws, template)

    # when its resources are listed, then only the created topic is there, with its logical id (as on AWS)
    resources = aws("cloudformation").describe_stack_resources(StackName=name)["StackResources"]
    assert [(r["LogicalResourceId"], r["ResourceType"]) for r in resources] == [("Topic", "AWS::SNS::Topic")]


def test_a_number_parameter_in_a_functions_environment_is_kept_as_text(aws, make_role):
    # given a function whose environment takes a Number parameter, as the capture sample rate does
    role = make_role("lambda.amazonaws.com", [{"Effect": "Allow", "Action": "logs:CreateLogGroup", "Resource": "*"}])
    template = {
        "Parameters": {"Rate": {"Type": "Number", "Default": 1}},
        "Resources": {"Function": {"Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "python3.12", "Handler": "app.handler", "Role": role,
            "Code": {"ZipFile": "def handler(event, context):\n    return 1\n"},
            "Environment": {"Variables": {"RATE": {"Ref": "Rate"}}}}}},
    }
    name = create_stack(aws, template)
    function = aws("cloudformation").describe_stack_resource(StackName=name, LogicalResourceId="Function")[
        "StackResourceDetail"]["PhysicalResourceId"]

    # when its configuration is read and written back, as a client adding a variable does
    variables = aws("lambda").get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    aws("lambda").update_function_configuration(FunctionName=function,
                                                Environment={"Variables": {**variables, "MORE": "1"}})

    # then every value is a string, as Lambda keeps them
    assert variables == {"RATE": "1"}


def test_a_functions_ephemeral_storage_from_the_template_is_kept(aws, make_role):
    # given a function whose template gives /tmp more than Lambda's default 512 MB, as the ingest function's does
    role = make_role("lambda.amazonaws.com", [{"Effect": "Allow", "Action": "logs:CreateLogGroup", "Resource": "*"}])
    template = {"Resources": {"Function": {"Type": "AWS::Lambda::Function", "Properties": {
        "Runtime": "python3.12", "Handler": "app.handler", "Role": role, "EphemeralStorage": {"Size": 2560},
        "Code": {"ZipFile": "def handler(event, context):\n    return 1\n"}}}}}

    # when the stack is created
    name = create_stack(aws, template)
    function = aws("cloudformation").describe_stack_resource(StackName=name, LogicalResourceId="Function")[
        "StackResourceDetail"]["PhysicalResourceId"]

    # then the function has that /tmp (what the emulator's workers get, as Lambda's would)
    assert aws("lambda").get_function_configuration(FunctionName=function)["EphemeralStorage"] == {"Size": 2560}


def _alarm_messages(aws: Callable[[str], Any], queue_url: str, seconds: float = 3) -> list[str]:
    """The subjects of the alarm notifications the queue subscribed to the topic received within `seconds` (all of
    them, or the first as soon as it arrives when `seconds` is longer)."""
    subjects: list[str] = []
    deadline = time.time() + seconds
    while time.time() < deadline and not (seconds > 3 and subjects):
        for message in aws("sqs").receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", []):
            subjects.append(json.loads(message["Body"])["Subject"])
    return subjects


def test_a_topic_policy_is_set_on_its_topic_and_decides_whether_alarms_may_publish(aws):
    # given a stack with a topic and a topic policy like template.yaml's (which moto's CloudFormation skips)
    account = "123456789012"
    publishes = {"Sid": "AlarmPublishes", "Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
                 "Action": ["sns:Publish"], "Resource": {"Ref": "Topic"},
                 "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}}
    only_this_account = {"Sid": "OnlyThisAccountSubscribes", "Effect": "Deny", "Principal": "*",
                         "Action": ["sns:Subscribe"], "Resource": {"Ref": "Topic"},
                         "Condition": {"StringNotEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}}}}
    template = {"Resources": {
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
        "Policy": {"Type": "AWS::SNS::TopicPolicy", "Properties": {
            "Topics": [{"Ref": "Topic"}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [only_this_account, publishes]}}},
    }, "Outputs": {"TopicArn": {"Value": {"Ref": "Topic"}}}}
    policies = extract_topic_policies(template)
    topic = outputs(aws, create_stack(aws, template))["TopicArn"]
    apply_topic_policies(aws("sns"), policies, lambda logical_id, attribute: topic, {"AWS::AccountId": account})
    queue_url = aws("sqs").create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = aws("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    aws("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)  # this account: not denied
    alarm = f"alarm-{uuid.uuid4().hex[:8]}"
    aws("cloudwatch").put_metric_alarm(
        AlarmName=alarm, MetricName="M", Namespace="N", Statistic="Maximum", Period=60, EvaluationPeriods=1,
        Threshold=1, ComparisonOperator="GreaterThanThreshold", AlarmActions=[topic])

    # when the alarm fires under that policy, and again once the statement letting CloudWatch publish is gone
    stored = json.loads(aws("sns").get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    aws("cloudwatch").set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="test")
    allowed = _alarm_messages(aws, queue_url)
    without = {"Version": "2012-10-17", "Statement": [s for s in stored["Statement"] if s["Sid"] != "AlarmPublishes"]}
    aws("sns").set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(without))
    aws("cloudwatch").set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="test")
    aws("cloudwatch").set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="test")
    refused = _alarm_messages(aws, queue_url)

    # then the template's statements are the topic's policy, references resolved; CloudWatch publishes only while
    # the policy allows it (on AWS the alarm's action fails; its state changes anyway)
    assert [s["Sid"] for s in stored["Statement"]] == ["OnlyThisAccountSubscribes", "AlarmPublishes"]
    assert stored["Statement"][1]["Resource"] == topic
    assert stored["Statement"][1]["Condition"] == {"StringEquals": {"aws:SourceAccount": account}}
    assert allowed == [f'ALARM: "{alarm}" in us-east-1']
    assert refused == []


def test_a_queue_depth_alarm_fires_and_notifies_when_a_message_waits_in_its_queue(aws):
    # given a queue, an alarm on its visible messages (as the template's on-failure queue alarms), and an inbox
    # subscribed to the alarm's topic
    name = f"failures-{uuid.uuid4().hex[:8]}"
    queue_url = aws("sqs").create_queue(QueueName=name)["QueueUrl"]
    topic = aws("sns").create_topic(Name=f"t-{uuid.uuid4().hex[:8]}")["TopicArn"]
    inbox = aws("sqs").create_queue(QueueName=f"inbox-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    inbox_arn = aws("sqs").get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
    alarm = f"{name}-alarm"
    aws("cloudwatch").put_metric_alarm(
        AlarmName=alarm, Namespace="AWS/SQS", MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": name}], Statistic="Maximum", Period=300, EvaluationPeriods=1,
        Threshold=0, ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching",
        AlarmActions=[topic])

    # when a message lands in the queue
    aws("sqs").send_message(QueueUrl=queue_url, MessageBody="a failed event")

    # then SQS's metric reaches CloudWatch, the alarm fires and says so (the emulator's tick is 1 s here)
    assert _alarm_messages(aws, inbox, seconds=60) == [f'ALARM: "{alarm}" in us-east-1']
    statistics = aws("cloudwatch").get_metric_statistics(
        Namespace="AWS/SQS", MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": name}], StartTime=datetime.now(UTC) - timedelta(minutes=5),
        EndTime=datetime.now(UTC) + timedelta(minutes=1), Period=60, Statistics=["Maximum"])
    assert max(p["Maximum"] for p in statistics["Datapoints"]) == 1.0
