"""Prediction capture on the predict handler: a request id for the caller, one capture line per predicted row, and
a capture that fails never fails the prediction."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from loopline_runtime.capture import CaptureSettings, PredictionCapture
from loopline_runtime.config import PipelineConfig


@pytest.fixture
def records(fresh_rows: pd.DataFrame, config: PipelineConfig) -> list[dict[str, Any]]:
    return fresh_rows.drop(columns=[config.target]).head(3).to_dict(orient="records")


@pytest.fixture
def predict(register_model: Callable[..., str], promote: Callable[[str], Any],
            load_handler: Callable[[str], Any]) -> Any:
    promote(register_model())
    return load_handler("predict")


def _output_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_predict_returns_a_request_id_in_the_body_and_the_header_and_captures_each_row(
    predict: Any, api_request: Callable[..., dict[str, Any]], records: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str], lambda_context: Any,
) -> None:
    # given a champion serving, and three records to predict
    capsys.readouterr()

    # when
    response = predict.lambda_handler(api_request("POST", "/predict", {"records": records}), lambda_context)

    # then the caller gets the request id in the header and the body, and one id per prediction
    body = json.loads(response["body"])
    assert response["statusCode"] == 200
    assert response["multiValueHeaders"]["X-Request-Id"] == [body["request_id"]]  # (REST API proxy format)
    assert body["prediction_ids"] == [f"{body['request_id']}/{index}" for index in range(3)]
    # and each row is captured with its id, the model version, its inputs and outputs
    captured = [line for line in _output_lines(capsys) if line.get("capture") == "prediction/1"]
    assert [line["prediction_id"] for line in captured] == body["prediction_ids"]
    for line, record, prediction, probabilities in zip(captured, records, body["predictions"],
                                                       body["probabilities"], strict=True):
        assert line["request_id"] == body["request_id"]
        assert line["model_version"] == body["model_version"]
        assert line["inputs"] == json.loads(json.dumps(record))
        assert (line["prediction"], line["probabilities"]) == (prediction, probabilities)
        assert line["captured_at"].endswith("+00:00")


def test_a_request_of_one_record_has_its_request_id_as_prediction_id(
    predict: Any, api_request: Callable[..., dict[str, Any]], records: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str], lambda_context: Any,
) -> None:
    # given one record
    capsys.readouterr()

    # when
    response = predict.lambda_handler(api_request("POST", "/predict", {"records": records[:1]}), lambda_context)

    # then the one prediction is labelled later by the request id itself
    body = json.loads(response["body"])
    assert body["prediction_ids"] == [body["request_id"]]
    (line,) = [line for line in _output_lines(capsys) if line.get("capture")]
    assert line["prediction_id"] == body["request_id"]


def test_a_failing_capture_never_fails_the_prediction_and_is_counted_without_the_payload(
    predict: Any, api_request: Callable[..., dict[str, Any]], records: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, lambda_context: Any,
) -> None:
    # given a capture whose writes fail (stdout closed, a full pipe...)
    def broken(_: str) -> None:
        raise OSError("write failed")

    predict.capture = PredictionCapture(CaptureSettings(), write=broken)
    capsys.readouterr()

    # when
    response = predict.lambda_handler(api_request("POST", "/predict", {"records": records}), lambda_context)

    # then the caller still gets the predictions
    assert response["statusCode"] == 200
    assert len(json.loads(response["body"])["predictions"]) == 3
    # and the failure is a metric and a log line that carries no input value
    output = capsys.readouterr().out
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    emf = [line for line in lines if "_aws" in line]
    assert [line["CaptureErrors"] for line in emf if "CaptureErrors" in line] == [[1.0]]
    (warning,) = [r for r in caplog.records if r.getMessage() == "prediction not captured"]
    assert warning.__dict__["error"] == "OSError"
    logged = json.dumps([{**r.__dict__, "args": None, "exc_info": None} for r in caplog.records], default=str)
    assert not any(json.dumps(value) in logged for value in records[0].values())
