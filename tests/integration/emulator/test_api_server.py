"""moto gap: SAM's API Gateway REST API cannot be created in moto; the emulator serves it (proxy integration) and
publishes API Gateway's metrics for it."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
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
            "userArn": event["requestContext"]["identity"]["userArn"],
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
        ApiRoute("POST", "/rollback", function_name, iam_authorized=True),
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
        "body": '{"records": []}', "stage": "Prod", "apiKey": api["key"], "userArn": None,
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


# ---------------------------------------------------------------- AWS_IAM routes (api_iam_authorization.py)
INVOKE_ROLLBACK = {"Effect": "Allow", "Action": "execute-api:Invoke",
                   "Resource": "arn:aws:execute-api:us-east-1:123456789012:api123/Prod/POST/rollback"}


def signed(url: str, credentials: Any, body: bytes = b"{}", *, region: str = "us-east-1",
           service: str = "execute-api") -> tuple[int, dict[str, str], Any]:
    """POST `body` signed with SigV4 by `credentials`, as `loopline rollback` does."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    aws_request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials, service, region).add_auth(aws_request)
    return request(url, "POST", body, dict(aws_request.headers.items()))


@pytest.fixture
def person(aws: Callable[[str], Any]) -> Callable[[list[dict[str, Any]]], Any]:
    """Temporary credentials of a role assumed by the account, allowed `statements`."""
    from tests.support.roles import person_credentials

    return lambda statements: person_credentials(aws("iam"), aws("sts"), f"person-{uuid.uuid4().hex[:8]}",
                                                 statements)


def test_an_iam_route_refuses_an_unsigned_request_before_any_function_runs(api):
    # when
    status, _, body = request(f"{api['url']}/rollback", "POST", b"{}")

    # then
    assert (status, body) == (403, {"message": "Missing Authentication Token"})


def test_an_iam_route_passes_the_signed_callers_identity_to_the_function(api, person):
    # given a person allowed to invoke the route
    credentials = person([INVOKE_ROLLBACK])

    # when they call it with a signed request whose body claims another identity
    status, _, body = signed(f"{api['url']}/rollback", credentials, b'{"requested_by": "alice"}')

    # then the function sees the signed caller in the request context (the body is passed on as it came)
    assert status == 201
    assert body["userArn"].startswith("arn:aws:sts::123456789012:assumed-role/person-")
    assert body["body"] == '{"requested_by": "alice"}'


def test_the_administrator_key_may_invoke_an_iam_route(api):
    from botocore.credentials import Credentials

    # when the account's own client signs
    status, _, body = signed(f"{api['url']}/rollback", Credentials("testing", "testing"))

    # then
    assert status == 201
    assert body["userArn"] == "arn:aws:iam::123456789012:root"


def test_an_iam_route_refuses_a_caller_whose_policy_lacks_execute_api_invoke(api, person):
    # given a person allowed only another route
    credentials = person([{**INVOKE_ROLLBACK, "Resource": INVOKE_ROLLBACK["Resource"].replace("rollback", "other")}])

    # when
    status, _, body = signed(f"{api['url']}/rollback", credentials)

    # then
    assert status == 403
    assert "is not authorized to perform: execute-api:Invoke on resource: " in body["Message"]
    assert body["Message"].endswith("api123/Prod/POST/rollback")


def test_an_iam_route_refuses_a_wrong_secret_a_changed_body_an_unknown_key_and_another_scope(api, person):
    from botocore.credentials import Credentials

    # given a person allowed to invoke the route
    credentials = person([INVOKE_ROLLBACK])
    url = f"{api['url']}/rollback"
    wrong_secret = Credentials(credentials.access_key, "not-the-secret", credentials.token)
    # a request whose body was changed after it was signed
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    original = AWSRequest(method="POST", url=url, data=b'{"note": "a"}', headers={"Content-Type": "application/json"})
    SigV4Auth(credentials, "execute-api", "us-east-1").add_auth(original)

    # when
    answers = {
        "wrong secret": signed(url, wrong_secret),
        "changed body": request(url, "POST", b'{"note": "b"}', dict(original.headers.items())),
        "unknown key": signed(url, Credentials("AKIAUNKNOWN", "secret")),
        "other service": signed(url, credentials, service="s3"),
        "other region": signed(url, credentials, region="eu-west-1"),
    }

    # then each is refused with API Gateway's message, and none reaches the function
    messages = {name: (status, body.get("message")) for name, (status, _, body) in answers.items()}
    mismatch = messages["wrong secret"][1]
    assert mismatch is not None and mismatch.startswith("The request signature we calculated does not match")
    assert messages == {
        "wrong secret": (403, mismatch),
        "changed body": (403, mismatch),
        "unknown key": (403, "The security token included in the request is invalid."),
        "other service": (403, "Credential should be scoped to correct service: 'execute-api'. "),
        "other region": (403, "Credential should be scoped to a valid region, not 'eu-west-1'. "),
    }


