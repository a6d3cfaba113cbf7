"""Gap: moto's CloudFormation ignores a bucket's `NotificationConfiguration`.

It is taken out of the template and applied with put_bucket_notification_configuration once the stack (and
so the target functions) exist, translated from the CloudFormation shape to the API shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# resolves a CloudFormation value (e.g. {"Fn::GetAtt": ["IngestFunction", "Arn"]}) against the created stack
ResolveValue = Callable[[Any], str]


def extract_bucket_notifications(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Pop NotificationConfiguration from every AWS::S3::Bucket (in place): bucket logical id -> configuration."""
    pending = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") == "AWS::S3::Bucket":
            configuration = (resource.get("Properties") or {}).pop("NotificationConfiguration", None)
            if configuration:
                pending[logical_id] = configuration
    return pending


def as_api_configuration(configuration: dict[str, Any], resolve: ResolveValue) -> dict[str, Any]:
    """CloudFormation NotificationConfiguration -> the put_bucket_notification_configuration argument."""
    api: dict[str, Any] = {}
    shapes = (
        ("LambdaConfigurations", "LambdaFunctionConfigurations", "Function", "LambdaFunctionArn"),
        ("QueueConfigurations", "QueueConfigurations", "Queue", "QueueArn"),
        ("TopicConfigurations", "TopicConfigurations", "Topic", "TopicArn"),
    )
    for cfn_key, api_key, cfn_target, api_target in shapes:
        for item in configuration.get(cfn_key, []):
            entry: dict[str, Any] = {api_target: resolve(item[cfn_target]), "Events": [item["Event"]]}
            rules = item.get("Filter", {}).get("S3Key", {}).get("Rules")
            if rules:
                entry["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
            api.setdefault(api_key, []).append(entry)
    if configuration.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
        api["EventBridgeConfiguration"] = {}
    return api


def apply_bucket_notifications(
    s3_client: Any, pending: dict[str, dict[str, Any]], bucket_names: dict[str, str], resolve: ResolveValue
) -> None:
    """Put each extracted configuration on its created bucket (`bucket_names`: logical id -> bucket name)."""
    for logical_id, configuration in pending.items():
        s3_client.put_bucket_notification_configuration(
            Bucket=bucket_names[logical_id], NotificationConfiguration=as_api_configuration(configuration, resolve)
        )
