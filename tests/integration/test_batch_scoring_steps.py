"""The batch scoring steps on moto (what the state machine's tasks run): split, score each chunk, finalize."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from loopline_runtime.batch import ModelCache, finalize_run, score_chunk, split_upload
from loopline_runtime.batch_layout import ROW_COLUMN, chunk_prefix
from loopline_runtime.bucket_layout import BATCH_INCOMING_PREFIX
from loopline_runtime.errors import InvalidBatch, NoChampion
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.storage import ObjectStore


@pytest.fixture
def batch_file(breast_cancer: pd.DataFrame, store: ObjectStore) -> Callable[[pd.DataFrame], str]:
    def put(rows: pd.DataFrame) -> str:
        key = f"{BATCH_INCOMING_PREFIX}patients.csv"
        store.put_bytes(key, rows.to_csv(index=False).encode("utf-8"))
        return key

    return put


def _rows(breast_cancer: pd.DataFrame, target: str, n: int = 25) -> pd.DataFrame:
    rows = breast_cancer.drop(columns=[target]).head(n).astype(object)
    rows.insert(0, "patient_id", [f"p{i}" for i in range(n)])
    return rows


def _csv(store: ObjectStore, key: str) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(store.get_bytes(key)))


def test_a_failed_chunk_puts_its_rows_in_rejected_and_every_row_is_counted_once(
    store: ObjectStore, registry: ModelRegistry, register_model: Callable[..., str],
    promote: Callable[[str], Any], breast_cancer: pd.DataFrame, batch_file: Callable[[pd.DataFrame], str],
    config: Any,
) -> None:
    # given a champion and a batch of 25 rows in chunks of 10, one row with a text in a numeric column
    version = register_model()
    promote(version)
    rows = _rows(breast_cancer, config.target)
    feature = next(c for c in rows.columns if c != "patient_id")
    rows.loc[3, feature] = "n/a?"
    run = split_upload(store, registry, batch_file(rows), "run-1", chunk_rows=10)
    chunks = sorted(store.list_keys(chunk_prefix("run-1")))

    # when the first and last chunks are scored and the middle one fails (never writes its result)
    models = ModelCache(registry)
    for key in (chunks[0], chunks[2]):
        score_chunk(store, models, "run-1", key, run["model_version"], run["pins"])
    result = finalize_run(store, "run-1", map_error={"Error": "States.ExceedToleratedFailureThreshold"})

    # then the run is partial and every input row is once in the predictions or rejected, with its id
    assert run["chunks"] == 3 and result["status"] == "partial"
    summary = store.get_json(result["summary_key"])
    scored = pd.concat([_csv(store, p) for p in summary["parts"]])
    rejected = _csv(store, summary["rejected_key"])
    assert sorted([*scored[ROW_COLUMN], *rejected[ROW_COLUMN]]) == list(range(1, 26))
    assert summary["rejected_by_reason"] == {"not_a_number": 1, "scoring_failed": 10}
    assert list(rejected.loc[rejected["reason"] == "not_a_number", "patient_id"]) == ["p3"]
    assert summary["model_version"] == version and summary["chunks_failed"] == 1
    assert summary["rows_in"] == 25 == summary["rows_out"] + summary["rows_rejected"]


def test_the_split_pins_the_champion_and_refuses_what_cannot_be_scored(
    store: ObjectStore, registry: ModelRegistry, register_model: Callable[..., str],
    promote: Callable[[str], Any], breast_cancer: pd.DataFrame, batch_file: Callable[[pd.DataFrame], str],
    config: Any,
) -> None:
    rows = _rows(breast_cancer, config.target)
    # no champion yet: a typed error the state machine routes to "No champion to score with"
    with pytest.raises(NoChampion):
        split_upload(store, registry, batch_file(rows), "run-2")
    promote(register_model())
    # a file without one of the model's features: a typed error naming it
    feature = next(c for c in rows.columns if c != "patient_id")
    with pytest.raises(InvalidBatch, match=f"lacks the model's feature column.*{feature}"):
        split_upload(store, registry, batch_file(rows.drop(columns=[feature])), "run-3")


def test_a_semicolon_file_is_split_with_the_configured_delimiter(
    store: ObjectStore, registry: ModelRegistry, register_model: Callable[..., str],
    promote: Callable[[str], Any], breast_cancer: pd.DataFrame, config: Any,
) -> None:
    # given a champion and a batch exported with semicolons (csv.delimiter: ";" in the pipeline config)
    promote(register_model())
    rows = _rows(breast_cancer, config.target, n=12)
    key = f"{BATCH_INCOMING_PREFIX}semicolons.csv"
    store.put_bytes(key, rows.to_csv(index=False, sep=";").encode("utf-8"))

    # when it is split with that delimiter
    run = split_upload(store, registry, key, "run-semicolons", chunk_rows=10, delimiter=";")

    # then every row is in a chunk, column by column (chunks are written with commas)
    chunks = sorted(store.list_keys(chunk_prefix("run-semicolons")))
    assert run["chunks"] == 2 and run["rows_in"] == 12
    first = _csv(store, chunks[0])
    assert list(first["patient_id"]) == [f"p{i}" for i in range(10)]
