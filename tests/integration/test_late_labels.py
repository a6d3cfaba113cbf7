"""Late labels on the ingest handler: a labels file under incoming/labels/ is joined to the captured predictions,
the matches become a dataset version measured like any labeled batch, and unmatched ids are reported."""

from __future__ import annotations

import csv
import gzip
import io
import json
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pandas as pd
import pytest

from loopline_runtime.config import PipelineConfig
from loopline_runtime.datasets import DatasetCatalog
from loopline_runtime.labels import Labels, join_labels
from loopline_runtime.storage import ObjectStore
from tests.support.captures import capture_record, put_capture_file
from tests.support.stack import Stack


@pytest.fixture
def served(ingest: Callable[[str, pd.DataFrame], dict[str, Any]], training_rows: pd.DataFrame,
           register_model: Callable[..., str], promote: Callable[[str], Any]) -> str:
    """A first dataset accepted (its schema is what labels are joined into) and a champion serving."""
    assert ingest("incoming/train.csv", training_rows)["status"] == "accepted"
    version = register_model()
    promote(version)
    return version


@pytest.fixture
def captured(served: str, aws_stack: Stack, fresh_rows: pd.DataFrame, config: PipelineConfig) -> list[str]:
    """The fresh rows' features as captured predictions of the last hours (two files); their prediction ids."""
    features = fresh_rows.drop(columns=[config.target]).to_dict(orient="records")
    ids = [f"req{index}" for index in range(len(features))]
    records = [capture_record(i, row, model_version=served) for i, row in zip(ids, features, strict=True)]
    s3 = boto3.client("s3")
    put_capture_file(s3, aws_stack.bucket, records[:60], arrived=datetime.now(UTC) - timedelta(hours=2))
    put_capture_file(s3, aws_stack.bucket, records[60:])
    return ids


def _labels_csv(rows: list[tuple[str, str]], target: str) -> bytes:
    return ("request_id," + target + "\n" + "".join(f"{i},{label}\n" for i, label in rows)).encode()


def _read_csv(store: ObjectStore, key: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(store.get_bytes(key).decode())))


def test_labels_joined_to_captures_become_a_measured_dataset_version_and_unmatched_ids_are_listed(
    captured: list[str], fresh_rows: pd.DataFrame, config: PipelineConfig, store: ObjectStore,
    load_handler: Callable[[str], Any], upload: Callable[..., dict[str, Any]], lambda_context: Any,
) -> None:
    # given labels for 100 of the captured predictions, three ids no capture has, and one id labelled twice
    target = config.target
    truth = dict(zip(captured, fresh_rows[target], strict=True))
    rows = [(i, truth[i]) for i in captured[:100]] + [("nobody-1", "malignant"), ("nobody-2", "benign"),
                                                       ("nobody-3", "benign")]
    corrected = "benign" if truth[captured[0]] == "malignant" else "malignant"
    rows.append((captured[0], corrected))  # a correction appended later in the file
    event = upload("incoming/labels/2026-12-05.csv", _labels_csv(rows, target))

    # when ingest handles the upload
    (outcome,) = load_handler("ingest").lambda_handler(event, lambda_context)["results"]

    # then the matches are a new dataset version, measured like an upload
    assert (outcome["matched"], outcome["unmatched"], outcome["duplicate_ids"]) == (100, 3, 1)
    assert outcome["status"] == "accepted" and outcome["monitoring"] == "requested"
    dataset = DatasetCatalog(store).get(outcome["dataset_version"])
    joined = _read_csv(store, dataset.data_key)
    assert len(joined) == 100 == dataset.manifest["rows"]
    # with the captured features and the label (the last row of an id wins)
    labels = [row[target] for row in joined]
    assert labels[0] == corrected and labels[1:] == [truth[i] for i in captured[1:100]]
    first = fresh_rows.iloc[1].drop(target)
    assert {k: float(v) for k, v in joined[1].items() if k != target} == pytest.approx(first.astype(float).to_dict())
    # and the unmatched ids are in the report, never dropped silently
    assert [row["request_id"] for row in _read_csv(store, outcome["unmatched_key"])] == [
        "nobody-1", "nobody-2", "nobody-3"]
    assert store.get_json(outcome["report_key"])["unmatched"] == 3


def test_labels_without_any_capture_in_the_window_are_all_reported_unmatched_and_ingest_nothing(
    served: str, config: PipelineConfig, store: ObjectStore, load_handler: Callable[[str], Any],
    upload: Callable[..., dict[str, Any]], lambda_context: Any,
) -> None:
    # given no capture at all
    before = list(store.list_keys("datasets/_index/"))
    event = upload("incoming/labels/late.csv", _labels_csv([("a", "benign"), ("b", "malignant")], config.target))

    # when
    (outcome,) = load_handler("ingest").lambda_handler(event, lambda_context)["results"]

    # then
    assert (outcome["status"], outcome["matched"], outcome["unmatched"]) == ("no_match", 0, 2)
    assert list(store.list_keys("datasets/_index/")) == before


def test_a_labels_file_without_the_id_column_is_quarantined_with_what_to_fix(
    served: str, config: PipelineConfig, load_handler: Callable[[str], Any], upload: Callable[..., dict[str, Any]],
    lambda_context: Any,
) -> None:
    # given
    event = upload("incoming/labels/bad.csv", f"id,{config.target}\na,benign\n".encode())

    # when
    (outcome,) = load_handler("ingest").lambda_handler(event, lambda_context)["results"]

    # then
    assert outcome["status"] == "quarantined"
    assert "'request_id'" in outcome["reason"]["message"] and outcome["reason"]["reason_code"] == "missing_target"


def test_the_join_streams_a_large_window_in_bounded_memory(aws_stack: Stack, store: ObjectStore) -> None:
    # given 32,000 captured rows in 4 files (about 13 MB as text) and 6 labels
    s3 = boto3.client("s3")
    inputs = {f"feature_{n}": 1234.5678 + n for n in range(10)}
    for part in range(4):
        put_capture_file(s3, aws_stack.bucket, (capture_record(f"r{part}-{n}", inputs) for n in range(8_000)))
    labels = Labels(by_id={f"r{part}-7": "yes" for part in range(4)} | {"r0-1": "no", "r3-7999": "no"})
    size = sum(len(gzip.decompress(store.get_bytes(k))) for k in store.list_keys("capture/"))

    # when joined under tracemalloc
    out = io.StringIO()
    now = datetime.now(UTC)
    tracemalloc.start()
    try:
        result = join_labels(store, labels, features=list(inputs), target="y", start=now - timedelta(hours=1),
                             end=now, out=out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # then every label is matched, and the peak is a small fraction of the window (one file at a time)
    assert (result.matched, result.unmatched, result.captured_rows) == (6, [], 32_000)
    assert size > 12_000_000
    assert peak < size / 8, json.dumps({"peak": peak, "window_bytes": size})
