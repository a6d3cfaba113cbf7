"""Gap: moto authorises requests only when told to (`INITIAL_NO_AUTH_ACTION_COUNT`), and then only against
identity policies, with hardly any conditions, no bucket policy, S3 action names from method + query alone, and
"*" as the resource of every non-S3 action (a grant scoped to an ARN never matches).

Replace moto's check (`ActionAuthenticatorMixin._authenticate_and_authorize_action`, the one path of every HTTP
request to every moto backend) by AWS's: the caller is identified by its access key (the account's
administrator key, or temporary credentials from STS AssumeRole with their session token), the IAM action and
resource ARN are derived from the request as AWS derives them (`access_requests.py`), and the request is
evaluated (`iam_policy.py`) against the role's identity policies and, for S3, the bucket policy, Deny
statements included. moto's own partial bucket-policy check is switched off: this one replaces it.

What is allowed by roles is appended to the file named by LOOPLINE_IAM_AUDIT_LOG (one JSON line per grant
used), so a test can compare what the suite exercised with what template.yaml grants.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from unittest import mock

from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import InvalidClientTokenIdError, JsonRESTError, _RESTError
from moto.iam.access_control import PermissionResult
from moto.iam.models import iam_backends
from moto.s3.exceptions import S3AccessDeniedError, S3ClientError
from moto.s3.models import FakeBucket, s3_backends
from moto.sts.models import sts_backends

from loopline.emulator.access_requests import AccessRequest, access_requests
from loopline.emulator.enforcement_switches import enforced
from loopline.emulator.iam_policy import Decision, Request, evaluate
from loopline.emulator.local_access import DUMMY_SECRET
from loopline.emulator.patch_sets import all_of
from loopline.emulator.topic_policies import topic_policy

AUDIT_LOG_VARIABLE = "LOOPLINE_IAM_AUDIT_LOG"
# the account's administrator: the emulator's key, and the one moto's in-process mock sets for tests (key -> secret)
ADMINISTRATOR_KEYS = MappingProxyType({DUMMY_SECRET: DUMMY_SECRET, "FOOBARKEY": "FOOBARSECRET"})
PARTITION = "aws"
# IAM's name for the services whose signing name differs
_IAM_PREFIX = {"monitoring": "cloudwatch", "execute-api": "apigateway"}


@dataclass(frozen=True)
class Caller:
    """Who signed a request: the account's administrator, or a role through its temporary credentials."""

    account_id: str
    role_arn: str | None  # None: the administrator (the account owner's own client)
    session_arn: str
    # what a service that verifies signatures (API Gateway's AWS_IAM routes) recomputes the signature with
    secret_access_key: str = field(default="", repr=False, compare=False)

    @property
    def principal_arn(self) -> str:
        return self.role_arn or f"arn:{PARTITION}:iam::{self.account_id}:root"


class AccessDenied(JsonRESTError):
    """AWS's AccessDeniedException for JSON protocols (Step Functions, Lambda, SQS, Logs, EventBridge...)."""

    code = 403

    def __init__(self, message: str) -> None:
        super().__init__("AccessDeniedException", message)


class QueryAccessDenied(_RESTError):
    """AccessDenied for query/XML protocols (STS, IAM, CloudFormation); SNS names it AuthorizationError."""

    code = 403

    def __init__(self, message: str, error_code: str = "AccessDenied") -> None:
        super().__init__(error_code, message)


class S3AccessDenied(S3AccessDeniedError):
    """S3's AccessDenied, with the message saying which action on which key (AWS says only "Access Denied")."""

    def __init__(self, message: str) -> None:
        S3ClientError.__init__(self, "AccessDenied", message)


_QUERY_PROTOCOL_SERVICES = {"sns", "sts", "iam", "cloudformation", "ec2", "elasticloadbalancing", "rds"}


