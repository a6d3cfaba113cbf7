"""Two quick uploads to one key are two uploads: each S3 event is processed with the bytes of the version it
names, not with whatever the key holds when the function gets to it."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

from loopline_runtime.datasets import version_for


def test_two_quick_uploads_to_one_key_each_become_their_own_dataset_version(
    upload: Callable[[str, pd.DataFrame], dict[str, Any]], load_handler: Callable[[str], ModuleType],
    lambda_context: Any, training_rows: pd.DataFrame, fresh_rows: pd.DataFrame,
) -> None:
    # given two uploads to the same key, the second landing before the first event is processed
    key = "incoming/daily.csv"
    first, second = training_rows, pd.concat([training_rows, fresh_rows], ignore_index=True)
    first_event, second_event = upload(key, first), upload(key, second)
    ingest = load_handler("ingest")

    # when both events are processed, in order
    outcomes = [ingest.lambda_handler(event, lambda_context)["results"][0] for event in (first_event, second_event)]

    # then each event's dataset version is that of the bytes its own upload put
    expected = [version_for(rows.to_csv(index=False).encode("utf-8")) for rows in (first, second)]
    assert [outcome["dataset_version"] for outcome in outcomes] == expected


def test_a_quarantined_uploads_values_are_not_logged(
    upload: Callable[[str, pd.DataFrame], dict[str, Any]], load_handler: Callable[[str], ModuleType],
    lambda_context: Any, training_rows: pd.DataFrame, config: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    # given an accepted first upload, and a second whose numeric column holds a text the quarantine reason quotes
    ingest = load_handler("ingest")
    ingest.lambda_handler(upload("incoming/first.csv", training_rows), lambda_context)
    rows = training_rows.astype(object).copy()
    feature = next(c for c in rows.columns if c != config.target)
    rows[feature] = "SENSITIVE-CUSTOMER-VALUE"

    # when ingest quarantines it
    (outcome,) = ingest.lambda_handler(upload("incoming/bad.csv", rows), lambda_context)["results"]

    # then the value is in the quarantine's reason, and not in the function's logs
    assert outcome["status"] == "quarantined" and "SENSITIVE-CUSTOMER-VALUE" in outcome["reason"]["message"]
    logged = " ".join(str(record.__dict__) for record in caplog.records)  # messages and their extra fields
    assert "upload processed" in logged and "SENSITIVE-CUSTOMER-VALUE" not in logged
