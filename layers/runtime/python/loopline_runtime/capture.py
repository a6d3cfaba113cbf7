"""Prediction capture: every served prediction (or a sample) as one JSON line in the predict function's log.

The line is the capture record; a subscription filter on the predict log group (`{ $.capture = "prediction/1" }`)
sends the matching lines to a Kinesis Data Firehose delivery stream, which writes them, newline-delimited and
gzipped, under `capture/predictions/year=/month=/day=/hour=/` in the artifact bucket (template.yaml
`CaptureDeliveryStream`). Writing a log line costs the request microseconds and no network call: Lambda ships
logs after the response, so capture adds nothing to the caller's wait and cannot fail the prediction (a failure
here is caught by the caller, counted, and logged without the payload).

Record (schema `prediction/1`), one per predicted row::

    {"capture": "prediction/1", "prediction_id": "<request id>[/<n>]", "request_id": "...",
     "captured_at": "2026-12-05T15:45:32.123456+00:00", "model_version": "...",
     "inputs": {"<column>": <value as sent>, ...},      # minus capture.exclude_columns
     "prediction": <label or number>, "probabilities": {"<class>": <p>, ...},   # classifiers only
     "shadow": {"model_version": "...", "prediction": ..., "probabilities": {...}}}   # while a shadow runs

A request of one record has prediction id = request id; of several, `<request id>/<index>` (0-based). Numpy only
(the predict function's slim layer): nothing here imports pandas or scikit-learn.
"""

from __future__ import annotations

import json
import os
import random
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

CAPTURE_SCHEMA = "prediction/1"
# the JSON key the subscription filter matches on (template.yaml CaptureSubscriptionFilter)
CAPTURE_FIELD = "capture"


def new_request_id() -> str:
    """A request id that is unique without coordination (uuid4, 32 hex digits)."""
    return uuid.uuid4().hex


def prediction_ids(request_id: str, count: int) -> list[str]:
    """The id of each predicted row: the request id for a single record, `<request id>/<n>` for several."""
    return [request_id] if count == 1 else [f"{request_id}/{index}" for index in range(count)]


@dataclass(frozen=True)
class CaptureSettings:
    """What to capture: `capture` in pipeline.yaml, passed to the predict function as environment variables."""

    enabled: bool = True
    sample_rate: float = 1.0
    exclude_columns: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CaptureSettings:
        env = os.environ if environ is None else environ
        excluded = env.get("CAPTURE_EXCLUDE_COLUMNS", "")
        return cls(enabled=env.get("CAPTURE_ENABLED", "true").lower() == "true",
                   sample_rate=float(env.get("CAPTURE_SAMPLE_RATE", "1")),
                   exclude_columns=frozenset(c for c in excluded.split(",") if c))


class PredictionCapture:
    """Writes capture records for the requests that fall in the sample (whole requests: all or none of its rows).

    Args:
        write: where a line goes (stdout, which Lambda ships to the function's log group).
        draw: a uniform random number in [0, 1) per request, for the sample.
    """

    def __init__(self, settings: CaptureSettings, *, write: Callable[[str], Any] | None = None,
                 draw: Callable[[], float] = random.random) -> None:
        self.settings = settings
        self._write = write
        self._draw = draw

    def capture(self, request_id: str, records: Sequence[Any], response: Mapping[str, Any],
                now: datetime | None = None, shadow: Mapping[str, Any] | None = None) -> int:
        """Write one line per predicted row of a sampled request; the number of rows captured. `shadow` is the
        shadow model's answer to the same records (recorded next to the champion's, never returned)."""
        settings = self.settings
        if not settings.enabled or (settings.sample_rate < 1.0 and self._draw() >= settings.sample_rate):
            return 0
        captured_at = (now or datetime.now(UTC)).isoformat()
        predictions = response["predictions"]
        probabilities = response.get("probabilities")
        ids = response.get("prediction_ids") or prediction_ids(request_id, len(predictions))
        excluded = settings.exclude_columns
        lines = []
        for index, prediction in enumerate(predictions):
            record = records[index]
            inputs = {k: v for k, v in record.items() if k not in excluded} if excluded else record
            line: dict[str, Any] = {CAPTURE_FIELD: CAPTURE_SCHEMA, "prediction_id": ids[index],
                                    "request_id": request_id, "captured_at": captured_at,
                                    "model_version": response["model_version"], "inputs": inputs,
                                    "prediction": prediction}
            if probabilities is not None:
                line["probabilities"] = probabilities[index]
            if shadow is not None:
                line["shadow"] = _shadow_row(shadow, index)
            lines.append(json.dumps(line, separators=(",", ":"), allow_nan=False))
        # one write: Lambda turns each line into its own log event
        (self._write or sys.stdout.write)("\n".join(lines) + "\n")
        return len(lines)


def _shadow_row(shadow: Mapping[str, Any], index: int) -> dict[str, Any]:
    row: dict[str, Any] = {"model_version": shadow["model_version"], "prediction": shadow["predictions"][index]}
    if shadow.get("probabilities") is not None:
        row["probabilities"] = shadow["probabilities"][index]
    return row


def is_capture_record(record: Mapping[str, Any]) -> bool:
    """True for a parsed line of schema `prediction/1`."""
    return record.get(CAPTURE_FIELD) == CAPTURE_SCHEMA