def caller_of(headers: Any, query: dict[str, Any], account_id: str, credential: list[str]) -> Caller | None:
    """The caller named by a request's SigV4 `credential` (see _credential); None if unknown."""
    access_key_id = credential[0]
    token = _header(headers, "X-Amz-Security-Token") or (query.get("X-Amz-Security-Token") or [None])[0]
    if access_key_id in ADMINISTRATOR_KEYS:
        return Caller(account_id, None, f"arn:{PARTITION}:iam::{account_id}:root", ADMINISTRATOR_KEYS[access_key_id])
    for assumed in sts_backends[account_id][PARTITION].assumed_roles:
        if assumed.access_key_id == access_key_id and assumed.session_token == token:
            session = f"arn:{PARTITION}:sts::{account_id}:assumed-role/{assumed.role_arn.split('/')[-1]}/" \
                      f"{assumed.session_name}"
            return Caller(account_id, assumed.role_arn, session, assumed.secret_access_key)
    return None


def role_policies(account_id: str, role_arn: str) -> list[dict[str, Any]]:
    """A role's identity policies as moto holds them (inline, then attached managed ones)."""
    backend = iam_backends[account_id][PARTITION]
    try:
        role = backend.get_role_by_arn(role_arn)
    except Exception:  # a deleted role: its old credentials authorise nothing
        return []
    documents: list[Any] = [role.policies[name] for name in role.policies]
    for policy in role.managed_policies.values():
        documents.append(next(v.document for v in policy.versions if v.is_default))
    return [_parsed(d) if isinstance(d, str) else d for d in documents]


def bucket_policy(account_id: str, bucket_name: str) -> list[dict[str, Any]]:
    try:
        bucket = s3_backends[account_id][PARTITION].get_bucket(bucket_name)
    except Exception:
        return []
    policy = bucket.policy.decode() if isinstance(bucket.policy, bytes) else bucket.policy
    return [_parsed(policy)] if policy else []


@functools.lru_cache(maxsize=256)
def _parsed(document: str) -> dict[str, Any]:
    """A policy document parsed once (every request is authorised against the same few; callers only read it)."""
    return dict(json.loads(document))


def decide(caller: Caller, access: AccessRequest) -> Decision:
    """Evaluate one (action, resource) of a request for `caller`, with the resource's policy where it has one."""
    request = Request(access.action, access.resource, caller.principal_arn, {
        "aws:principalarn": caller.principal_arn,
        "aws:principalaccount": caller.account_id,
        # the emulator serves plain HTTP on loopback; on AWS every SDK call is TLS (DenyInsecureTransport)
        "aws:securetransport": "true",
        **access.context,
    })
    resource_policies = (bucket_policy(caller.account_id, access.bucket) if access.bucket
                         else topic_policy(access.resource) if access.resource.startswith("arn:aws:sns:")
                         else [])
    if caller.role_arn is None:
        # the administrator: allowed by its own policy (AdministratorAccess), denied only by a resource policy
        administrator = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        return evaluate(request, [administrator], resource_policies)
    return evaluate(request, role_policies(caller.account_id, caller.role_arn), resource_policies)