def test_an_iam_route_refuses_a_signature_older_than_15_minutes(api, person, monkeypatch):
    import datetime

    import botocore.auth

    # given a request signed 16 minutes ago
    credentials = person([INVOKE_ROLLBACK])
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=16)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: past.replace(tzinfo=None))

    # when
    status, _, body = signed(f"{api['url']}/rollback", credentials)

    # then
    assert status == 403 and body["message"].startswith("Signature expired: ")


def test_with_the_api_iam_check_switched_off_an_unsigned_request_reaches_the_function(api, monkeypatch):
    # given the enforcement switched off (debugging only)
    monkeypatch.setenv("LOOPLINE_UNENFORCED", "api-iam")

    # when
    status, _, body = request(f"{api['url']}/rollback", "POST", b"{}")

    # then it passes, with no identity: the refusals above are the check's doing
    assert status == 201 and body["userArn"] is None


def test_each_request_is_published_as_api_gateways_metrics_and_an_alarm_on_them_fires(
        emulator, aws, aws_session, unused_port, create_function):
    # given a served API (its own name) and an alarm on its 5xx rate, as the canary's error-rate alarm
    function_name = create_function(HANDLER)
    api_id = f"api{uuid.uuid4().hex[:6]}"
    aws("lambda").add_permission(FunctionName=function_name, StatementId="api", Action="lambda:InvokeFunction",
                                 Principal="apigateway.amazonaws.com",
                                 SourceArn=f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/*/*/*")
    routes = [ApiRoute("GET", "/items/{id}", function_name), ApiRoute("GET", "/boom", function_name),
              ApiRoute("POST", "/predict", function_name, api_key_required=True)]
    server = make_api_server(LocalApi(routes, aws_session, emulator["endpoint"], api_id), "127.0.0.1", unused_port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dimensions = [{"Name": "ApiName", "Value": api_id}, {"Name": "Stage", "Value": "Prod"}]
    alarm = f"{api_id}-errors"
    aws("cloudwatch").put_metric_alarm(
        AlarmName=alarm, Namespace="AWS/ApiGateway", MetricName="5XXError", Dimensions=dimensions,
        Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=0.1, ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching")
    url = f"http://127.0.0.1:{unused_port}/Prod"

    try:
        # when one request succeeds, one fails in its function (502) and one lacks its API key (403)
        statuses = [request(f"{url}/items/1")[0], request(f"{url}/boom")[0], request(f"{url}/predict", "POST")[0]]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = aws("cloudwatch").describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"]
            if state == "ALARM":
                break
            time.sleep(0.5)
    finally:
        server.shutdown()

    # then CloudWatch holds them as API Gateway publishes them, and the 5xx rate (1 of 3) put the alarm in ALARM
    def stat(metric: str, statistic: str) -> float:
        points = aws("cloudwatch").get_metric_statistics(
            Namespace="AWS/ApiGateway", MetricName=metric, Dimensions=dimensions, Period=60,
            StartTime=datetime.now(UTC) - timedelta(minutes=5), EndTime=datetime.now(UTC) + timedelta(minutes=1),
            Statistics=[statistic])["Datapoints"]
        return sum(p[statistic] for p in points)

    assert statuses == [201, 502, 403]
    assert (stat("Count", "Sum"), stat("5XXError", "Sum"), stat("4XXError", "Sum")) == (3, 1, 1)
    assert stat("Latency", "SampleCount") == 3 and stat("IntegrationLatency", "SampleCount") == 2
    assert state == "ALARM"
