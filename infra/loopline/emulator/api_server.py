"""The local API Gateway (REST API, Lambda proxy integration) for the stack's `Type: Api` function events.

Serves `/<stage>/<path>` like an execute-api endpoint: an HTTP request becomes a v1 proxy event, the function
is invoked through moto's Lambda endpoint (so it runs in the emulator's workers) and the proxy result becomes
the HTTP response. API keys are checked as API Gateway does, against moto's (enabled) API keys; a route with
`Auth: Authorizer: AWS_IAM` is authorized as API Gateway does (api_iam_authorization.py) and its caller fills
`requestContext.identity`.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import botocore.config
from moto.core import DEFAULT_ACCOUNT_ID

from loopline.emulator.api_iam_authorization import (
    ApiAuthorizationFailed,
    ApiCaller,
    SignedRequest,
    authorize_iam_request,
    invoke_arn,
)
from loopline.emulator.api_metrics import ApiMetrics
from loopline.emulator.background import ticking
from loopline.emulator.iam_enforcement import service_may_invoke
from loopline.emulator.local_access import is_local_host

STAGE = "Prod"


@dataclass(frozen=True)
class ApiRoute:
    """One method + resource path, integrated with one function."""

    method: str  # upper-case, or ANY
    resource_path: str  # e.g. /predict, /items/{id}, /{proxy+}
    function_name: str
    api_key_required: bool = False
    iam_authorized: bool = False  # `Authorizer: AWS_IAM`: SigV4-signed callers allowed execute-api:Invoke

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when this route serves `method path`, else None."""
        if self.method not in ("ANY", method):
            return None
        pattern = "^" + re.sub(r"\\\{(\w+)(\\\+)?\\\}", _parameter_pattern, re.escape(self.resource_path)) + "/?$"
        found = re.match(pattern, path)
        return None if found is None else {k: unquote(v) for k, v in found.groupdict().items()}


def _parameter_pattern(match: re.Match[str]) -> str:
    return f"(?P<{match.group(1)}>.+)" if match.group(2) else f"(?P<{match.group(1)}>[^/]+)"


def routes_from_sam_template(sam_template: dict[str, Any], function_names: dict[str, str]) -> list[ApiRoute]:
    """Routes of every function's `Type: Api` events (function_names: logical id -> deployed name)."""
    resources = sam_template.get("Resources", {})
    routes = []
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") != "Api":
                continue
            properties = event["Properties"]
            api_id = (
                (properties.get("RestApiId") or {}).get("Ref")
                if isinstance(properties.get("RestApiId"), dict)
                else None
            )
            api_auth = (resources.get(api_id, {}).get("Properties", {}).get("Auth") or {}) if api_id else {}
            event_auth = properties.get("Auth") or {}
            required = bool(event_auth.get("ApiKeyRequired", api_auth.get("ApiKeyRequired", False)))
            authorizer = event_auth.get("Authorizer", api_auth.get("DefaultAuthorizer"))
            method = properties["Method"].upper()
            routes.append(ApiRoute("ANY" if method == "ANY" else method, properties["Path"],
                                   function_names[logical_id], required, iam_authorized=authorizer == "AWS_IAM"))
    return routes


