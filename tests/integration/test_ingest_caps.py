"""Ingest caps (ingest.max_upload_mb, max_columns, max_line_kb): an upload over one is quarantined with its own reason,
without being read (size) or read only up to where the cap trips (columns, line length)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
import yaml

from loopline_runtime.config import CONFIG_ENV_VAR, PipelineConfig
from loopline_runtime.storage import ObjectStore

Stack = Any  # tests/integration/conftest.py's Stack
Upload = Callable[[str, "bytes | pd.DataFrame"], dict[str, Any]]


@pytest.fixture
def capped_ingest(aws_stack: Stack, load_handler: Callable[[str], Any], upload: Upload, lambda_context: Any,
                  config: PipelineConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                  ) -> Callable[[str, bytes, dict[str, int]], dict[str, Any]]:
    """Ingest one upload with the given `ingest:` caps in the pipeline config; returns its outcome."""

    def run(key: str, body: bytes, caps: dict[str, int]) -> dict[str, Any]:
        data = config.model_dump(mode="json")
        data["ingest"] = {**data["ingest"], **caps}
        path = tmp_path / "capped.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        monkeypatch.setenv(CONFIG_ENV_VAR, str(path))
        (outcome,) = load_handler("ingest").lambda_handler(upload(key, body), lambda_context)["results"]
        return outcome

    return run


@pytest.fixture
def bytes_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many bytes of each upload the ingest read (one entry per ObjectStore.open)."""
    counts: list[int] = []
    original = ObjectStore.open

    def counting_open(self: ObjectStore, key: str, version_id: str | None = None) -> Any:
        body = original(self, key, version_id)
        counts.append(0)

        class Counting:
            def read(self, size: int = -1) -> bytes:
                data = body.read(size)
                counts[-1] += len(data)
                return data

            def close(self) -> None:
                body.close()

        return Counting()

    monkeypatch.setattr(ObjectStore, "open", counting_open)
    yield counts


def _reason(bucket: str, outcome: dict[str, Any]) -> dict[str, Any]:
    key = outcome["quarantine_key"].rsplit("/", 1)[0] + "/reason.json"
    return json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def _body(bucket: str, key: str) -> bytes:
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def test_an_upload_over_max_upload_mb_is_quarantined_unread_with_how_to_split_it(
    aws_stack: Stack, capped_ingest: Callable[..., dict[str, Any]], bytes_read: list[int],
    training_rows: pd.DataFrame,
) -> None:
    # given an upload of just over 1 MB and a 1 MB cap
    body = training_rows.to_csv(index=False).encode()
    body = body + body.split(b"\n", 1)[1] * (1_000_001 // len(body) + 1)

    # when it is ingested
    outcome = capped_ingest("incoming/huge.csv", body, {"max_upload_mb": 1})

    # then it is quarantined as too_large without a byte of it read by the function
    assert outcome["status"] == "quarantined"
    assert bytes_read == []
    reason = _reason(aws_stack.bucket, outcome)
    assert reason["reason_code"] == "too_large"
    assert "ingest.max_upload_mb" in reason["message"] and "Split it into files of at most 1 MB" in reason["message"]
    assert "sha256" not in reason  # never read, so never hashed
    # and the copy in quarantine/ is the whole upload (a server-side copy)
    assert _body(aws_stack.bucket, outcome["quarantine_key"]) == body


def test_an_upload_with_too_many_columns_is_quarantined_after_reading_its_header_only(
    aws_stack: Stack, capped_ingest: Callable[..., dict[str, Any]], bytes_read: list[int], config: PipelineConfig,
) -> None:
    # given a 3 MB upload of 600 columns and a cap of 500
    header = ",".join([config.target, *(f"c{i}" for i in range(599))])
    row = ",".join(["1"] * 600)
    body = (header + "\n" + "\n".join([row] * 2600) + "\n").encode()

    # when
    outcome = capped_ingest("incoming/wide.csv", body, {"max_columns": 500})

    # then it is quarantined as too_many_columns, having read one block, not the file
    reason = _reason(aws_stack.bucket, outcome)
    assert reason["reason_code"] == "too_many_columns"
    assert "600 columns" in reason["message"] and "ingest.max_columns" in reason["message"]
    assert 0 < bytes_read[0] < len(body) / 2


def test_an_upload_with_an_over_long_line_is_quarantined_where_the_line_is(
    aws_stack: Stack, capped_ingest: Callable[..., dict[str, Any]], bytes_read: list[int],
    training_rows: pd.DataFrame,
) -> None:
    # given an upload whose second line is 2 MB long, followed by 4 MB of ordinary rows, and a 1,024 KB cap
    lines = training_rows.to_csv(index=False).splitlines()
    body = "\n".join([lines[0], "x" * 2_000_000, *(lines[1:] * (4_000_000 // len("\n".join(lines))))]).encode()

    # when
    outcome = capped_ingest("incoming/long-line.csv", body, {"max_line_kb": 1024})

    # then it is quarantined as line_too_long without reading the rows after it
    reason = _reason(aws_stack.bucket, outcome)
    assert reason["reason_code"] == "line_too_long"
    assert "ingest.max_line_kb" in reason["message"]
    assert bytes_read[0] < 3_500_000 < len(body)


def test_a_large_upload_is_read_in_chunks_and_accepted_whole(
    aws_stack: Stack, capped_ingest: Callable[..., dict[str, Any]], training_rows: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given an upload of several parse chunks (small chunks: the same code path as 50,000-row chunks)
    import loopline_runtime.upload_stream as upload_stream

    monkeypatch.setattr(upload_stream, "CHUNK_ROWS", 7)
    rows = pd.concat([training_rows] * 3, ignore_index=True)

    # when it is ingested
    outcome = capped_ingest("incoming/chunked.csv", rows.to_csv(index=False).encode(), {})

    # then every row is in the dataset version, in order
    assert outcome["status"] == "accepted" and outcome["rows"] == len(rows)
    stored = pd.read_csv(io.BytesIO(_body(aws_stack.bucket, f"datasets/{outcome['dataset_version']}/data.csv")))
    pd.testing.assert_frame_equal(stored, rows[stored.columns], check_dtype=False)
