"""The real template.yaml deploys on the patched moto with every gap filled."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loopline.emulator.local_stack import StackSettings, deploy_stack
from loopline.params import stack_parameters
from loopline_runtime.config import PipelineConfig

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_template_yaml_deploys_with_local_api_key_alarm_and_notifications(
    emulator: dict[str, Any], aws: Callable[[str], Any], aws_session: Any, pipeline_config: PipelineConfig,
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    # given
    settings = StackSettings(
        stack_name=f"ll-{uuid.uuid4().hex[:6]}",
        template_path=REPO_ROOT / "template.yaml",
        config_path=REPO_ROOT / "pipeline.yaml",
        region="us-east-1",
        aws_endpoint_url=emulator["endpoint"],
        api_base_url="http://127.0.0.1:3999/",
        workdir=tmp_path,
    )

    # when
    with warnings.catch_warnings(record=True) as warned, caplog.at_level(logging.WARNING, logger="moto"):
        warnings.simplefilter("always")
        stack = deploy_stack(settings, aws_session, emulator["runtime"], progress=lambda message: None)

    # then: no resource type was left to moto's CloudFormation that it skips (each gap module takes its own)
    skipped = [str(w.message) for w in warned] + [r.getMessage() for r in caplog.records]
    assert not [m for m in skipped if "CloudFormation" in m and "support" in m], skipped
    outputs = stack.outputs
    assert outputs["PredictApiUrl"] == "http://127.0.0.1:3999/Prod/"
    key = aws("apigateway").get_api_key(apiKey=outputs["PredictApiKeyId"], includeValue=True)
    assert key["enabled"] and key["value"]
    (alarm,) = aws("cloudwatch").describe_alarms(AlarmNames=[outputs["ModelQualityAlarmName"]])["MetricAlarms"]
    expected = stack_parameters(pipeline_config)
    assert alarm["Threshold"] == float(expected["AlarmThreshold"])
    assert alarm["ComparisonOperator"] == expected["AlarmComparisonOperator"]
    assert alarm["Dimensions"] == [{"Name": "Pipeline", "Value": pipeline_config.name}]
    notification = aws("s3").get_bucket_notification_configuration(Bucket=outputs["ArtifactBucketName"])
    assert notification["LambdaFunctionConfigurations"][0]["LambdaFunctionArn"].endswith(
        stack.physical_ids["IngestFunction"]
    )
    machine = aws("stepfunctions").describe_state_machine(stateMachineArn=outputs["TrainingStateMachineArn"])
    assert "${" not in machine["definition"]
    assert "$$.Execution.Id" in machine["definition"]
    assert {(r.method, r.resource_path) for r in stack.routes} >= {("POST", "/predict"), ("GET", "/model")}
    # every route needs the API key, except the rollback route, which authenticates its caller by IAM
    assert all(r.api_key_required != r.iam_authorized for r in stack.routes)
    assert {(r.method, r.resource_path) for r in stack.routes if r.iam_authorized} == {("POST", "/rollback")}
    assert json.loads(json.dumps(outputs))  # plain strings, ready for the e2e fixture
    # and the capture path moto's CloudFormation skips: the delivery stream, the predict log's subscription to
    # it, and the Glue table Athena queries
    stream = aws("firehose").describe_delivery_stream(DeliveryStreamName=outputs["CaptureDeliveryStreamName"])
    (destination,) = stream["DeliveryStreamDescription"]["Destinations"]
    assert destination["ExtendedS3DestinationDescription"]["Prefix"].startswith("capture/predictions/year=")
    predict_log_group = f"/aws/lambda/{stack.physical_ids['PredictFunction']}"
    (subscription,) = aws("logs").describe_subscription_filters(logGroupName=predict_log_group)["subscriptionFilters"]
    assert subscription["destinationArn"] == stream["DeliveryStreamDescription"]["DeliveryStreamARN"]
    table = aws("glue").get_table(DatabaseName=outputs["CaptureDatabaseName"], Name="predictions")["Table"]
    assert table["Parameters"]["projection.enabled"] == "true"
    assert "${year}" in table["Parameters"]["storage.location.template"]
    # and the notification topic's policy, also skipped by moto's CloudFormation
    policy = aws("sns").get_topic_attributes(TopicArn=outputs["NotificationTopicArn"])["Attributes"]["Policy"]
    assert {s["Sid"] for s in json.loads(policy)["Statement"]} == {"OnlyThisAccountSubscribes", "QualityAlarmPublishes"}


def test_local_up_with_an_invalid_config_exits_non_zero_with_the_message_and_no_traceback(
    tmp_path: Path, unused_port: int
) -> None:
    # given
    config = tmp_path / "pipeline.yaml"
    config.write_text("name: Bad Name\ntarget: y\n", encoding="utf-8")

    # when
    result = subprocess.run(
        [sys.executable, "-m", "loopline.cli", "local", "up", "--config", str(config),
         "--template", str(REPO_ROOT / "template.yaml"), "--aws-port", str(unused_port), "--api-port", "0"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    # then
    assert result.returncode != 0
    assert "is invalid" in result.stderr
    assert "name" in result.stderr and "gate" in result.stderr
    assert "Traceback" not in result.stderr
