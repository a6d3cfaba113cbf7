"""What a request to moto asks IAM for: the action(s), resource ARN(s) and condition keys, as AWS derives them.

S3 actions follow the method, the sub-resource in the query and the resource type, as AWS's S3 authorisation
does (a read with `versionId` is `s3:GetObjectVersion`, HEAD included; a copy also reads its source; a
multi-object delete deletes each key). Other services' actions are their operation names (Lambda's `Invoke` is
`lambda:InvokeFunction`), and the resource is the ARN the operation names in its parameters; an action without a
resource type (or one not listed here) is authorised against "*".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse
from xml.etree import ElementTree

PARTITION = "aws"


@dataclass(frozen=True)
class AccessRequest:
    """One thing to authorise: an IAM action on a resource, with the request's condition keys."""

    action: str
    resource: str
    context: dict[str, str] = field(default_factory=dict)
    bucket: str | None = None  # S3: the bucket whose policy applies


def access_requests(response: Any, service: str, s3_resource: str, account_id: str) -> list[AccessRequest]:
    """The accesses one moto request needs (`response` is moto's BaseResponse for the request)."""
    if service == "s3":
        return s3_accesses(response.method, s3_resource, _query(response), response.headers, response.body)
    region = getattr(response, "region", "us-east-1")
    operation = str(response._get_action())
    action = f"{service}:{_IAM_ACTION_NAMES.get((service, operation), operation)}"
    resolve = _RESOURCES.get(action)
    resources = resolve(_Params(response), region, account_id) if resolve else ["*"]
    context = {}
    if action == "cloudwatch:PutMetricData":
        namespace = _Params(response).get("Namespace")
        if namespace:
            context["cloudwatch:namespace"] = str(namespace)
    requests = [AccessRequest(action, resource, context) for resource in resources or ["*"]]
    if action == "sagemaker:CreateTrainingJob":  # handing the job its role is passing that role to SageMaker
        role = str(_Params(response).get("RoleArn") or "*")
        requests.append(AccessRequest("iam:PassRole", role, {"iam:PassedToService": "sagemaker.amazonaws.com"}))
    return requests


# ---- S3

_KEY_SUBRESOURCES = {
    "GET": [("uploadId", "ListMultipartUploadParts"), ("tagging", "GetObjectTagging"), ("acl", "GetObjectAcl"),
            ("attributes", "GetObjectAttributes"), ("versionId", "GetObjectVersion")],
    "HEAD": [("versionId", "GetObjectVersion")],
    "PUT": [("tagging", "PutObjectTagging"), ("acl", "PutObjectAcl"), ("retention", "PutObjectRetention"),
            ("legal-hold", "PutObjectLegalHold")],
    "DELETE": [("uploadId", "AbortMultipartUpload"), ("tagging", "DeleteObjectTagging"),
               ("versionId", "DeleteObjectVersion")],
    "POST": [("restore", "RestoreObject"), ("select", "GetObject")],
}
_KEY_DEFAULTS = {"GET": "GetObject", "HEAD": "GetObject", "PUT": "PutObject", "DELETE": "DeleteObject",
                 "POST": "PutObject"}