class LocalApi:
    """Routes + the AWS clients the gateway uses (Lambda invoke, API key lookup)."""

    def __init__(self, routes: list[ApiRoute], session: Any, aws_endpoint_url: str, rest_api_id: str) -> None:
        self.routes = routes
        self.rest_api_id = rest_api_id
        self.region = str(session.region_name)
        # an integration may run as long as the function's timeout; no retries, like API Gateway
        config = botocore.config.Config(read_timeout=960, retries={"total_max_attempts": 1})
        self.lambda_client = session.client("lambda", endpoint_url=aws_endpoint_url, config=config)
        self.apigateway = session.client("apigateway", endpoint_url=aws_endpoint_url)
        self.metrics = ApiMetrics(DEFAULT_ACCOUNT_ID, self.region, STAGE, self._api_name)

    def _api_name(self) -> str:
        """The REST API's name (the ApiName dimension of its metrics: the stack's name for the SAM API)."""
        try:
            return str(self.apigateway.get_rest_api(restApiId=self.rest_api_id)["name"])
        except Exception:  # an API the emulator did not create (tests): its id stands for its name
            return self.rest_api_id

    def api_key_is_valid(self, value: str | None) -> tuple[bool, str | None]:
        """Whether `value` is an enabled API key's value (and that key's id)."""
        if not value:
            return False, None
        for key in self.apigateway.get_api_keys(includeValues=True, limit=500).get("items", []):
            if key.get("enabled") and key.get("value") == value:
                return True, key["id"]
        return False, None

    def _may_invoke(self, route: ApiRoute, method: str) -> bool:
        """API Gateway invokes a function only with its resource policy's leave (the Lambda permission SAM adds
        for each Api event, SourceArn `arn:aws:execute-api:<region>:<account>:<api>/<stage>/<METHOD>/<path>`)."""
        from moto.awslambda.utils import get_backend

        try:
            function = self.lambda_client.get_function(FunctionName=route.function_name)["Configuration"]
        except Exception:
            return True  # a missing function fails the invocation itself, as a broken integration
        _, _, _, region, account, _ = function["FunctionArn"].split(":", 5)
        moto_function = get_backend(account, region).get_function(route.function_name)
        source = f"arn:aws:execute-api:{region}:{account}:{self.rest_api_id}/{STAGE}/{method}{route.resource_path}"
        return service_may_invoke(moto_function, "apigateway.amazonaws.com", source, account)

    def handle(
        self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes, source_ip: str, host: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """One HTTP request -> (status, headers, body)."""
        url = urlsplit(raw_path)
        prefix = f"/{STAGE}"
        path = url.path[len(prefix) :] if url.path.startswith(prefix + "/") or url.path == prefix else None
        matched = [
            (route, params)
            for route in self.routes
            if path is not None
            for params in [route.match(method, path or "/")]
            if params is not None
        ]
        if not matched:
            return _json(403, {"message": "Missing Authentication Token"})
        route, path_parameters = matched[0]
        caller = None
        if route.iam_authorized:  # API Gateway authorizes before it looks at the API key
            signed = SignedRequest(method, f"http://{host}{raw_path}", headers, body)
            resource = invoke_arn(self.region, DEFAULT_ACCOUNT_ID, self.rest_api_id, STAGE, method, path or "/")
            try:
                caller = authorize_iam_request(signed, region=self.region, account_id=DEFAULT_ACCOUNT_ID,
                                               resource_arn=resource)
            except ApiAuthorizationFailed as refused:
                return _json(403, refused.body)
        header_map = {name.lower(): value for name, value in headers}
        key_ok, key_id = self.api_key_is_valid(header_map.get("x-api-key"))
        if route.api_key_required and not key_ok:
            return _json(403, {"message": "Forbidden"})
        event = proxy_event(
            route,
            method,
            path or "/",
            url.query,
            headers,
            body,
            path_parameters,
            source_ip,
            host,
            header_map.get("x-api-key") if key_ok else None,
            key_id,
            self.rest_api_id,
            caller,
        )
        if not self._may_invoke(route, method):
            # API Gateway: "Execution failed due to configuration error: Invalid permissions on Lambda function"
            print(f"loopline api: no Lambda permission lets API Gateway invoke {route.function_name} for "
                  f"{method} {route.resource_path}", file=sys.stderr)
            return _json(500, {"message": "Internal server error"})
        try:
            invoked = time.perf_counter()
            response = self.lambda_client.invoke(FunctionName=route.function_name, Payload=json.dumps(event))
            result = json.loads(response["Payload"].read() or b"null")
            self.metrics.integration((time.perf_counter() - invoked) * 1000)
            if response.get("FunctionError"):
                print(f"loopline api: {route.function_name} failed: {result}", file=sys.stderr)
                return _json(502, {"message": "Internal server error"})
            return http_response(result)
        except Exception as exc:  # a broken integration is a 502, never a dead server
            print(f"loopline api: {route.function_name}: {exc!r}", file=sys.stderr)
            return _json(502, {"message": "Internal server error"})


def proxy_event(
    route: ApiRoute,
    method: str,
    path: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    path_parameters: dict[str, str],
    source_ip: str,
    host: str,
    api_key: str | None,
    api_key_id: str | None,
    rest_api_id: str,
    caller: ApiCaller | None = None,
) -> dict[str, Any]:
    """The API Gateway REST (v1) Lambda proxy event for one request."""
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    multi_query = parse_qs(query, keep_blank_values=True)
    text_body, is_base64 = _event_body(body)
    now = time.time()
    request_id = str(uuid.uuid4())
    return {
        "resource": route.resource_path,
        "path": path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": uuid.uuid5(uuid.NAMESPACE_URL, route.resource_path).hex[:6],
            "resourcePath": route.resource_path,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "path": f"/{STAGE}{path}",
            "accountId": DEFAULT_ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "domainPrefix": host.split(".")[0],
            "requestTimeEpoch": int(now * 1000),
            "requestId": request_id,
            "identity": {
                "sourceIp": source_ip,
                "userAgent": _header(headers, "user-agent"),
                "apiKey": api_key,
                "apiKeyId": api_key_id,
                "caller": None,
                "user": None,
                "userArn": None,
                "accountId": None,
                "accessKey": None,
                **(caller.identity() if caller else {}),
            },
            "domainName": host,
            "apiId": rest_api_id,
        },
        "body": text_body,
        "isBase64Encoded": is_base64,
    }


