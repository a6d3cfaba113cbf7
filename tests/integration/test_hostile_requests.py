"""Hostile request bodies get a short 400, never a 5xx or a stack trace; a champion that cannot be loaded does not
take serving down (issue: nobody in). Runs the predict handler on moto with a real champion."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from loopline_runtime.config import PipelineConfig
from loopline_runtime.registry import CHAMPION_KEY, ModelRegistry
from loopline_runtime.request_body import PREVIEW_CHARS

# A 400's message names the problem in a few lines; it never grows with what the caller sent.
MAX_MESSAGE_CHARS = 500


@pytest.fixture
def record(fresh_rows: pd.DataFrame, config: PipelineConfig) -> dict[str, Any]:
    """One valid record as a client sends it."""
    return fresh_rows.drop(columns=[config.target]).head(1).to_dict(orient="records")[0]


def _call(handler: Any, event: dict[str, Any], context: Any) -> tuple[int, dict[str, Any]]:
    response = handler.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def _body_with(record: dict[str, Any], field: str, raw_json_value: str) -> str:
    """A request body whose `field` holds `raw_json_value` exactly as written (not re-encoded by json.dumps)."""
    marker = "__RAW_VALUE__"
    return json.dumps({"records": [{**record, field: marker}]}).replace(f'"{marker}"', raw_json_value)


NUMERIC = "mean radius"  # a numeric feature of the sample data (tests/conftest.py SAMPLE_FEATURES)


@pytest.mark.parametrize(
    ("make_body", "expected"),
    [
        pytest.param(lambda r: _body_with(r, NUMERIC, "9" * 5000), "must be a finite number", id="5000-digit-integer"),
        pytest.param(lambda r: _body_with(r, NUMERIC, "1" + "0" * 400), "must be a finite number", id="10**400"),
        pytest.param(lambda r: _body_with(r, NUMERIC, "1e400"), "must be a finite number", id="float-overflow"),
        pytest.param(lambda r: "[" * 400_000, "nests arrays or objects too deeply", id="400KB-of-nested-brackets"),
        pytest.param(lambda r: '{"records": {"a": ' * 50_000, "nests arrays or objects too deeply",
                     id="nested-objects"),
        pytest.param(lambda r: _body_with(r, NUMERIC, "NaN"), "NaN, which is not JSON", id="NaN-literal"),
        pytest.param(lambda r: _body_with(r, NUMERIC, "-Infinity"), "-Infinity, which is not JSON", id="Infinity"),
        pytest.param(lambda r: _body_with(r, NUMERIC, '"1_000"'), "must be a number, got '1_000'", id="underscores"),
        pytest.param(lambda r: _body_with(r, NUMERIC, '"\u0661\u0662\u0663"'), "must be a number",
                     id="arabic-indic-digits"),
        pytest.param(lambda r: _body_with(r, NUMERIC, '"12abc"'), "must be a number", id="trailing-garbage"),
        pytest.param(lambda r: _body_with(r, NUMERIC, '"' + "x" * 1_000_000 + '"'), "(1,000,002 characters)",
                     id="1MB-value"),
        pytest.param(lambda r: json.dumps({"records": [{**r, "k" * 1_000_000: 1}]}), "(1,000,000 characters)",
                     id="1MB-field-name"),
        pytest.param(lambda r: json.dumps({"records": [r], "pad": "x" * 7_000_000}), "send at most",
                     id="7MB-body"),
    ],
)
def test_a_hostile_body_gets_a_short_400(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    record: dict[str, Any], lambda_context: Any, make_body: Callable[[dict[str, Any]], str], expected: str,
) -> None:
    # given a champion and a body crafted to break parsing, validation or the size of the answer
    predict = load_handler("predict")
    event = api_request("POST", "/predict", raw_body=make_body(record))

    # when
    status, body = _call(predict, event, lambda_context)

    # then a 400 that names the problem in a short message
    assert status == 400
    assert expected in body["message"]
    assert len(body["message"]) <= MAX_MESSAGE_CHARS


def test_an_echoed_value_is_cut_to_a_preview(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    record: dict[str, Any], lambda_context: Any,
) -> None:
    # given a long bad value
    value = "y" * 10_000
    event = api_request("POST", "/predict", raw_body=_body_with(record, NUMERIC, json.dumps(value)))

    # when
    status, body = _call(load_handler("predict"), event, lambda_context)

    # then only its first characters come back
    assert status == 400
    assert "y" * (PREVIEW_CHARS - 1) in body["message"]  # the preview is of repr(value): its quote counts
    assert "y" * (PREVIEW_CHARS + 1) not in body["message"]


def test_a_503_tells_callers_nothing_about_internals(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    registry: ModelRegistry, record: dict[str, Any], lambda_context: Any,
) -> None:
    # given the only champion's pointer names no pinned artifacts (nothing verified to load or fall back to)
    manifest = registry.manifest(champion)
    pointer = registry.champion_pointer()
    assert pointer is not None
    registry.store.put_json(CHAMPION_KEY, {k: v for k, v in pointer.items() if k != "pins"})

    # when
    status, body = _call(load_handler("predict"), api_request("POST", "/predict", {"records": [record]}),
                         lambda_context)

    # then a 503 without keys, hashes or library versions
    assert status == 503
    assert manifest["compiled"]["artifact"]["key"] not in body["message"]
    assert manifest["compiled"]["artifact"]["sha256"][:8] not in body["message"]
    assert "scikit-learn" not in body["message"]


def test_the_last_good_champion_keeps_serving_when_a_new_one_cannot_be_loaded(
    champion: str, load_handler: Callable[[str], Any], api_request: Callable[..., dict[str, Any]],
    register_model: Callable[..., str], promote: Callable[[str], Any], registry: ModelRegistry,
    record: dict[str, Any], lambda_context: Any, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture, manual_clock: Any,
) -> None:
    # given a warm function serving the champion
    predict = load_handler("predict")
    predict.champion.clock = manual_clock
    request = api_request("POST", "/predict", {"records": [record]})
    assert _call(predict, request, lambda_context)[1]["model_version"] == champion

    # when a successor is promoted whose pinned artifact is then gone (its S3 version deleted)
    successor = register_model()
    pin = promote(successor)["pins"]["compiled"]
    registry.store.client.delete_object(Bucket=registry.store.bucket, Key=pin["key"], VersionId=pin["version_id"])
    manual_clock.advance(predict.champion.check_interval)  # past the documented staleness
    capsys.readouterr()
    status, body = _call(predict, request, lambda_context)
    manual_clock.advance(predict.champion.check_interval)
    second_status, second = _call(predict, request, lambda_context)

    # then the previous champion answers, and the failure is logged and counted once per pointer move
    assert (status, second_status) == (200, 200)
    assert body["model_version"] == second["model_version"] == champion
    logged = [r.message for r in caplog.records]
    assert logged.count("new champion could not be loaded; the previous one keeps serving") == 1
    output = capsys.readouterr().out
    emf = [json.loads(line) for line in output.splitlines() if '"_aws"' in line]
    failures = [doc["ChampionLoadFailures"] for doc in emf if "ChampionLoadFailures" in doc]
    assert failures in ([1.0], [[1.0]])