_BUCKET_SUBRESOURCES = {
    "GET": [("versions", "ListBucketVersions"), ("uploads", "ListBucketMultipartUploads"),
            ("location", "GetBucketLocation"), ("versioning", "GetBucketVersioning"), ("policy", "GetBucketPolicy"),
            ("notification", "GetBucketNotification"), ("lifecycle", "GetLifecycleConfiguration"),
            ("encryption", "GetEncryptionConfiguration"), ("tagging", "GetBucketTagging"), ("acl", "GetBucketAcl"),
            ("publicAccessBlock", "GetBucketPublicAccessBlock"), ("ownershipControls", "GetBucketOwnershipControls"),
            ("cors", "GetBucketCORS"), ("logging", "GetBucketLogging"), ("website", "GetBucketWebsite")],
    "PUT": [("versioning", "PutBucketVersioning"), ("policy", "PutBucketPolicy"),
            ("notification", "PutBucketNotification"), ("lifecycle", "PutLifecycleConfiguration"),
            ("encryption", "PutEncryptionConfiguration"), ("tagging", "PutBucketTagging"), ("acl", "PutBucketAcl"),
            ("publicAccessBlock", "PutBucketPublicAccessBlock"), ("ownershipControls", "PutBucketOwnershipControls"),
            ("cors", "PutBucketCORS"), ("logging", "PutBucketLogging"), ("website", "PutBucketWebsite")],
    "DELETE": [("policy", "DeleteBucketPolicy"), ("tagging", "PutBucketTagging"), ("lifecycle",
               "PutLifecycleConfiguration"), ("cors", "PutBucketCORS"), ("website", "DeleteBucketWebsite"),
               ("publicAccessBlock", "PutBucketPublicAccessBlock"), ("encryption", "PutEncryptionConfiguration")],
}
_BUCKET_DEFAULTS = {"GET": "ListBucket", "HEAD": "ListBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}


def s3_accesses(method: str, resource: str, query: dict[str, list[str]], headers: Any,
                body: bytes | str | None) -> list[AccessRequest]:
    """The S3 actions of one request on `resource` (moto's `arn:aws:s3:::bucket[/key]`)."""
    method = method.upper()
    path = resource.split(":::", 1)[-1]
    bucket, _, key = path.partition("/")
    if bucket in ("", "*"):
        return [AccessRequest("s3:ListAllMyBuckets", "*")]
    bucket_arn = f"arn:{PARTITION}:s3:::{bucket}"
    if key:
        action = _first_match(_KEY_SUBRESOURCES.get(method, []), query) or _KEY_DEFAULTS.get(method, "GetObject")
        context = {"s3:versionid": query["versionId"][0]} if "versionId" in query else {}
        accesses = [AccessRequest(f"s3:{action}", f"{bucket_arn}/{key}", context, bucket)]
        source = headers.get("x-amz-copy-source") if method == "PUT" else None
        if source:
            accesses.append(_copy_source(str(source)))
        return accesses
    if method == "POST" and "delete" in query:
        return [_deleted(bucket, entry) for entry in _deleted_objects(body)]
    action = _first_match(_BUCKET_SUBRESOURCES.get(method, []), query) or _BUCKET_DEFAULTS.get(method, "ListBucket")
    context = {}
    if action == "ListBucket":
        context["s3:prefix"] = query.get("prefix", [""])[0]
        if "delimiter" in query:
            context["s3:delimiter"] = query["delimiter"][0]
    return [AccessRequest(f"s3:{action}", bucket_arn, context, bucket)]


def _first_match(table: list[tuple[str, str]], query: dict[str, list[str]]) -> str | None:
    return next((action for name, action in table if name in query), None)


def _copy_source(source: str) -> AccessRequest:
    parsed = urlparse("/" + unquote(source).lstrip("/"))
    source_bucket, _, source_key = parsed.path.lstrip("/").partition("/")
    version = parse_qs(parsed.query).get("versionId")
    action = "s3:GetObjectVersion" if version else "s3:GetObject"
    return AccessRequest(action, f"arn:{PARTITION}:s3:::{source_bucket}/{source_key}", {}, source_bucket)


def _deleted_objects(body: bytes | str | None) -> list[tuple[str, str | None]]:
    if not body:
        return []
    root = ElementTree.fromstring(body if isinstance(body, bytes) else body.encode("utf-8"))
    entries = []
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] != "Object":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in element}
        entries.append((fields.get("Key", ""), fields.get("VersionId")))
    return entries


def _deleted(bucket: str, entry: tuple[str, str | None]) -> AccessRequest:
    key, version = entry
    action = "s3:DeleteObjectVersion" if version else "s3:DeleteObject"
    return AccessRequest(action, f"arn:{PARTITION}:s3:::{bucket}/{key}", {}, bucket)


def _query(response: Any) -> dict[str, list[str]]:
    query = parse_qs(urlparse(response.uri).query, keep_blank_values=True)
    return query


# ---- other services

# operation names that are not their IAM action's name
_IAM_ACTION_NAMES = {("lambda", "Invoke"): "InvokeFunction", ("lambda", "InvokeAsync"): "InvokeFunction"}


