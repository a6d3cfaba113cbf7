"""template.yaml keeps the operational guard rails a production stack needs (issue: hostile input and template
hardening). Each test names the rule a reviewer would check by hand."""

from __future__ import annotations

import json
from typing import Any

import pytest

from loopline_runtime.bucket_layout import (
    BATCH_INCOMING_PREFIX,
    BATCH_MAP_RESULTS_PREFIX,
    BATCH_RUNS_PREFIX,
    INCOMING_PREFIX,
    PREDICTIONS_PREFIX,
    QUARANTINE_PREFIX,
)

API_GATEWAY_INTEGRATION_TIMEOUT_S = 29  # REST API integration timeout (AWS quota, not configurable upwards)


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _sub_text(value: Any) -> str:
    """The template string of a `Fn::Sub` (short or list form), or the literal."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub[0] if isinstance(sub, list) else sub
    return str(value)


def test_every_function_has_a_log_group_with_retention(template: dict[str, Any]) -> None:
    # given every function and every log group of the stack
    functions = _resources(template, "AWS::Serverless::Function")
    groups = [r["Properties"] for r in _resources(template, "AWS::Logs::LogGroup").values()]

    # then each function's /aws/lambda/<name> group is declared, with a retention
    for name in functions:
        matching = [g for g in groups if _sub_text(g["LogGroupName"]) == f"/aws/lambda/${{{name}}}"]
        assert matching, f"{name} has no AWS::Logs::LogGroup: its logs would be kept forever"
        assert "RetentionInDays" in matching[0]


@pytest.mark.parametrize("function", ["IngestFunction", "PredictFunction"])
def test_public_entry_points_have_reserved_concurrency(template: dict[str, Any], function: str) -> None:
    properties = template["Resources"][function]["Properties"]
    assert "ReservedConcurrentExecutions" in properties


def test_predict_times_out_before_api_gateway_does(template: dict[str, Any]) -> None:
    timeout = template["Resources"]["PredictFunction"]["Properties"]["Timeout"]
    assert timeout < API_GATEWAY_INTEGRATION_TIMEOUT_S


def test_the_api_writes_access_logs_with_the_api_key_and_has_a_quota(template: dict[str, Any]) -> None:
    api = template["Resources"]["PredictApi"]["Properties"]
    assert "$context.identity.apiKeyId" in api["AccessLogSetting"]["Format"]
    assert api["Auth"]["ApiKeyRequired"] is True
    assert {"Limit", "Period"} <= set(api["Auth"]["UsagePlan"]["Quota"])


def test_uploads_reach_ingest_whatever_the_case_of_their_suffix(template: dict[str, Any]) -> None:
    # given the bucket's notifications (ingest; batch scoring, issue 8, added the second)
    bucket = template["Resources"]["ArtifactBucket"]["Properties"]
    configurations = bucket["NotificationConfiguration"]["LambdaConfigurations"]
    notifications = {n["Function"]["Fn::GetAtt"][0]: n for n in configurations}

    # then S3 filters by prefix only (its suffix filter is case-sensitive and would drop `data.CSV` silently)
    for function, prefix in {"IngestFunction": "incoming/", "BatchFunction": "batch/incoming/"}.items():
        rules = {rule["Name"].lower(): rule["Value"] for rule in notifications[function]["Filter"]["S3Key"]["Rules"]}
        assert rules == {"prefix": prefix}


def test_s3_may_invoke_ingest_only_for_this_bucket_and_account(template: dict[str, Any]) -> None:
    permissions = [
        r["Properties"] for r in _resources(template, "AWS::Lambda::Permission").values()
        if r["Properties"]["Principal"] == "s3.amazonaws.com"
    ]
    assert permissions
    for permission in permissions:
        assert "SourceArn" in permission and "SourceAccount" in permission


def test_the_versioned_bucket_expires_old_versions_and_quarantine_copies(template: dict[str, Any]) -> None:
    rules = template["Resources"]["ArtifactBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any("NoncurrentVersionExpiration" in rule for rule in rules)
    assert any(rule.get("Prefix") == QUARANTINE_PREFIX and "ExpirationInDays" in rule for rule in rules)


def test_metrics_may_only_be_published_to_the_project_namespace(template: dict[str, Any]) -> None:
    # given every policy statement of every function that may publish metrics
    statements = [
        statement
        for function in _resources(template, "AWS::Serverless::Function").values()
        for policy in function["Properties"].get("Policies", [])
        if isinstance(policy, dict) and "Statement" in policy
        for statement in policy["Statement"]
        if "cloudwatch:PutMetricData" in statement["Action"]
    ]

    # then each is scoped by the namespace condition (PutMetricData has no resource type to scope it by)
    assert statements
    namespace = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    for statement in statements:
        assert statement["Condition"]["StringEquals"]["cloudwatch:namespace"] == namespace
    for function in _resources(template, "AWS::Serverless::Function").values():
        assert not any(isinstance(p, dict) and "CloudWatchPutMetricPolicy" in p
                       for p in function["Properties"].get("Policies", []))


def test_only_principals_of_the_stacks_account_may_subscribe_to_the_notification_topic(
    template: dict[str, Any],
) -> None:
    # given the topic policies of the notification topic
    policies = [r["Properties"] for r in _resources(template, "AWS::SNS::TopicPolicy").values()
                if {"Ref": "NotificationTopic"} in r["Properties"]["Topics"]]

    # then one denies sns:Subscribe to every principal outside the stack's account
    denies = [s for p in policies for s in p["PolicyDocument"]["Statement"]
              if s["Effect"] == "Deny" and "sns:Subscribe" in s["Action"] and s["Principal"] == "*"]
    assert [d["Condition"] for d in denies] == [
        {"StringNotEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}}}]


def test_every_prefix_that_grows_with_uploads_or_runs_expires_after_the_failure_queues_give_up(
    template: dict[str, Any],
) -> None:
    # given the bucket's lifecycle rules and the longest a failed event waits in an on-failure queue
    rules = template["Resources"]["ArtifactBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    expiring = {rule.get("Prefix"): rule["ExpirationInDays"] for rule in rules if "ExpirationInDays" in rule}
    queue_days = max(int(r["Properties"]["MessageRetentionPeriod"]) for r in _resources(template, "AWS::SQS::Queue")
                     .values()) / 86_400

    # then uploads, quarantine copies, batch working objects and predictions expire
    growing = {INCOMING_PREFIX, BATCH_INCOMING_PREFIX, QUARANTINE_PREFIX, BATCH_RUNS_PREFIX, BATCH_MAP_RESULTS_PREFIX,
               PREDICTIONS_PREFIX}
    assert growing <= set(expiring), f"no expiry for {sorted(growing - set(expiring))}"
    # and an upload outlives the queue that may hold its event for a redrive
    assert min(expiring[INCOMING_PREFIX], expiring[BATCH_INCOMING_PREFIX]) > queue_days


def test_every_request_to_the_artifact_bucket_is_logged_to_a_bucket_only_s3_logging_writes(
    template: dict[str, Any],
) -> None:
    # given the artifact bucket's logging configuration and the policy of the bucket it names
    logging = template["Resources"]["ArtifactBucket"]["Properties"]["LoggingConfiguration"]
    target = logging["DestinationBucketName"]["Ref"]
    policies = [r["Properties"]["PolicyDocument"] for r in _resources(template, "AWS::S3::BucketPolicy").values()
                if r["Properties"]["Bucket"] == {"Ref": target}]

    # then that bucket is another one, and only the S3 logging service may put objects into it
    assert target != "ArtifactBucket" and len(policies) == 1
    allows = [s for s in policies[0]["Statement"] if s["Effect"] == "Allow"]
    assert [s["Principal"] for s in allows] == [{"Service": "logging.s3.amazonaws.com"}]
    assert "aws:SourceArn" in allows[0]["Condition"]["ArnLike"]


def test_every_alarm_notifies_when_it_fires_and_when_it_clears(template: dict[str, Any]) -> None:
    # given every alarm: the model's measured, estimated and live quality, the on-failure queues, champion loads
    alarms = _resources(template, "AWS::CloudWatch::Alarm")
    assert {"ModelQualityAlarm", "IngestFailureQueueAlarm", "ChampionLoadFailureAlarm"} <= set(alarms)

    # then each tells the notification topic both ways (an alarm without actions changes state in silence)
    for name, alarm in alarms.items():
        for actions in ("AlarmActions", "OKActions"):
            assert any("-notifications" in json.dumps(a) for a in alarm["Properties"].get(actions, [])), (name, actions)
