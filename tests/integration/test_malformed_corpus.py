"""A corpus of malformed uploads and configs, each with the clear outcome a user should get.

Uploads (tests/corpus/uploads/, expectations in its manifest.yaml) go through the real ingest Lambda on moto:
a bad one ends quarantined with a reason code and a message naming the problem, the original left in incoming/
and a copy next to reason.json in quarantine/; an odd but usable one is accepted. Configs (tests/corpus/configs/)
go through `load_config` and must fail with an InvalidConfig naming the field and, where there is one, the fix.
"""

from __future__ import annotations

import io
import json
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
import yaml

from loopline_runtime.bucket_layout import DATASET_INDEX_PREFIX, QUARANTINE_PREFIX, dataset_prefix
from loopline_runtime.config import CONFIG_ENV_VAR, load_config
from loopline_runtime.errors import InvalidConfig
from loopline_runtime.ingest import FIXES
from tests.support.stack import Stack

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
UPLOADS, CONFIGS = CORPUS / "uploads", CORPUS / "configs"
UPLOAD_CASES: dict[str, dict[str, Any]] = yaml.safe_load((UPLOADS / "manifest.yaml").read_text(encoding="utf-8"))
CONFIG_CASES: dict[str, list[str]] = yaml.safe_load((CONFIGS / "manifest.yaml").read_text(encoding="utf-8"))


def _ids(cases: dict[str, Any], outcome: str) -> list[str]:
    return [name for name, case in cases.items() if case["outcome"] == outcome]


def test_every_corpus_file_has_an_expected_outcome() -> None:
    # a file dropped into the corpus without a manifest entry would silently test nothing
    assert {p.name for p in UPLOADS.glob("*.csv")} == set(UPLOAD_CASES)
    assert {p.name for p in CONFIGS.glob("*.yaml") if p.name != "manifest.yaml"} | {"does-not-exist.yaml"} == set(
        CONFIG_CASES)
    assert len(_ids(UPLOAD_CASES, "quarantined")) + len(CONFIG_CASES) >= 15


@pytest.fixture
def ingest_corpus_file(aws_stack: Stack, load_handler: Callable[[str], Any], upload: Callable[..., dict[str, Any]],
                       lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
                       tmp_path: Path) -> Callable[[str], dict[str, Any]]:
    """Ingest corpus files (after the case's `after` files) with the corpus config; returns the last outcome."""

    def run(name: str) -> dict[str, Any]:
        case = UPLOAD_CASES[name]
        config = yaml.safe_load((UPLOADS / "pipeline.yaml").read_text(encoding="utf-8"))
        config.update(case.get("config", {}))
        config_path = tmp_path / "pipeline.yaml"
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        monkeypatch.setenv(CONFIG_ENV_VAR, str(config_path))
        handler = load_handler("ingest")  # reads the pipeline config at import, as a Lambda cold start does
        outcome: dict[str, Any] = {}
        for file_name in [*case.get("after", []), name]:
            event = upload(f"incoming/{file_name}", (UPLOADS / file_name).read_bytes())
            (outcome,) = handler.lambda_handler(event, lambda_context)["results"]
            if file_name != name:
                assert outcome["status"] == "accepted", outcome
        return outcome

    return run


def _body(bucket: str, key: str) -> bytes:
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def _keys(bucket: str, prefix: str) -> list[str]:
    response = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for item in response.get("Contents", [])]


