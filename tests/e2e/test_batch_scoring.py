"""Batch scoring on the emulator: a file split into more chunk objects than one S3 listing page (1,000 keys) is
scored through the Distributed Map; every input row comes out exactly once (scored or rejected with a reason),
in input order with its id, and a champion promoted mid-run does not change the run's model version."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from loopline.client import StackClient
from loopline.examples import TARGET, breast_cancer, split_batches
from loopline.score_command import follow, submit
from loopline_runtime.batch import CHUNK_ROWS_RANGE
from loopline_runtime.batch_layout import ROW_COLUMN, run_prefix
from tests.support.bucket_policy import remove_bucket_policy

pytestmark = pytest.mark.e2e

CHUNKS = 1_010  # more chunk objects than one ListObjectsV2 page
CHUNK_ROWS = CHUNK_ROWS_RANGE[0]  # the smallest chunks the batch caps allow


def _batch_file(path: Path) -> pd.DataFrame:
    """CHUNKS x CHUNK_ROWS rows (features and an id, no label), 2 with invalid values, plus a line with the wrong
    number of fields; returns those rows."""
    features = breast_cancer().drop(columns=[TARGET])
    rows = pd.concat([features] * (CHUNKS * CHUNK_ROWS // len(features) + 1), ignore_index=True).head(
        CHUNKS * CHUNK_ROWS)
    rows.insert(0, "patient_id", [f"p-{i:05d}" for i in range(len(rows))])
    rows = rows.astype(object)
    rows.loc[5, "mean radius"] = "large"  # not a number
    rows.loc[17, "worst area"] = "inf"  # not finite
    text = rows.to_csv(index=False)
    lines = text.splitlines()
    lines.insert(12, "p-extra,1,2")  # wrong number of fields: rejected at the split
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rows


def _csv(stack: StackClient, key: str) -> pd.DataFrame:
    body = stack.s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()
    return pd.read_csv(io.BytesIO(body), dtype={"patient_id": str})


def test_a_batch_of_more_than_a_listing_page_of_chunks_is_scored_once_per_row_with_one_model(
    start_stack: Callable[..., StackClient], tmp_path: Path,
) -> None:
    # given a stack with a champion
    stack = start_stack()
    stack.upload_csv(split_batches(breast_cancer(), [300])[0], "first.csv")
    trained = stack.wait_for_execution(stack.wait_for_new_execution(set(), timeout=180)["executionArn"], timeout=600)
    assert trained["status"] == "SUCCEEDED", trained
    pinned = stack.read_json("registry/champion.json")["version"]
    rows = _batch_file(tmp_path / "patients.csv")

    # when the file is scored in chunks of the fewest rows allowed, and a new champion is promoted meanwhile
    _, candidates = submit(stack, tmp_path / "patients.csv", chunk_rows=CHUNK_ROWS)
    promoted = threading.Event()

    def promote_when_scoring(line: str) -> None:
        if not promoted.is_set() and " chunks scored " in line and not line.split(": ", 1)[1].startswith("0/"):
            _promote_copy_of(stack, pinned, "m-promoted-mid-run")
            promoted.set()

    summary = follow(stack, candidates, timeout=1500, on_progress=promote_when_scoring)

    # then the run succeeded with more chunk objects than one listing page, every one an item of the Distributed Map
    assert promoted.is_set()
    assert summary["status"] == "complete", summary
    assert summary["chunks"] == CHUNKS  # the wrong-field-count line makes no chunk
    (map_run,) = stack.sfn.list_map_runs(executionArn=_execution_arn(stack, summary["run_id"]))["mapRuns"]
    counts = stack.sfn.describe_map_run(mapRunArn=map_run["mapRunArn"])["itemCounts"]
    assert counts["total"] == counts["succeeded"] == CHUNKS
    # and every input row is exactly once in the predictions or in rejected.csv, with its id
    scored = pd.concat([_csv(stack, part) for part in summary["parts"]], ignore_index=True)
    rejected = _csv(stack, summary["rejected_key"])
    assert summary["rows_in"] == len(rows) + 1 == len(scored) + len(rejected)
    assert sorted([*scored[ROW_COLUMN], *rejected[ROW_COLUMN]]) == list(range(1, len(rows) + 2))
    assert scored[ROW_COLUMN].is_monotonic_increasing  # input order kept
    assert set(scored["patient_id"]) | set(rejected["patient_id"]) == set(rows["patient_id"]) | {"p-extra"}
    assert set(scored["prediction"]) <= {"benign", "malignant"}
    assert dict(zip(rejected["patient_id"], rejected["reason"], strict=True)) == {
        "p-extra": "wrong_field_count", "p-00005": "not_a_number", "p-00017": "not_a_number"}
    assert summary["rejected_by_reason"] == {"not_a_number": 2, "wrong_field_count": 1}
    # and one model version scored the whole run: the one pinned at the start, not the one promoted mid-run
    assert stack.read_json("registry/champion.json")["version"] == "m-promoted-mid-run"
    assert summary["model_version"] == pinned
    versions = {stack.read_json(k)["model_version"] for k in stack.keys(f"{run_prefix(summary['run_id'])}results/")}
    assert versions == {pinned}


def _execution_arn(stack: StackClient, run_id: str) -> str:
    return stack.outputs["BatchScoringStateMachineArn"].replace(":stateMachine:", ":execution:") + ":" + run_id


def _promote_copy_of(stack: StackClient, version: str, new_version: str) -> None:
    """Register the champion's artifact again under a new version and move the pointer to it (what the training
    state machine's promotion writes), as a client with bucket access would (past the bucket policy, which
    reserves models/ and registry/ to the pipeline's roles)."""
    remove_bucket_policy(stack)
    manifest = stack.read_json(f"models/{version}/manifest.json")
    artifact_key = manifest["artifact"]["key"]
    new_key = artifact_key.replace(version, new_version)
    stack.s3.copy_object(Bucket=stack.bucket, Key=new_key, CopySource={"Bucket": stack.bucket, "Key": artifact_key})
    manifest.update(version=new_version, artifact={**manifest["artifact"], "key": new_key})
    stack.s3.put_object(Bucket=stack.bucket, Key=f"models/{new_version}/manifest.json",
                        Body=json.dumps(manifest).encode())
    pointer = stack.read_json("registry/champion.json")
    pointer.update(version=new_version, previous_version=version, promoted_at=time.time())
    stack.s3.put_object(Bucket=stack.bucket, Key="registry/champion.json", Body=json.dumps(pointer).encode())
