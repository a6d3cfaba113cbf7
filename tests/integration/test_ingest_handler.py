"""Ingest on moto: an upload becomes a dataset version (once) and starts training, or is quarantined with a reason."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
import yaml

from loopline_runtime.bucket_layout import DATASET_INDEX_PREFIX, DATASETS_PREFIX, QUARANTINE_PREFIX, dataset_prefix
from loopline_runtime.config import PipelineConfig
from tests.support.stack import Stack

Upload = Callable[[str, "bytes | pd.DataFrame"], dict[str, Any]]


def _keys(bucket: str, prefix: str) -> list[str]:
    response = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for item in response.get("Contents", [])]


def _body(bucket: str, key: str) -> bytes:
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def _executions(stack: Stack) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions")
    return sfn.list_executions(stateMachineArn=stack.physical_ids["TrainingStateMachine"])["executions"]


def test_good_csv_becomes_a_dataset_version_and_starts_training(
    aws_stack: Stack, load_handler: Callable[[str], Any], upload: Upload, training_rows: pd.DataFrame,
    config: PipelineConfig, lambda_context: Any,
) -> None:
    # given a labeled CSV uploaded to incoming/ and no champion yet
    ingest = load_handler("ingest")
    event = upload("incoming/breast-cancer.csv", training_rows)

    # when S3 notifies the ingest function
    result = ingest.lambda_handler(event, lambda_context)

    # then a dataset version with its rows and a manifest exists
    (outcome,) = result["results"]
    assert outcome["status"] == "accepted"
    version = outcome["dataset_version"]
    manifest = json.loads(_body(aws_stack.bucket, f"{dataset_prefix(version)}manifest.json"))
    assert manifest["version"] == version
    assert manifest["source_key"] == "incoming/breast-cancer.csv"
    assert manifest["rows"] == len(training_rows)
    assert manifest["sha256"] == hashlib.sha256(_body(aws_stack.bucket, "incoming/breast-cancer.csv")).hexdigest()
    assert manifest["schema"]["target"] == config.target
    assert set(manifest["schema"]["features"]) == set(training_rows.columns) - {config.target}
    assert set(manifest["profile"]["features"]) == set(manifest["schema"]["features"])
    stored = pd.read_csv(io.BytesIO(_body(aws_stack.bucket, f"{dataset_prefix(version)}data.csv")))
    assert len(stored) == len(training_rows)
    assert set(stored.columns) == set(training_rows.columns)
    # and, with no champion, the training state machine was started for this data
    (execution,) = _executions(aws_stack)
    assert execution["executionArn"] == outcome["execution_arn"]
    started = boto3.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])
    assert json.loads(started["input"]) == {"reason": "new_data", "dataset_version": version}


def test_duplicate_delivery_makes_no_second_version(
    aws_stack: Stack, load_handler: Callable[[str], Any], upload: Upload, training_rows: pd.DataFrame,
    lambda_context: Any,
) -> None:
    # given an upload that was already ingested once
    ingest = load_handler("ingest")
    event = upload("incoming/breast-cancer.csv", training_rows)
    first = ingest.lambda_handler(event, lambda_context)["results"][0]

    # when S3 delivers the same event again (at-least-once delivery)
    second = ingest.lambda_handler(event, lambda_context)["results"][0]

    # then it is recognised as the same version: nothing new is written and no second training run starts
    assert second["status"] == "duplicate"
    assert second["dataset_version"] == first["dataset_version"]
    assert len(_keys(aws_stack.bucket, DATASET_INDEX_PREFIX)) == 1
    assert len([k for k in _keys(aws_stack.bucket, DATASETS_PREFIX) if k.endswith("manifest.json")]) == 1
    assert len(_executions(aws_stack)) == 1


def test_same_rows_under_another_name_are_the_same_version(
    aws_stack: Stack, load_handler: Callable[[str], Any], upload: Upload, training_rows: pd.DataFrame,
    lambda_context: Any,
) -> None:
    # given the same file uploaded twice under different names
    ingest = load_handler("ingest")
    first = ingest.lambda_handler(upload("incoming/monday.csv", training_rows), lambda_context)["results"][0]

    # when
    second = ingest.lambda_handler(upload("incoming/tuesday.csv", training_rows), lambda_context)["results"][0]

    # then (content-addressed versions)
    assert (first["status"], second["status"]) == ("accepted", "duplicate")
    assert second["dataset_version"] == first["dataset_version"]


def test_url_encoded_keys_are_read(
    aws_stack: Stack, load_handler: Callable[[str], Any], upload: Upload, training_rows: pd.DataFrame,
    lambda_context: Any,
) -> None:
    # given a key with spaces (S3 notifications carry it URL-encoded: incoming/march+batch+%281%29.csv)
    ingest = load_handler("ingest")
    event = upload("incoming/march batch (1).csv", training_rows)
    assert event["Records"][0]["s3"]["object"]["key"] == "incoming/march+batch+%281%29.csv"

    # when
    (outcome,) = ingest.lambda_handler(event, lambda_context)["results"]

    # then the real key was read
    assert outcome["status"] == "accepted"
    assert outcome["source_key"] == "incoming/march batch (1).csv"


@pytest.mark.parametrize(
    ("make_body", "reason_code", "message_part"),
    [
        pytest.param(lambda rows, target: rows.to_csv(index=False).encode("utf-16"), "unparseable_csv",
                     "export.csv is not UTF-8 text", id="unparseable"),
        pytest.param(lambda rows, target: rows.drop(columns=[target]).to_csv(index=False).encode(),
                     "missing_target", "is not in the upload", id="no-target"),
    ],
)
def test_unusable_upload_is_quarantined_with_an_actionable_reason(
    aws_stack: Stack, load_handler: Callable[[str], Any], upload: Upload, training_rows: pd.DataFrame,
    config: PipelineConfig, lambda_context: Any, make_body: Callable[[pd.DataFrame, str], bytes],
    reason_code: str, message_part: str,
) -> None:
    # given an upload that cannot be used
    ingest = load_handler("ingest")
    body = make_body(training_rows, config.target)
    event = upload("incoming/export.csv", body)

    # when
    (outcome,) = ingest.lambda_handler(event, lambda_context)["results"]

    # then the original is untouched in incoming/
    assert outcome["status"] == "quarantined"
    assert _body(aws_stack.bucket, "incoming/export.csv") == body
    # and a copy sits in quarantine/ next to a reason.json a person can act on
    copy_key = outcome["quarantine_key"]
    assert copy_key.startswith(QUARANTINE_PREFIX) and copy_key.endswith("/export.csv")
    assert _body(aws_stack.bucket, copy_key) == body
    reason = json.loads(_body(aws_stack.bucket, copy_key.rsplit("/", 1)[0] + "/reason.json"))
    assert reason["reason_code"] == reason_code
    assert reason["source_key"] == "incoming/export.csv"
    assert message_part in reason["message"]
    assert reason["how_to_fix"]
    assert reason["sha256"] == hashlib.sha256(body).hexdigest()
    # and nothing was versioned or trained
    assert _keys(aws_stack.bucket, DATASETS_PREFIX) == []
    assert _executions(aws_stack) == []


def test_missing_target_reason_names_the_target(
    aws_stack: Stack, load_handler: Callable[[str], Any], upload: Upload, training_rows: pd.DataFrame,
    config: PipelineConfig, lambda_context: Any,
) -> None:
    # given a CSV without the configured target column
    ingest = load_handler("ingest")
    event = upload("incoming/no-label.csv", training_rows.drop(columns=[config.target]))

    # when
    (outcome,) = ingest.lambda_handler(event, lambda_context)["results"]

    # then the reason says which column is missing and how to fix it
    assert f"the target column {config.target!r} is not in the upload" in outcome["reason"]["message"]
    assert "target" in outcome["reason"]["how_to_fix"]


def test_with_a_champion_a_new_batch_asks_for_monitoring_instead_of_training(
    aws_stack: Stack, load_handler: Callable[[str], Any], upload: Upload, fresh_rows: pd.DataFrame,
    register_model: Callable[..., str], promote: Callable[[str], Any], lambda_context: Any,
) -> None:
    # given a champion
    promote(register_model())
    ingest = load_handler("ingest")

    # when a new labeled batch arrives
    (outcome,) = ingest.lambda_handler(upload("incoming/fresh.csv", fresh_rows), lambda_context)["results"]

    # then it is versioned, the champion is measured on it (async evaluate invoke), and no training starts
    assert outcome["status"] == "accepted"
    assert outcome["monitoring"] == "requested"
    assert _executions(aws_stack) == []


def test_a_later_upload_must_match_the_accepted_schema(
    aws_stack: Stack, ingest: Callable[..., dict[str, Any]], breast_cancer: pd.DataFrame, config: PipelineConfig,
) -> None:
    # given an accepted first upload (it fixes the schema)
    ingest("incoming/first.csv", breast_cancer.iloc[:200])
    feature = next(c for c in breast_cancer.columns if c != config.target)

    # when a later upload lacks one of its feature columns
    outcome = ingest("incoming/second.csv", breast_cancer.iloc[200:400].drop(columns=[feature]))

    # then it is quarantined, naming the column
    assert outcome["status"] == "quarantined"
    assert outcome["reason"]["reason_code"] == "schema_mismatch"
    assert f"feature column(s) {feature!r}" in outcome["reason"]["message"]


def test_an_upload_below_the_configured_minimum_is_quarantined(
    aws_stack: Stack, ingest: Callable[..., dict[str, Any]], training_rows: pd.DataFrame, config: PipelineConfig,
) -> None:
    # given fewer labeled rows than training.min_rows
    rows = training_rows.head(config.training.min_rows - 1)

    # when
    outcome = ingest("incoming/small.csv", rows)

    # then
    assert outcome["status"] == "quarantined"
    assert outcome["reason"]["reason_code"] == "too_few_rows"
    assert f"needs at least {config.training.min_rows}" in outcome["reason"]["message"]


def test_a_quarantined_upload_is_announced_on_the_notification_topic(
    aws_stack: Stack, load_handler: Callable[[str], Any], upload: Upload, training_rows: pd.DataFrame,
    config: PipelineConfig, lambda_context: Any,
) -> None:
    # given the stack's topic with a queue listening, and an upload without the target column
    topic_arn = boto3.client("sns").create_topic(
        Name=aws_stack.physical_ids["NotificationTopic"].rsplit(":", 1)[-1])["TopicArn"]
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="listener")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    ingest = load_handler("ingest")
    event = upload("incoming/no-label.csv", training_rows.drop(columns=[config.target]))

    # when
    ingest.lambda_handler(event, lambda_context)

    # then one notification says which file, why, and how to fix it
    (message,) = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    envelope = json.loads(message["Body"])
    details = json.loads(envelope["Message"])
    assert envelope["Subject"] == f"Loopline {config.name}: incoming/no-label.csv quarantined (missing_target)"
    assert details["event"] == "quarantined" and details["reason_code"] == "missing_target"
    assert details["how_to_fix"] and details["quarantined_copy"].startswith(QUARANTINE_PREFIX)


def test_a_semicolon_upload_is_quarantined_naming_the_delimiter_and_the_setting(
    load_handler: Callable[[str], Any], upload: Upload, training_rows: pd.DataFrame, lambda_context: Any,
) -> None:
    # given a semicolon export and the default (comma) config
    ingest = load_handler("ingest")
    event = upload("incoming/export.csv", training_rows.to_csv(index=False, sep=";").encode())

    # when
    (outcome,) = ingest.lambda_handler(event, lambda_context)["results"]

    # then
    assert outcome["reason"]["reason_code"] == "unparseable_csv"
    assert "its header has semicolons (';') where commas were expected" in outcome["reason"]["message"]
    assert 'set `csv: {delimiter: ";"}` in the pipeline config' in outcome["reason"]["message"]


def test_csv_delimiter_in_the_config_reads_a_semicolon_upload(
    aws_stack: Stack, fast_pipeline_config_path: Path, load_handler: Callable[[str], Any], upload: Upload,
    training_rows: pd.DataFrame, lambda_context: Any,
) -> None:
    # given the pipeline config says semicolons
    config = yaml.safe_load(fast_pipeline_config_path.read_text())
    fast_pipeline_config_path.write_text(yaml.safe_dump({**config, "csv": {"delimiter": ";"}}))
    ingest = load_handler("ingest")
    event = upload("incoming/export.csv", training_rows.to_csv(index=False, sep=";").encode())

    # when
    (outcome,) = ingest.lambda_handler(event, lambda_context)["results"]

    # then
    assert outcome["status"] == "accepted", outcome
    assert outcome["rows"] == len(training_rows)


def test_an_unlabeled_upload_points_to_batch_scoring_and_a_near_miss_column(
    load_handler: Callable[[str], Any], upload: Upload, training_rows: pd.DataFrame, config: PipelineConfig,
    lambda_context: Any,
) -> None:
    # given the label column misspelled
    ingest = load_handler("ingest")
    event = upload("incoming/typo.csv", training_rows.rename(columns={config.target: config.target + "s"}))

    # when
    (outcome,) = ingest.lambda_handler(event, lambda_context)["results"]

    # then
    reason = outcome["reason"]
    assert f"is not in the upload (did you mean {config.target + 's'!r}?)" in reason["message"]
    assert "batch/incoming/" in reason["message"] and "loopline score FILE" in reason["how_to_fix"]


def test_the_handler_runs_as_its_role_and_a_grant_taken_away_is_access_denied(
    aws_stack: Stack, load_handler: Callable[[str], Any], upload: Upload, training_rows: pd.DataFrame,
    lambda_context: Any,
) -> None:
    # given the ingest role without its policies (the handler's calls are authorised as the role's, as on AWS)
    iam = boto3.client("iam")
    role = next(r["RoleName"] for r in iam.list_roles()["Roles"] if "-IngestFunctionRole-" in r["RoleName"])
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        iam.delete_role_policy(RoleName=role, PolicyName=name)
    ingest = load_handler("ingest")
    event = upload("incoming/breast-cancer.csv", training_rows)

    # when S3 notifies the ingest function
    # then its first read of the upload is refused, as AWS would refuse it
    with pytest.raises(Exception, match="AccessDenied") as denied:
        ingest.lambda_handler(event, lambda_context)
    assert "s3:GetObject" in str(denied.value)
    assert _keys(aws_stack.bucket, DATASETS_PREFIX) == []


def test_dates_that_read_either_way_are_accepted_with_a_warning_in_the_outcome_and_manifest(
    aws_stack: Stack, ingest: Callable[[str, pd.DataFrame], dict[str, Any]], training_rows: pd.DataFrame,
) -> None:
    # given a labeled upload whose visit dates are written 03/01/2023 (March 1, or 3 January?)
    rows = training_rows.copy()
    rows["visit"] = [f"{1 + i % 12:02d}/{1 + (i * 7) % 12:02d}/2023" for i in range(len(rows))]

    # when it is ingested
    outcome = ingest("incoming/visits.csv", rows)

    # then it is accepted, and both the outcome and the version's manifest say how the dates were read
    assert outcome["status"] == "accepted"
    (warning,) = outcome["warnings"]
    assert "'visit'" in warning and "month first" in warning and "YYYY-MM-DD" in warning
    manifest = json.loads(_body(aws_stack.bucket, f"{dataset_prefix(outcome['dataset_version'])}manifest.json"))
    assert manifest["warnings"] == [warning]
