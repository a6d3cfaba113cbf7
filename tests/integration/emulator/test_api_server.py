"""moto gap: SAM's API Gateway REST API cannot be created in moto; the emulator serves it (proxy integration)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from loopline.emulator.api_server import MAX_PAYLOAD_BYTES, ApiRoute, LocalApi, make_api_server

HANDLER = """
import json
def lambda_handler(event, context):
    if event["path"] == "/boom":
        raise ValueError("boom")
    if event["path"] == "/garbage":
        return "not a proxy result"
    return {
        "statusCode": 201,
        "headers": {"X-Model-Version": "m1"},
        "body": json.dumps({
            "path": event["path"],
            "resource": event["resource"],
            "method": event["httpMethod"],
            "query": event["queryStringParameters"],
            "pathParameters": event["pathParameters"],
            "body": event["body"],
            "stage": event["requestContext"]["stage"],
            "apiKey": event["requestContext"]["identity"]["apiKey"],
        }),
    }
"""


@pytest.fixture
def api(
    emulator: dict[str, Any],
    aws: Callable[[str], Any],
    aws_session: Any,
    unused_port: int,
    create_function: Callable[..., str],
) -> Iterator[dict[str, str]]:
    """A served API with an API key: {"url", "key"}."""
    function_name = create_function(HANDLER)
    key = f"key-{uuid.uuid4().hex}"
    aws("apigateway").create_api_key(name=key, value=key, enabled=True)
    routes = [
        ApiRoute("POST", "/predict", function_name, api_key_required=True),
        ApiRoute("GET", "/items/{id}", function_name),
        ApiRoute("GET", "/boom", function_name),
        ApiRoute("GET", "/garbage", function_name),
    ]
    # API Gateway invokes only with the function's leave (SAM adds one permission per Api event)
    aws("lambda").add_permission(FunctionName=function_name, StatementId="api", Action="lambda:InvokeFunction",
                                 Principal="apigateway.amazonaws.com",
                                 SourceArn="arn:aws:execute-api:us-east-1:123456789012:api123/*/*/*")
    port = unused_port
    server = make_api_server(LocalApi(routes, aws_session, emulator["endpoint"], "api123"), "127.0.0.1", port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"url": f"http://127.0.0.1:{port}/Prod", "key": key}
    server.shutdown()


def request(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers or {}, method=method)) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_a_request_becomes_a_proxy_event_and_the_proxy_result_the_response(api):
    # when
    status, headers, body = request(
        f"{api['url']}/predict?limit=2", "POST", b'{"records": []}', {"x-api-key": api["key"]}
    )

    # then
    assert status == 201
    assert headers["X-Model-Version"] == "m1"
    assert body == {
        "path": "/predict", "resource": "/predict", "method": "POST", "query": {"limit": "2"}, "pathParameters": None,
        "body": '{"records": []}', "stage": "Prod", "apiKey": api["key"],
    }  # fmt: skip


def test_path_parameters_are_extracted(api):
    # when
    status, _, body = request(f"{api['url']}/items/42")

    # then
    assert status == 201
    assert (body["resource"], body["pathParameters"]) == ("/items/{id}", {"id": "42"})


def test_a_route_requiring_an_api_key_refuses_a_missing_or_unknown_key(api):
    # when
    missing = request(f"{api['url']}/predict", "POST", b"{}")
    unknown = request(f"{api['url']}/predict", "POST", b"{}", {"x-api-key": "nope"})

    # then
    assert missing[0] == unknown[0] == 403
    assert missing[2] == unknown[2] == {"message": "Forbidden"}


def test_an_unknown_route_or_stage_is_missing_authentication_token(api):
    # when
    responses = [request(f"{api['url']}/nowhere"), request(api["url"].replace("/Prod", "/Dev") + "/items/1")]

    # then
    assert [r[0] for r in responses] == [403, 403]
    assert all(r[2] == {"message": "Missing Authentication Token"} for r in responses)


def test_a_failing_function_or_malformed_result_is_a_502(api):
    # when
    responses = [request(f"{api['url']}/boom"), request(f"{api['url']}/garbage")]

    # then
    assert [r[0] for r in responses] == [502, 502]
    assert all(r[2] == {"message": "Internal server error"} for r in responses)


def test_a_body_over_api_gateways_10_mb_is_refused_with_413_before_any_function_runs(api):
    # given a body one byte over API Gateway's payload limit
    body = b"x" * (MAX_PAYLOAD_BYTES + 1)

    # when
    status, _, answer = request(f"{api['url']}/predict", "POST", body, {"x-api-key": api["key"]})

    # then
    assert status == 413
    assert answer == {"message": "Request Too Long"}


def test_many_clients_connecting_at_once_are_all_answered(api):
    # given more simultaneous connections than socketserver's default listen backlog (5)
    results: list[int] = []

    def call() -> None:
        results.append(request(f"{api['url']}/items/1")[0])

    threads = [threading.Thread(target=call) for _ in range(48)]

    # when they all connect at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then every one gets its answer (no connection reset)
    assert results == [201] * 48


def test_a_request_naming_a_foreign_host_is_refused_before_any_function_runs(api):
    # when a page whose DNS name was rebound to 127.0.0.1 calls the local API with its own Host
    status, _, body = request(f"{api['url']}/items/42", headers={"Host": "attacker.example:8080"})

    # then it is refused
    assert status == 403 and "Host" in body["message"]
    # and the machine's own names are served
    for host in ("127.0.0.1", "localhost:3000", "[::1]:3000"):
        assert request(f"{api['url']}/items/42", headers={"Host": host})[0] == 201


def test_a_route_whose_function_does_not_let_api_gateway_invoke_it_answers_500(
    emulator: dict[str, Any], aws_session: Any, unused_port: int, create_function: Callable[..., str],
) -> None:
    # given a route to a function without a Lambda permission for API Gateway
    function_name = create_function(HANDLER)
    routes = [ApiRoute("GET", "/items/{id}", function_name)]
    server = make_api_server(LocalApi(routes, aws_session, emulator["endpoint"], "api456"), "127.0.0.1",
                             unused_port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # when it is called
        status, _, body = request(f"http://127.0.0.1:{unused_port}/Prod/items/1")
    finally:
        server.shutdown()

    # then API Gateway's answer for invalid permissions on the function
    assert status == 500
    assert body == {"message": "Internal server error"}
