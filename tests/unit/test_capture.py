"""What a capture record holds, and which requests are captured (sample rate, excluded columns, switched off)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from loopline_runtime.capture import CaptureSettings, PredictionCapture, prediction_ids

RESPONSE = {"model_version": "m-1", "predictions": ["yes", "no"],
            "probabilities": [{"yes": 0.8, "no": 0.2}, {"yes": 0.3, "no": 0.7}]}
RECORDS = [{"age": 41, "email": "a@example.com", "plan": "pro"}, {"age": 23, "email": "b@example.com", "plan": None}]


def _capture(settings: CaptureSettings, draw: float = 0.0) -> tuple[PredictionCapture, list[str]]:
    written: list[str] = []
    return PredictionCapture(settings, write=written.append, draw=lambda: draw), written


def _lines(written: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for text in written for line in text.splitlines()]


def test_each_predicted_row_is_one_line_with_its_id_inputs_and_outputs() -> None:
    # given
    capture, written = _capture(CaptureSettings())
    ids = prediction_ids("r1", 2)

    # when
    count = capture.capture("r1", RECORDS, {**RESPONSE, "prediction_ids": ids},
                            now=datetime(2026, 12, 5, 15, tzinfo=UTC))

    # then
    lines = _lines(written)
    assert count == 2 and len(written) == 1  # one write per request
    assert [line["prediction_id"] for line in lines] == ["r1/0", "r1/1"]
    assert lines[1] == {"capture": "prediction/1", "prediction_id": "r1/1", "request_id": "r1",
                        "captured_at": "2026-12-05T15:00:00+00:00", "model_version": "m-1", "inputs": RECORDS[1],
                        "prediction": "no", "probabilities": {"yes": 0.3, "no": 0.7}}


def test_excluded_columns_never_reach_the_capture() -> None:
    # given personal data excluded in the config
    capture, written = _capture(CaptureSettings(exclude_columns=frozenset({"email"})))

    # when
    capture.capture("r1", RECORDS, RESPONSE)

    # then
    assert all("email" not in line["inputs"] for line in _lines(written))
    assert "example.com" not in "".join(written)


def test_a_request_outside_the_sample_is_not_captured_and_one_inside_is_whole() -> None:
    # given a 10% sample
    settings = CaptureSettings(sample_rate=0.1)
    outside, written_outside = _capture(settings, draw=0.5)
    inside, written_inside = _capture(settings, draw=0.05)

    # when
    counts = outside.capture("r1", RECORDS, RESPONSE), inside.capture("r2", RECORDS, RESPONSE)

    # then
    assert counts == (0, 2)
    assert written_outside == [] and len(_lines(written_inside)) == 2


def test_capture_switched_off_writes_nothing() -> None:
    capture, written = _capture(CaptureSettings(enabled=False))

    assert capture.capture("r1", RECORDS, RESPONSE) == 0
    assert written == []


def test_settings_come_from_the_function_environment() -> None:
    settings = CaptureSettings.from_env({"CAPTURE_ENABLED": "true", "CAPTURE_SAMPLE_RATE": "0.25",
                                         "CAPTURE_EXCLUDE_COLUMNS": "email,phone"})

    assert settings == CaptureSettings(True, 0.25, frozenset({"email", "phone"}))
    assert CaptureSettings.from_env({"CAPTURE_EXCLUDE_COLUMNS": ""}).exclude_columns == frozenset()


def test_capture_labels_and_live_drift_import_no_pandas_scipy_or_scikit_learn() -> None:
    # given a fresh interpreter (the predict function's slim layer has none of them; monitoring moves there too)
    import subprocess
    import sys

    code = ("import sys; import loopline_runtime.capture, loopline_runtime.labels, loopline_runtime.live_drift; "
            "print(sorted({'pandas', 'scipy', 'sklearn'} & {m.split('.')[0] for m in sys.modules}))")

    # when
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    # then
    assert loaded.strip() == "[]"
