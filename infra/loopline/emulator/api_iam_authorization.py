"""Gap: moto executes no API Gateway, so nothing checks a route's `AWS_IAM` authorization (api_server.py serves
the routes). This does what API Gateway does before it invokes such a route's integration:

- no `Authorization` header: 403 `Missing Authentication Token`;
- a SigV4 signature that is malformed, scoped to another service or region, older than 15 minutes, made with an
  unknown access key or not matching the request (recomputed with the caller's secret key): 403 with AWS's message;
- a caller whose policies do not allow `execute-api:Invoke` on
  `arn:aws:execute-api:<region>:<account>:<api-id>/<stage>/<METHOD>/<path>`: 403 `... is not authorized ...`;
- else the caller fills the proxy event's `requestContext.identity` (userArn, caller, user, accountId, accessKey),
  which is the only identity a function behind the route may trust.

The caller is looked up as every other request to the emulator is (`iam_enforcement.caller_of`: the account's
administrator keys, and the temporary credentials of assumed roles with their session token).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials
from moto.iam.models import iam_backends

from loopline.emulator.access_requests import AccessRequest
from loopline.emulator.enforcement_switches import enforced
from loopline.emulator.iam_enforcement import PARTITION, Caller, caller_of, decide
from loopline.emulator.iam_policy import Decision

SERVICE = "execute-api"
SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
# API Gateway refuses a signature more than 15 minutes off its clock
MAX_CLOCK_SKEW = timedelta(minutes=15)
SIGNATURE_MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your "
                      "AWS Secret Access Key and signing method. Consult the service documentation for details.")


class ApiAuthorizationFailed(Exception):
    """API Gateway's 403 for an AWS_IAM route, with its JSON body."""

    def __init__(self, body: dict[str, str]) -> None:
        super().__init__(next(iter(body.values())))
        self.body = body


@dataclass(frozen=True)
class ApiCaller:
    """`requestContext.identity` of an IAM-authorized request, as API Gateway fills it."""

    user_arn: str
    caller: str
    user: str
    account_id: str
    access_key: str

    def identity(self) -> dict[str, str]:
        return {"userArn": self.user_arn, "caller": self.caller, "user": self.user, "accountId": self.account_id,
                "accessKey": self.access_key}


