"""Gap: moto's CloudFormation does not support `AWS::S3::BucketPolicy` (it warns and skips the resource).

The policies are taken out of the template and applied with PutBucketPolicy once the stack exists (their
references to the bucket and to roles resolved against the created stack). moto stores a bucket policy but does
not evaluate it properly (conditions are ignored); iam_enforcement evaluates it on every request, Deny
statements included.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from loopline.emulator.template_references import remove_resources, replace_references

# (logical id, attribute or None for Ref) -> the literal of a created resource
LiteralOf = Callable[[str, str | None], str]


def extract_policies(template: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    """Remove every resource of `resource_type` (in place) and return their properties."""
    found = {
        logical_id: resource["Properties"]
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == resource_type
    }
    remove_resources(template, set(found))
    return list(found.values())


def resolved_properties(properties: dict[str, Any], literal_of: LiteralOf,
                        static_values: dict[str, str]) -> dict[str, Any]:
    """An extracted resource's properties with every reference to the created stack resolved to its literal."""

    def literal_for(logical_id: str, attribute: str | None) -> str | None:
        if attribute is None and logical_id in static_values:
            return static_values[logical_id]
        return literal_of(logical_id, attribute)

    return dict(plain_text(replace_references(properties, literal_for)))


def extract_bucket_policies(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Remove every AWS::S3::BucketPolicy (in place) and return their properties (Bucket, PolicyDocument)."""
    return extract_policies(template, "AWS::S3::BucketPolicy")


def apply_bucket_policies(s3_client: Any, policies: list[dict[str, Any]], literal_of: LiteralOf,
                          static_values: dict[str, str]) -> None:
    """PutBucketPolicy for each extracted policy, every reference resolved."""
    for properties in policies:
        resolved = resolved_properties(properties, literal_of, static_values)
        s3_client.put_bucket_policy(Bucket=resolved["Bucket"], Policy=json.dumps(resolved["PolicyDocument"]))


def plain_text(node: Any) -> Any:
    """Fn::Sub strings left after replacing every token are their text."""
    if isinstance(node, list):
        return [plain_text(item) for item in node]
    if isinstance(node, dict):
        if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            return node["Fn::Sub"].replace("${!", "${")
        return {key: plain_text(value) for key, value in node.items()}
    return node