@pytest.mark.parametrize("name", _ids(UPLOAD_CASES, "quarantined"))
def test_malformed_upload_is_quarantined_with_a_reason_naming_the_problem(
    name: str, aws_stack: Stack, ingest_corpus_file: Callable[[str], dict[str, Any]],
) -> None:
    # given a malformed file from the corpus
    case = UPLOAD_CASES[name]
    original = (UPLOADS / name).read_bytes()

    # when it is uploaded to incoming/ and ingested
    outcome = ingest_corpus_file(name)

    # then it is quarantined with the expected reason and a message naming the problem
    assert outcome["status"] == "quarantined", outcome
    reason = outcome["reason"]
    assert reason["reason_code"] == case["reason_code"], reason["message"]
    for words in case["message"]:
        assert words.lower() in reason["message"].lower(), (words, reason["message"])
    assert reason["how_to_fix"] == FIXES[case["reason_code"]]
    # and nothing is lost: the original stays in incoming/, a copy and reason.json sit together in quarantine/
    assert _body(aws_stack.bucket, f"incoming/{name}") == original
    copy_key = outcome["quarantine_key"]
    folder = posixpath.dirname(copy_key)
    assert copy_key.startswith(QUARANTINE_PREFIX) and posixpath.basename(copy_key) == name
    assert _body(aws_stack.bucket, copy_key) == original
    assert json.loads(_body(aws_stack.bucket, f"{folder}/reason.json")) == reason
    assert reason["source_key"] == f"incoming/{name}"
    # and no dataset version was made of it (only of the good files uploaded before it)
    assert len(_keys(aws_stack.bucket, DATASET_INDEX_PREFIX)) == len(case.get("after", []))


@pytest.mark.parametrize("name", _ids(UPLOAD_CASES, "accepted"))
def test_odd_but_usable_upload_is_accepted(
    name: str, aws_stack: Stack, ingest_corpus_file: Callable[[str], dict[str, Any]],
) -> None:
    # given an upload with a quirk a user's export can have (BOM, CRLF, other column order, extra columns, gaps)
    case = UPLOAD_CASES[name]

    # when it is ingested
    outcome = ingest_corpus_file(name)

    # then it becomes a dataset version; rows without a label are dropped and counted, extra columns ignored
    assert outcome["status"] == "accepted", outcome
    assert outcome["rows"] == case["rows"]
    manifest = json.loads(_body(aws_stack.bucket, f"{dataset_prefix(outcome['dataset_version'])}manifest.json"))
    assert manifest["rows_without_label"] == case["rows_without_label"]
    stored = pd.read_csv(io.BytesIO(_body(aws_stack.bucket, f"{dataset_prefix(outcome['dataset_version'])}data.csv")))
    assert list(stored.columns) == case["columns"]
    assert len(stored) == case["rows"]
    assert set(manifest["schema"]["features"]) == set(case["columns"]) - {manifest["schema"]["target"]}
    assert not _keys(aws_stack.bucket, QUARANTINE_PREFIX)


def test_rows_keep_their_values_in_the_right_columns() -> None:
    """Guards the accepted corpus files themselves: values are read under their own header names."""
    from loopline_runtime.schema import read_csv

    frame = read_csv((UPLOADS / "first-column-named-like-index.csv").read_bytes())
    assert list(frame.columns) == ["a.1", "a", "color", "label"]
    assert set(frame["label"]) == {"cat", "dog"}


@pytest.mark.parametrize("name", list(CONFIG_CASES))
def test_malformed_config_is_rejected_naming_the_field_and_the_fix(name: str) -> None:
    # given a pipeline config with one mistake (or none at all)
    path = CONFIGS / name

    # when it is loaded
    with pytest.raises(InvalidConfig) as caught:
        load_config(path)

    # then the error names the file, the field and, where there is one, the fix
    message = str(caught.value)
    assert message.startswith(str(path)), message
    for words in CONFIG_CASES[name]:
        assert words.lower() in message.lower(), (words, message)


def test_a_cross_field_config_error_suggests_no_unrelated_example() -> None:
    # given an alarm whose m-of-n is impossible (the fix is in the message, not in a generic `alarm:` example)
    path = CONFIGS / "datapoints-exceed-evaluation-periods.yaml"

    # when
    with pytest.raises(InvalidConfig) as caught:
        load_config(path)

    # then the hint does not point at an unrelated setting
    assert "e.g. `alarm: {threshold" not in str(caught.value)