@dataclass(frozen=True)
class SignedRequest:
    """An HTTP request as the API server received it (`url`: scheme, Host header and the raw path with query)."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes


def invoke_arn(region: str, account_id: str, api_id: str, stage: str, method: str, path: str) -> str:
    """The resource of `execute-api:Invoke` for one request."""
    return f"arn:{PARTITION}:execute-api:{region}:{account_id}:{api_id}/{stage}/{method}/{path.lstrip('/')}"


def authorize_iam_request(request: SignedRequest, *, region: str, account_id: str, resource_arn: str,
                          now: datetime | None = None) -> ApiCaller | None:
    """The caller of an AWS_IAM route's request (None: the check is switched off and the request is unsigned).

    Raises:
        ApiAuthorizationFailed: unsigned, badly signed, unknown key, or no `execute-api:Invoke` on `resource_arn`.
    """
    headers = {name.lower(): value for name, value in request.headers}
    authorization = headers.get("authorization", "")
    checked = enforced("api-iam")
    if not authorization:
        if checked:
            raise ApiAuthorizationFailed({"message": "Missing Authentication Token"})
        return None
    fields = _authorization_fields(authorization)
    credential = fields.get("Credential", "").split("/")
    if checked:
        _check_form(fields, credential, headers, region, now or datetime.now(UTC))
    caller = caller_of(headers, {}, account_id, credential)
    if caller is None:
        if checked:
            raise ApiAuthorizationFailed({"message": "The security token included in the request is invalid."})
        return None
    if checked:
        if not hmac.compare_digest(_signature(request, fields, credential, caller), fields["Signature"]):
            raise ApiAuthorizationFailed({"message": SIGNATURE_MISMATCH})
        if decide(caller, AccessRequest(f"{SERVICE}:Invoke", resource_arn)) is not Decision.ALLOW:
            raise ApiAuthorizationFailed({"Message": f"User: {caller.session_arn} is not authorized to perform: "
                                                     f"{SERVICE}:Invoke on resource: {resource_arn}"})
    return _api_caller(caller, credential[0])


def _authorization_fields(authorization: str) -> dict[str, str]:
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != "AWS4-HMAC-SHA256":
        return {}
    fields = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    return fields


def _check_form(fields: dict[str, str], credential: list[str], headers: dict[str, str], region: str,
                now: datetime) -> None:
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys() or "x-amz-date" not in headers:
        raise ApiAuthorizationFailed({"message": (
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters (AWS4-HMAC-SHA256) "
            "and an 'X-Amz-Date' header: sign the request with SigV4 for the execute-api service")})
    if len(credential) != 5 or credential[3] != SERVICE or credential[4] != "aws4_request":
        raise ApiAuthorizationFailed({"message": f"Credential should be scoped to correct service: '{SERVICE}'. "})
    if credential[2] != region:
        raise ApiAuthorizationFailed({"message": f"Credential should be scoped to a valid region, not "
                                                 f"'{credential[2]}'. "})
    try:
        signed_at = datetime.strptime(headers["x-amz-date"], SIGV4_TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        raise ApiAuthorizationFailed({"message": SIGNATURE_MISMATCH}) from None
    if abs(now - signed_at) > MAX_CLOCK_SKEW:
        raise ApiAuthorizationFailed({"message": (
            f"Signature expired: {headers['x-amz-date']} is now earlier than "
            f"{(now - MAX_CLOCK_SKEW).strftime(SIGV4_TIMESTAMP)} ({now.strftime(SIGV4_TIMESTAMP)} - 15 min.)")})


class _Verifier(SigV4Auth):
    """botocore's SigV4 over exactly the headers the client signed (botocore would pick them itself)."""

    def __init__(self, credentials: Credentials, region: str, signed_headers: list[str]) -> None:
        super().__init__(credentials, SERVICE, region)
        self._signed = signed_headers

    def headers_to_sign(self, request: AWSRequest) -> Any:
        chosen = HTTPHeaders()  # botocore's own choice leaves out some a client may sign (User-Agent, Expect)
        for name, value in request.headers.items():
            if name.lower() in self._signed:
                chosen[name.lower()] = value
        return chosen


def _signature(request: SignedRequest, fields: dict[str, str], credential: list[str], caller: Caller) -> str:
    signed_headers = fields["SignedHeaders"].lower().split(";")
    headers = [(name, value) for name, value in request.headers if name.lower() in signed_headers]
    recomputed = AWSRequest(method=request.method, url=request.url, headers=dict(headers), data=request.body)
    recomputed.context["timestamp"] = dict((n.lower(), v) for n, v in request.headers)["x-amz-date"]
    if credential[1] != recomputed.context["timestamp"][:8]:
        return ""  # a scope dated another day than the request never matches
    verifier = _Verifier(Credentials(credential[0], caller.secret_access_key), credential[2], signed_headers)
    canonical = verifier.canonical_request(recomputed)
    return str(verifier.signature(verifier.string_to_sign(recomputed, canonical), recomputed))


def _api_caller(caller: Caller, access_key: str) -> ApiCaller:
    if caller.role_arn is None:  # the account's root user
        return ApiCaller(caller.session_arn, caller.account_id, caller.account_id, caller.account_id, access_key)
    try:
        role_id = iam_backends[caller.account_id][PARTITION].get_role_by_arn(caller.role_arn).id
    except Exception:  # a deleted role: its name stands in for its id
        role_id = caller.role_arn.rsplit("/", 1)[-1]
    principal = f"{role_id}:{caller.session_arn.rsplit('/', 1)[-1]}"
    return ApiCaller(caller.session_arn, principal, principal, caller.account_id, access_key)
