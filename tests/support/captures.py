"""Capture files as Firehose writes them (gzipped newline-delimited capture records under the hour partition)."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from loopline_runtime.bucket_layout import capture_hour_prefix
from loopline_runtime.capture import CAPTURE_FIELD, CAPTURE_SCHEMA


def capture_record(prediction_id: str, inputs: Mapping[str, Any], *, captured_at: datetime | None = None,
                   model_version: str = "m-test", prediction: Any = None,
                   probabilities: Mapping[str, float] | None = None) -> dict[str, Any]:
    """One record of schema prediction/1 (loopline_runtime.capture)."""
    record = {CAPTURE_FIELD: CAPTURE_SCHEMA, "prediction_id": prediction_id, "request_id": prediction_id.split("/")[0],
              "captured_at": (captured_at or datetime.now(UTC)).isoformat(), "model_version": model_version,
              "inputs": dict(inputs), "prediction": prediction}
    if probabilities is not None:
        record["probabilities"] = dict(probabilities)
    return record


def put_capture_file(s3: Any, bucket: str, records: Iterable[Mapping[str, Any]],
                     arrived: datetime | None = None) -> str:
    """Write `records` as one delivered object of the hour `arrived` is in; returns its key."""
    moment = arrived or datetime.now(UTC)
    key = f"{capture_hour_prefix(moment)}test-capture-1-{moment:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}.gz"
    body = "".join(json.dumps(record, separators=(",", ":")) + "\n" for record in records)
    s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body.encode()))
    return key
