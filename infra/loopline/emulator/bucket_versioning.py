"""Gap: moto's CloudFormation ignores a bucket's `VersioningConfiguration`.

The champion pointer pins S3 object versions (VersionId), so the local bucket must be versioned as the template
declares: the setting is read from the template and applied with put_bucket_versioning once the stack exists.
"""

from __future__ import annotations

from typing import Any


def extract_bucket_versioning(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Bucket logical id -> its VersioningConfiguration (left in the template: moto ignores it harmlessly)."""
    return {
        logical_id: resource["Properties"]["VersioningConfiguration"]
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::S3::Bucket"
        and "VersioningConfiguration" in (resource.get("Properties") or {})
    }


def apply_bucket_versioning(s3_client: Any, pending: dict[str, dict[str, Any]], bucket_names: dict[str, str]) -> None:
    """Put each configuration on its created bucket (`bucket_names`: logical id -> bucket name)."""
    for logical_id, configuration in pending.items():
        s3_client.put_bucket_versioning(Bucket=bucket_names[logical_id],
                                        VersioningConfiguration={"Status": configuration["Status"]})