def _event_body(body: bytes) -> tuple[str | None, bool]:
    if not body:
        return None, False
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name), None)


def http_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A Lambda proxy result -> HTTP; anything malformed is API Gateway's 502."""
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        print(f"loopline api: malformed Lambda proxy response: {str(result)[:200]}", file=sys.stderr)
        return _json(502, {"message": "Internal server error"})
    headers = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(v)) for v in values)
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode("utf-8")
    return result["statusCode"], headers, data


def _json(status: int, payload: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("Content-Type", "application/json")], json.dumps(payload).encode("utf-8")


# API Gateway refuses request bodies over 10 MB with 413 before any function runs.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024


class _ApiHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog (5) resets connections when a few dozen clients connect at once
    request_queue_size = 256
    metrics: ApiMetrics

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve, publishing the requests' metrics every second (as API Gateway does per minute) until shutdown."""
        with ticking("API metrics", 1.0, self.metrics.flush):
            super().serve_forever(poll_interval)


def make_api_server(api: LocalApi, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server (call serve_forever on a thread) that answers every method through `api`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            self._received = time.perf_counter()
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_PAYLOAD_BYTES:
                self._discard_body(length)
                self._answer(413, [("Content-Type", "application/json")],
                             b'{"message": "Request Too Long"}', close=True)
                return
            if not is_local_host(self.headers.get("Host")):  # a DNS-rebinding page names its own host
                self._discard_body(length)
                self._answer(403, [("Content-Type", "application/json")],
                             b'{"message": "the local API answers only Host 127.0.0.1 or localhost"}', close=True)
                return
            body = self.rfile.read(length) if length else b""
            status, headers, data = api.handle(
                self.command,
                self.path,
                list(self.headers.items()),
                body,
                self.client_address[0],
                self.headers.get("Host") or host,
            )
            self._answer(status, headers, data)

        def _discard_body(self, length: int) -> None:
            """Read (and drop) what the client is still sending, in bounded chunks, so it can read the answer
            instead of failing on a closed socket; a body far over the limit is cut off."""
            remaining = min(length, 8 * MAX_PAYLOAD_BYTES)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                remaining -= len(chunk)

        def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes, *, close: bool = False) -> None:
            self.send_response(status)
            names = {name.lower() for name, _ in headers}
            for name, value in headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            if "content-type" not in names:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if close:  # the unread body would otherwise be taken for the next request
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            api.metrics.record(status, (time.perf_counter() - self._received) * 1000)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            print(f"loopline api: {self.address_string()} {format % args}", file=sys.stderr)

    server = _ApiHttpServer((host, port), Handler)
    server.metrics = api.metrics
    return server
