"""Gap: moto's CloudFormation does not support `AWS::S3::BucketPolicy` (it warns and skips the resource).

The policies are removed from the template and deliberately not applied with put_bucket_policy: moto's server
enforces bucket policies, and its endpoint is plain HTTP, so the usual `DenyInsecureTransport` statement
(aws:SecureTransport = false) would deny every request a local client makes.
"""

from __future__ import annotations

from typing import Any

from loopline.emulator.template_references import remove_resources


def drop_bucket_policies(template: dict[str, Any]) -> set[str]:
    """Remove every AWS::S3::BucketPolicy (in place) and return their logical ids."""
    dropped = {
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::S3::BucketPolicy"
    }
    remove_resources(template, dropped)
    return dropped
