"""The prediction API on moto: answers from the champion, rejects bad requests with 400s that say why."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from loopline_runtime.config import PipelineConfig
from loopline_runtime.registry import CHAMPION_KEY, ModelRegistry
from tests.support.stack import Stack


@pytest.fixture
def max_batch_records(stack: Stack) -> int:
    return int(stack.function_environment("predict")["MAX_BATCH_RECORDS"])


@pytest.fixture
def records(fresh_rows: pd.DataFrame, config: PipelineConfig) -> list[dict[str, Any]]:
    """Three rows to predict, as a client sends them (features only)."""
    return fresh_rows.drop(columns=[config.target]).head(3).to_dict(orient="records")


def _call(handler: Any, event: dict[str, Any], context: Any) -> tuple[int, dict[str, Any]]:
    response = handler.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def test_predict_answers_with_the_champion(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    records: list[dict[str, Any]], registry: ModelRegistry, lambda_context: Any,
) -> None:
    # given a champion and a request for three rows
    predict = load_handler("predict")
    classes = registry.manifest(champion)["classes"]

    # when
    status, body = _call(predict, api_request("POST", "/predict", {"records": records}), lambda_context)

    # then every row gets a known class and a probability per class, from the champion's version
    assert status == 200
    assert body["model_version"] == champion
    assert len(body["predictions"]) == 3
    assert set(body["predictions"]) <= set(classes)
    assert body["classes"] == classes
    for row, predicted in zip(body["probabilities"], body["predictions"], strict=True):
        assert set(row) == set(classes)
        assert sum(row.values()) == pytest.approx(1.0, abs=1e-5)
        assert max(row, key=row.get) == predicted


def test_predict_matches_the_registered_pipeline(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    records: list[dict[str, Any]], registry: ModelRegistry, lambda_context: Any,
) -> None:
    # given
    predict = load_handler("predict")
    expected = registry.load(champion).pipeline.predict(pd.DataFrame.from_records(records))

    # when
    _, body = _call(predict, api_request("POST", "/predict", {"records": records}), lambda_context)

    # then the API's answer is the model's answer
    assert body["predictions"] == list(expected)


def test_a_base64_encoded_body_is_decoded(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    records: list[dict[str, Any]], lambda_context: Any,
) -> None:
    # given the body as API Gateway sends it for binary media types (and as `sam local generate-event` makes it)
    predict = load_handler("predict")
    encoded = base64.b64encode(json.dumps({"records": records}).encode()).decode()
    event = api_request("POST", "/predict", raw_body=encoded)
    event["isBase64Encoded"] = True

    # when
    status, body = _call(predict, event, lambda_context)

    # then
    assert status == 200, body
    assert len(body["predictions"]) == 3


@pytest.mark.parametrize(
    ("make_body", "expected"),
    [
        pytest.param(lambda r, n: {"records": [{k: v for k, v in r[0].items() if k != "mean radius"}]},
                     "records[0] is missing field(s) mean radius", id="missing-field"),
        pytest.param(lambda r, n: {"records": [{**r[0], "age": 52}]},
                     "records[0] has unknown field(s) age", id="extra-field"),
        pytest.param(lambda r, n: {"records": [r[0], {**r[1], "mean texture": "rough"}]},
                     "records[1].mean texture must be a number, got 'rough'", id="wrong-type"),
        pytest.param(lambda r, n: {"records": []}, '"records" is empty', id="empty-batch"),
        pytest.param(lambda r, n: {"records": [r[0]] * (n + 1)},
                     "send at most", id="oversized-batch"),
        pytest.param(lambda r, n: {"rows": r}, 'a JSON object with a "records" list', id="no-records-key"),
        pytest.param(lambda r, n: {"records": r[0]}, '"records" must be a list of objects', id="records-not-list"),
    ],
)
def test_bad_requests_get_400_naming_the_problem(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    records: list[dict[str, Any]], max_batch_records: int, lambda_context: Any,
    make_body: Callable[[list[dict[str, Any]], int], Any], expected: str,
) -> None:
    # given
    predict = load_handler("predict")
    event = api_request("POST", "/predict", make_body(records, max_batch_records))

    # when
    status, body = _call(predict, event, lambda_context)

    # then
    assert status == 400
    assert expected in body["message"]


def test_oversized_batch_states_the_limit_from_the_template(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    records: list[dict[str, Any]], max_batch_records: int, lambda_context: Any,
) -> None:
    # given one record more than MAX_BATCH_RECORDS
    predict = load_handler("predict")
    event = api_request("POST", "/predict", {"records": [records[0]] * (max_batch_records + 1)})

    # when
    status, body = _call(predict, event, lambda_context)

    # then
    assert status == 400
    assert body["message"] == (f'"records" has {max_batch_records + 1} items; send at most {max_batch_records} '
                               "per request")


@pytest.mark.parametrize(
    ("raw_body", "expected"),
    [
        pytest.param('{"records": [', "the request body is not valid JSON", id="truncated-json"),
        pytest.param("records=1", "the request body is not valid JSON", id="form-encoded"),
        pytest.param("", "the request body is empty", id="empty-body"),
        pytest.param("[1, 2]", 'a JSON object with a "records" list', id="json-array"),
    ],
)
def test_a_body_that_is_not_a_json_request_gets_400(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    lambda_context: Any, raw_body: str, expected: str,
) -> None:
    # given
    predict = load_handler("predict")

    # when
    status, body = _call(predict, api_request("POST", "/predict", raw_body=raw_body), lambda_context)

    # then
    assert status == 400
    assert expected in body["message"]


def test_a_body_that_is_not_base64_gets_400(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    lambda_context: Any,
) -> None:
    # given a body flagged as base64 that decodes to bytes that are not text
    predict = load_handler("predict")
    event = api_request("POST", "/predict", raw_body=base64.b64encode(b"\xff\xfe\x00garbage").decode())
    event["isBase64Encoded"] = True

    # when
    status, body = _call(predict, event, lambda_context)

    # then a client error, not a server error
    assert status == 400
    assert "base64" in body["message"]


def test_no_champion_gets_503_saying_so(
    aws_stack: Stack, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    records: list[dict[str, Any]], lambda_context: Any,
) -> None:
    # given nothing has been promoted yet
    predict = load_handler("predict")

    # when
    predict_status, predict_body = _call(predict, api_request("POST", "/predict", {"records": records}),
                                         lambda_context)
    model_status, model_body = _call(predict, api_request("GET", "/model"), lambda_context)

    # then both routes say there is no model yet
    assert (predict_status, model_status) == (503, 503)
    assert "no model has been promoted yet" in predict_body["message"]
    assert "no model has been promoted yet" in model_body["message"]


def test_model_route_summarises_the_champion(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    registry: ModelRegistry, lambda_context: Any,
) -> None:
    # given
    predict = load_handler("predict")
    manifest = registry.manifest(champion)

    # when
    status, body = _call(predict, api_request("GET", "/model"), lambda_context)

    # then
    assert status == 200
    assert body["model_version"] == champion
    assert body["metric"] == manifest["metric"]
    assert body["target"] == manifest["target"]
    assert body["features"] == manifest["schema"]["features"]
    assert body["classes"] == manifest["classes"]
    assert body["libraries"] == manifest["libraries"]
    assert body["promoted_at"] == registry.champion_pointer()["promoted_at"]


def test_a_promotion_is_picked_up_without_reloading_the_function(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    register_model: Callable[..., str], promote: Callable[[str], Any], records: list[dict[str, Any]],
    lambda_context: Any, manual_clock: Any,
) -> None:
    # given a warm function that has served the champion
    predict = load_handler("predict")
    predict.champion.clock = manual_clock
    _, before = _call(predict, api_request("POST", "/predict", {"records": records}), lambda_context)

    # when the state machine moves the pointer to a new version
    successor = register_model()
    promote(successor)
    _, stale = _call(predict, api_request("POST", "/predict", {"records": records}), lambda_context)
    manual_clock.advance(predict.champion.check_interval)  # the documented staleness (CHAMPION_CHECK_SECONDS)
    _, after = _call(predict, api_request("POST", "/predict", {"records": records}), lambda_context)
    _, summary = _call(predict, api_request("GET", "/model"), lambda_context)

    # then the same loaded module answers with the new version once the staleness bound has passed, and not
    # before it (no S3 call between checks)
    assert before["model_version"] == champion
    assert predict.champion.check_interval == float(os.environ["CHAMPION_CHECK_SECONDS"]) > 0
    assert stale["model_version"] == champion
    assert after["model_version"] == successor
    assert summary["model_version"] == successor
    assert summary["previous_version"] == champion


def test_a_tampered_champion_is_not_served(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    registry: ModelRegistry, records: list[dict[str, Any]], lambda_context: Any,
) -> None:
    # given the champion's served artifact (its compiled form) and its manifest were overwritten after the
    # promotion, the manifest claiming the new bytes' sha256
    manifest = registry.manifest(champion)
    key = manifest["compiled"]["artifact"]["key"]
    forged = b"not the compiled model"
    registry.store.put_bytes(key, forged)
    manifest["compiled"]["artifact"].update(sha256=hashlib.sha256(forged).hexdigest(), version_id=None)
    registry.store.put_json(registry.prefix(champion) + "manifest.json", manifest)
    predict = load_handler("predict")

    # when
    status, body = _call(predict, api_request("POST", "/predict", {"records": records}), lambda_context)

    # then the API answers from the versions the pointer pinned, not from the forged bytes
    assert status == 200, body
    assert body["model_version"] == champion


def test_a_champion_whose_pinned_bytes_do_not_verify_is_refused(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    registry: ModelRegistry, records: list[dict[str, Any]], lambda_context: Any,
) -> None:
    # given a pointer whose pinned sha256 does not match the pinned version's bytes
    pointer = registry.champion_pointer()
    assert pointer is not None
    pointer["pins"]["compiled"]["sha256"] = "0" * 64
    registry.store.put_json(CHAMPION_KEY, pointer)
    predict = load_handler("predict")

    # when
    status, body = _call(predict, api_request("POST", "/predict", {"records": records}), lambda_context)

    # then nothing is loaded and the API says so without internals
    assert status == 503
    assert "cannot be loaded safely" in body["message"]


def test_the_pickled_artifact_is_never_read_by_the_api(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    registry: ModelRegistry, records: list[dict[str, Any]], lambda_context: Any,
) -> None:
    # given the champion's scikit-learn artifact was replaced by a pickle that would run code if loaded
    registry.store.put_bytes(registry.manifest(champion)["artifact"]["key"], b"\x80\x04not a pickle")
    predict = load_handler("predict")

    # when
    status, body = _call(predict, api_request("POST", "/predict", {"records": records}), lambda_context)

    # then the API serves the compiled model: no pickle on the serving path
    assert status == 200, body
    assert body["model_version"] == champion


def test_predictions_are_counted_in_cloudwatch_metrics(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    records: list[dict[str, Any]], stack: Stack, capsys: pytest.CaptureFixture[str], lambda_context: Any,
) -> None:
    # given
    predict = load_handler("predict")
    environment = stack.function_environment("predict")
    capsys.readouterr()

    # when
    _call(predict, api_request("POST", "/predict", {"records": records}), lambda_context)

    # then one embedded-metric-format record counts the rows (and the captured ones), per pipeline, in the stack's
    # namespace
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (emf,) = [line for line in lines if "_aws" in line]
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == environment["POWERTOOLS_METRICS_NAMESPACE"]
    assert [m["Name"] for m in directive["Metrics"]] == ["Predictions", "CapturedPredictions"]
    assert emf["Predictions"] in (3, [3])
    assert emf["CapturedPredictions"] in (3, [3])
    assert emf["Pipeline"] == environment["PIPELINE_NAME"]


def test_openapi_document_describes_the_champions_records(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    registry: ModelRegistry, max_batch_records: int, lambda_context: Any,
) -> None:
    # given
    predict = load_handler("predict")
    event = api_request("GET", "/model")
    event.update(path="/openapi.json", resource="/openapi.json")
    event["requestContext"].update(path="/Prod/openapi.json", resourcePath="/openapi.json")

    # when
    status, document = _call(predict, event, lambda_context)

    # then a client can build a valid request from it
    assert status == 200
    record = document["components"]["schemas"]["Record"]
    assert record["required"] == list(registry.manifest(champion)["schema"]["features"])
    assert record["additionalProperties"] is False
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["records"]["maxItems"] == max_batch_records