class _AuditLog:
    """Appends each distinct (role, action, resource) that a role was allowed to a JSON-lines file."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def record(self, caller: Caller, access: AccessRequest) -> None:
        path = os.environ.get(AUDIT_LOG_VARIABLE)
        if not path or caller.role_arn is None:
            return
        entry = (caller.role_arn, access.action, access.resource)
        with self._lock:
            if entry in self._seen:
                return
            self._seen.add(entry)
            with Path(path).open("a", encoding="utf-8") as log:
                log.write(json.dumps({"role": entry[0], "action": entry[1], "resource": entry[2]}) + "\n")


_SERVICE_AUDIT = _AuditLog()


def enforce_iam() -> AbstractContextManager[object]:
    """Authorise every request to moto as AWS would (see the module docstring)."""
    audit = _AuditLog()

    def _authenticate_and_authorize_action(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        if not enforced("iam"):
            return
        query = getattr(self, "querystring", {}) or {}
        account_id = self.current_account
        credential = _credential(self.headers, query)
        caller = caller_of(self.headers, query, account_id, credential)
        is_s3 = iam_request_cls.__name__.startswith("S3")
        if caller is None:
            if is_s3:
                raise S3AccessDenied("The AWS Access Key Id you provided does not exist in our records.")
            raise InvalidClientTokenIdError()
        service = _service(credential)
        for access in access_requests(self, _IAM_PREFIX.get(service, service), resource, account_id):
            if access.action == "sts:GetCallerIdentity":
                continue  # always allowed, as on AWS
            decision = decide(caller, access)
            if decision is not Decision.ALLOW:
                because = ("an explicit deny in a resource-based policy" if decision is Decision.EXPLICIT_DENY
                           else "no identity-based policy allows the " + access.action + " action")
                message = (f"User: {caller.session_arn} is not authorized to perform: {access.action} on "
                           f"resource: {access.resource} because {because}")
                if is_s3:
                    raise S3AccessDenied(message)
                if service in _QUERY_PROTOCOL_SERVICES:
                    raise QueryAccessDenied(message, "AuthorizationError" if service == "sns" else "AccessDenied")
                raise AccessDenied(message)
            audit.record(caller, access)
            if is_s3 and _reads_a_missing_object(access, account_id):
                # S3 says "no such key" only to a caller that may list the bucket; to others: 403
                # (a read is not a listing: no s3:prefix, so a prefix-conditioned ListBucket grant does not count)
                listing = AccessRequest("s3:ListBucket", f"arn:{PARTITION}:s3:::{access.bucket}", {}, access.bucket)
                if decide(caller, listing) is not Decision.ALLOW:
                    raise S3AccessDenied(
                        f"User: {caller.session_arn} is not authorized to perform: s3:ListBucket on resource: "
                        f"{listing.resource}, so S3 answers a read of the missing {access.resource} with 403")
                audit.record(caller, listing)

    # moto's own check of a bucket policy (object requests only, conditions unevaluated) gives way to the above
    def get_permission(self: FakeBucket, action: str, resource: str) -> PermissionResult:
        return PermissionResult.NEUTRAL

    return all_of(
        mock.patch.object(ActionAuthenticatorMixin, "_authenticate_and_authorize_action",
                          _authenticate_and_authorize_action),
        mock.patch.object(FakeBucket, "get_permission", get_permission),
    )


def _header(headers: Any, name: str) -> str:
    """A header, whatever the case of its name (werkzeug's headers ignore it; the in-process mock's do not)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in dict(headers).items() if str(k).lower() == lowered), None)
    return "" if value is None else (value.decode() if isinstance(value, bytes) else str(value))


def _credential(headers: Any, query: dict[str, Any]) -> list[str]:
    """The SigV4 credential scope (header or presigned query): [access key, date, region, service, ...]."""
    credential = _between(_header(headers, "Authorization"), "Credential=", ",")
    if not credential:
        credential = str((query.get("X-Amz-Credential") or [""])[0])
    return credential.split("/")


def _service(credential: list[str]) -> str:
    return credential[3] if len(credential) > 3 else "s3"


def _between(text: str, first: str, second: str) -> str:
    return text.partition(first)[2].partition(second)[0]


def _reads_a_missing_object(access: AccessRequest, account_id: str) -> bool:
    if access.action not in ("s3:GetObject", "s3:GetObjectVersion") or not access.bucket:
        return False
    key = access.resource.split(":::", 1)[-1].partition("/")[2]
    try:
        bucket = s3_backends[account_id][PARTITION].get_bucket(access.bucket)
    except Exception:
        return False
    return key not in bucket.keys


def service_may_invoke(function: Any, service: str, source_arn: str, source_account: str) -> bool:
    """Whether `function`'s resource policy (its Lambda permissions) lets `service` invoke it from `source_arn`."""
    if not enforced("iam"):
        return True
    statements = list(function.policy.statements)
    request = Request("lambda:InvokeFunction", function.function_arn, service,
                      {"aws:sourcearn": source_arn, "aws:sourceaccount": source_account})
    return evaluate(request, [], [{"Statement": statements}]) is Decision.ALLOW


def role_may(role_arn: str, action: str, resource: str) -> bool:
    """Whether `role_arn` (a target's role, a function's role for its destination) may do `action` on
    `resource`: what an AWS service checks before acting with that role."""
    if not enforced("iam"):
        return True
    parts = role_arn.split(":")
    if len(parts) < 6:
        return False
    caller = Caller(parts[4], role_arn, role_arn)
    access = AccessRequest(action, resource)
    allowed = decide(caller, access) is Decision.ALLOW
    if allowed:
        _SERVICE_AUDIT.record(caller, access)
    return allowed
