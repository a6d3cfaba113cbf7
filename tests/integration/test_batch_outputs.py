"""Batch outputs are opened in spreadsheets: a cell that a spreadsheet would run as a formula is written as text
(a leading apostrophe), in the predictions and in rejected.csv; numbers stay numbers."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pandas as pd

from loopline_runtime.batch import ModelCache, finalize_run, score_chunk, split_upload
from loopline_runtime.batch_layout import chunk_prefix
from loopline_runtime.bucket_layout import BATCH_INCOMING_PREFIX
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.storage import ObjectStore

IDS = ['=HYPERLINK("http://attacker.example","open")', "+1+1", "@SUM(A1)", "-2", "\tcmd", "p-5"]


def test_formula_cells_are_neutralised_in_the_predictions_and_in_rejected_csv(
    store: ObjectStore, registry: ModelRegistry, register_model: Callable[..., str], promote: Callable[[str], Any],
    breast_cancer: pd.DataFrame, config: Any,
) -> None:
    # given a champion and a batch whose ids are formulas, one of them on a row with a text in a numeric column
    promote(register_model())
    rows = breast_cancer.drop(columns=[config.target]).head(len(IDS)).astype(object).reset_index(drop=True)
    rows.insert(0, "patient_id", IDS)
    rows.loc[1, rows.columns[1]] = "n/a"
    key = f"{BATCH_INCOMING_PREFIX}formulas.csv"
    store.put_bytes(key, rows.to_csv(index=False).encode("utf-8"))

    # when it is split, scored and finalized
    run = split_upload(store, registry, key, "run-formulas")
    models = ModelCache(registry)
    for chunk in store.list_keys(chunk_prefix("run-formulas")):
        score_chunk(store, models, "run-formulas", chunk, run["model_version"], run["pins"])
    summary = store.get_json(finalize_run(store, "run-formulas")["summary_key"])

    # then no written cell starts a formula, and the number and the plain id are as they were
    def ids(key: str) -> list[str]:
        return list(pd.read_csv(io.BytesIO(store.get_bytes(key)), dtype=str, keep_default_na=False)["patient_id"])

    written = [*ids(summary["parts"][0]), *ids(summary["rejected_key"])]
    assert sorted(written) == sorted(["'" + IDS[0], "'+1+1", "'@SUM(A1)", "-2", "'\tcmd", "p-5"])


def test_numbers_the_model_cannot_read_are_rejected_as_not_a_number_and_the_rest_scored(
    store: ObjectStore, registry: ModelRegistry, register_model: Callable[..., str], promote: Callable[[str], Any],
    breast_cancer: pd.DataFrame, config: Any,
) -> None:
    # given a batch whose first numeric column holds, besides numbers, values float() reads but the model does not
    # (digit separators, other scripts' digits, infinity) and a missing-value word (imputed, not refused)
    promote(register_model())
    values = ["1_000", "\u0661\u0662", "inf", "-Infinity", "NA", " 12.5 "]
    rows = breast_cancer.drop(columns=[config.target]).head(len(values)).astype(object).reset_index(drop=True)
    rows[rows.columns[0]] = values
    rows.loc[5, rows.columns[1]] = "2_000"  # the only odd value of its column
    key = f"{BATCH_INCOMING_PREFIX}numbers.csv"
    store.put_bytes(key, rows.to_csv(index=False).encode("utf-8"))

    # when it is split, scored and finalized
    run = split_upload(store, registry, key, "run-numbers")
    models = ModelCache(registry)
    for chunk in store.list_keys(chunk_prefix("run-numbers")):
        score_chunk(store, models, "run-numbers", chunk, run["model_version"], run["pins"])
    summary = store.get_json(finalize_run(store, "run-numbers")["summary_key"])

    # then the five unreadable numbers are refused with their column's reason, the missing value's row is scored
    assert summary["rejected_by_reason"] == {"not_a_number": 5}
    assert summary["rows_out"] == 1
    rejected = pd.read_csv(io.BytesIO(store.get_bytes(summary["rejected_key"])), dtype=str, keep_default_na=False)
    assert list(rejected["input_row"]) == ["1", "2", "3", "4", "6"]
