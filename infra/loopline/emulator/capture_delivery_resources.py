"""Gap: moto's CloudFormation does not support `AWS::KinesisFirehose::DeliveryStream`, `AWS::Logs::SubscriptionFilter`,
`AWS::Glue::Database` or `AWS::Glue::Table` (it skips them with a warning, and a reference to one breaks the stack).

They are taken out of the template, references to them replaced by the literal name/ARN CloudFormation would give
them, and they are created by API call once the stack's other resources (the roles and the log group they name)
exist: the delivery stream (with its S3 destination, buffering, compression, processors and role), the log
group's subscription filter (with its role), and the Glue database and table (partition projection included).
Run-time delivery (filter pattern, buffering, partitioned keys, IAM) is `firehose_capture_delivery.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loopline.emulator.static_intrinsics import resolve_static
from loopline.emulator.template_references import remove_resources, replace_references

STREAM = "AWS::KinesisFirehose::DeliveryStream"
FILTER = "AWS::Logs::SubscriptionFilter"
DATABASE = "AWS::Glue::Database"
TABLE = "AWS::Glue::Table"
_TYPES = (STREAM, FILTER, DATABASE, TABLE)

# resolves a Ref / Fn::GetAtt to a resource the stack created (local_stack's resolver)
ResolveResource = Callable[[Any], str]


def delivery_stream_arn(region: str, account_id: str, name: str) -> str:
    """The ARN Firehose gives a delivery stream."""
    return f"arn:aws:firehose:{region}:{account_id}:deliverystream/{name}"


@dataclass
class CaptureResources:
    """The extracted resources' properties (intrinsics not yet resolved), by type, in template order."""

    values: dict[str, str]
    by_type: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)

    def of(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        return self.by_type.get(kind, [])


def extract_capture_resources(template: dict[str, Any], values: dict[str, str], region: str,
                              account_id: str) -> CaptureResources:
    """Remove the four resource types from `template` (in place); references to them become literals."""
    extracted = CaptureResources(values)
    names: dict[str, tuple[str, str]] = {}  # logical id -> (type, name)
    for logical_id, resource in template["Resources"].items():
        kind = resource.get("Type")
        if kind not in _TYPES:
            continue
        properties = resource.get("Properties", {})
        extracted.by_type.setdefault(kind, []).append((logical_id, properties))
        if kind == STREAM:
            names[logical_id] = (kind, str(resolve_static(properties["DeliveryStreamName"], values)))
        elif kind == DATABASE:
            names[logical_id] = (kind, str(resolve_static(properties["DatabaseInput"]["Name"], values)))
        elif kind == TABLE:
            names[logical_id] = (kind, str(resolve_static(properties["TableInput"]["Name"], values)))
    remove_resources(template, {logical_id for items in extracted.by_type.values() for logical_id, _ in items})

    def literal_for(logical_id: str, attribute: str | None) -> str | None:
        if logical_id not in names:
            return None
        kind, name = names[logical_id]
        return delivery_stream_arn(region, account_id, name) if kind == STREAM and attribute == "Arn" else name

    for section in ("Resources", "Outputs"):
        template[section] = replace_references(template.get(section, {}), literal_for)
    extracted.by_type = {kind: [(lid, replace_references(p, literal_for)) for lid, p in items]
                         for kind, items in extracted.by_type.items()}
    return extracted


def create_capture_resources(clients: Any, extracted: CaptureResources, resolve_resource: ResolveResource) -> None:
    """Create the extracted resources with the API (after the stack: their roles and log group exist)."""

    def resolved(node: Any) -> Any:
        return _resolve(node, extracted.values, resolve_resource)

    for _, properties in extracted.of(STREAM):
        p = resolved(properties)
        clients.firehose.create_delivery_stream(
            DeliveryStreamName=p["DeliveryStreamName"], DeliveryStreamType=p.get("DeliveryStreamType", "DirectPut"),
            ExtendedS3DestinationConfiguration=_typed_destination(p["ExtendedS3DestinationConfiguration"]))
    for _, properties in extracted.of(FILTER):
        p = resolved(properties)
        clients.logs.put_subscription_filter(
            logGroupName=p["LogGroupName"], filterName=p.get("FilterName", "capture"),
            filterPattern=p["FilterPattern"], destinationArn=p["DestinationArn"], roleArn=p.get("RoleArn", ""))
    for _, properties in extracted.of(DATABASE):
        p = resolved(properties)
        clients.glue.create_database(DatabaseInput=p["DatabaseInput"])
    for _, properties in extracted.of(TABLE):
        p = resolved(properties)
        clients.glue.create_table(DatabaseName=p["DatabaseName"], TableInput=p["TableInput"])


def _typed_destination(destination: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation takes numbers and booleans as text; the API wants them typed."""
    typed = dict(destination)
    hints = typed.get("BufferingHints")
    if hints:
        typed["BufferingHints"] = {k: int(v) for k, v in hints.items()}
    processing = typed.get("ProcessingConfiguration")
    if processing and "Enabled" in processing:
        typed["ProcessingConfiguration"] = {**processing, "Enabled": str(processing["Enabled"]).lower() == "true"}
    return typed


def _resolve(node: Any, values: dict[str, str], resolve_resource: ResolveResource) -> Any:
    if isinstance(node, list):
        return [_resolve(item, values, resolve_resource) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        return values[node["Ref"]] if node["Ref"] in values else resolve_resource(node)
    if set(node) == {"Fn::GetAtt"}:
        return resolve_resource(node)
    if set(node) == {"Fn::Sub"}:
        return resolve_static(node, values)
    return {key: _resolve(value, values, resolve_resource) for key, value in node.items()}