class _Params:
    """A request's parameters, whatever its protocol (query, JSON, CBOR, REST path), through moto's parser."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def get(self, name: str) -> Any:
        value = self._response._get_param(name)
        if value is None and getattr(self._response, "uri_match", None):
            value = self._response.uri_match.get(name)
        return value

    def many(self, name: str) -> list[str]:
        value = self.get(name)
        if isinstance(value, list):
            return [str(v) for v in value]
        if value is not None:
            return [str(value)]
        query = getattr(self._response, "querystring", {}) or {}  # query protocol: Name.member.N
        return [str(v[0]) for k, v in sorted(query.items()) if re.fullmatch(rf"{name}\.member\.\d+", k)]


Resolver = Callable[[_Params, str, str], list[str]]


def _param(name: str) -> Resolver:
    return lambda params, region, account: [str(params.get(name))] if params.get(name) else ["*"]


def _function(params: _Params, region: str, account: str) -> list[str]:
    name = unquote(str(params.get("FunctionName") or params.get("function_name") or "*"))
    if name.startswith("arn:"):
        return [name]
    return [f"arn:{PARTITION}:lambda:{region}:{account}:function:{name}"]


def _queue(params: _Params, region: str, account: str) -> list[str]:
    url = str(params.get("QueueUrl") or "")
    return [f"arn:{PARTITION}:sqs:{region}:{account}:{url.rstrip('/').rsplit('/', 1)[-1]}"] if url else ["*"]


def _alarms(params: _Params, region: str, account: str) -> list[str]:
    names = params.many("AlarmNames")
    return [f"arn:{PARTITION}:cloudwatch:{region}:{account}:alarm:{name}" for name in names] or ["*"]


def _role(params: _Params, region: str, account: str) -> list[str]:
    return [str(params.get("RoleArn") or "*")]


def _training_job(params: _Params, region: str, account: str) -> list[str]:
    name = params.get("TrainingJobName")
    return [f"arn:{PARTITION}:sagemaker:{region}:{account}:training-job/{str(name).lower()}"] if name else ["*"]


def _delivery_stream(params: _Params, region: str, account: str) -> list[str]:
    name = params.get("DeliveryStreamName")
    return [f"arn:{PARTITION}:firehose:{region}:{account}:deliverystream/{name}"] if name else ["*"]


_RESOURCES: dict[str, Resolver] = {
    **{f"states:{a}": _param("stateMachineArn") for a in (
        "StartExecution", "StartSyncExecution", "ListExecutions", "DescribeStateMachine", "UpdateStateMachine",
        "DeleteStateMachine")},
    **{f"states:{a}": _param("executionArn") for a in (
        "DescribeExecution", "StopExecution", "GetExecutionHistory", "ListMapRuns", "RedriveExecution")},
    "states:DescribeMapRun": _param("mapRunArn"),
    **{f"lambda:{a}": _function for a in (
        "InvokeFunction", "GetFunction", "GetFunctionConfiguration", "UpdateFunctionCode",
        "UpdateFunctionConfiguration", "DeleteFunction", "GetPolicy", "AddPermission", "RemovePermission",
        "PutFunctionEventInvokeConfig", "GetFunctionEventInvokeConfig", "PutFunctionConcurrency")},
    **{f"sns:{a}": _param("TopicArn") for a in (
        "Publish", "Subscribe", "GetTopicAttributes", "SetTopicAttributes", "ListSubscriptionsByTopic")},
    **{f"sqs:{a}": _queue for a in (
        "SendMessage", "ReceiveMessage", "DeleteMessage", "GetQueueAttributes", "PurgeQueue",
        "ChangeMessageVisibility")},
    **{f"firehose:{a}": _delivery_stream for a in (
        "PutRecord", "PutRecordBatch", "DescribeDeliveryStream", "UpdateDestination", "DeleteDeliveryStream")},
    "cloudwatch:DescribeAlarms": _alarms,
    **{f"sagemaker:{a}": _training_job for a in ("CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob")},
    "sts:AssumeRole": _role,
}
