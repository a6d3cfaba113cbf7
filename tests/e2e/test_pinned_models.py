"""Models are pinned, not trusted: someone with write access to the bucket overwrites a promoted champion's
artifacts and its manifest; nothing they wrote is ever unpickled or served. Driven as a client of `loopline local up`
(boto3 + HTTP); the attacker's pickle would create a marker file if anything unpickled it."""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from loopline.client import StackClient
from loopline.examples import TARGET, breast_cancer, split_batches
from loopline_runtime.bucket_layout import MONITORING_PREFIX
from loopline_runtime.registry import CHAMPION_KEY
from tests.support.bucket_policy import remove_bucket_policy

pytestmark = pytest.mark.e2e


class _LeavesMarker:
    """Unpickling this object opens (creates) `path`: proof that someone unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return open, (str(self.path), "w")


@pytest.fixture(scope="module")
def batches() -> list[Any]:
    return split_batches(breast_cancer(), [250, 100, 100])


@pytest.fixture(scope="module")
def champion(start_stack: Callable[..., StackClient], batches: list[Any]) -> tuple[StackClient, dict[str, Any]]:
    """A stack with a promoted champion, and its pointer."""
    stack = start_stack()
    stack.upload_csv(batches[0], "first.csv")
    execution = stack.wait_for_new_execution(set(), timeout=180)
    assert stack.wait_for_execution(execution["executionArn"], timeout=600)["status"] == "SUCCEEDED"
    return stack, stack.read_json(CHAMPION_KEY)


def _records(frame: Any, n: int = 3) -> list[dict[str, Any]]:
    return frame.drop(columns=[TARGET]).head(n).to_dict(orient="records")


def _restart_function(stack: StackClient, logical_id: str) -> None:
    """A configuration change gives the function new execution environments (a cold start), as on AWS."""
    name = stack.client("cloudformation").describe_stack_resource(
        StackName=stack.stack_name, LogicalResourceId=logical_id)["StackResourceDetail"]["PhysicalResourceId"]
    lambda_client = stack.client("lambda")
    variables = lambda_client.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    lambda_client.update_function_configuration(
        FunctionName=name, Environment={"Variables": {**variables, "LOOPLINE_TEST_RESTART": str(id(variables))}})


def test_the_pointer_pins_the_versions_the_gate_scored(champion: tuple[StackClient, dict[str, Any]]) -> None:
    # given the champion promoted by the training state machine
    stack, pointer = champion

    # then the pointer names the S3 version and sha256 of the manifest and of the served artifact
    manifest = stack.read_json(pointer["pins"]["manifest"]["key"])
    compiled = pointer["pins"]["compiled"]
    assert compiled["key"] == manifest["compiled"]["artifact"]["key"]
    assert compiled["sha256"] == manifest["compiled"]["artifact"]["sha256"]
    assert compiled["version_id"] and pointer["pins"]["manifest"]["version_id"]
    served = stack.s3.get_object(Bucket=stack.bucket, Key=compiled["key"], VersionId=compiled["version_id"])
    assert hashlib.sha256(served["Body"].read()).hexdigest() == compiled["sha256"]


def test_overwritten_artifacts_and_manifest_are_never_unpickled_nor_served(
    champion: tuple[StackClient, dict[str, Any]], batches: list[Any], tmp_path: Path,
) -> None:
    # given an attacker overwrites the champion's pickle (with one that leaves a marker when unpickled), its
    # compiled form, and the manifest next to them so that the manifest's hashes match the new bytes
    stack, pointer = champion
    marker = tmp_path / "unpickled.marker"
    version = pointer["version"]
    manifest_key = pointer["pins"]["manifest"]["key"]
    manifest = stack.read_json(manifest_key)
    evil_pickle = pickle.dumps(_LeavesMarker(marker))
    evil_graph = b"\x08\x07 not the champion's graph"
    # (the bucket policy reserves models/ to the train and evaluate roles: even the administrator is refused)
    with pytest.raises(ClientError) as refused:
        stack.s3.put_object(Bucket=stack.bucket, Key=manifest["artifact"]["key"], Body=evil_pickle)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    remove_bucket_policy(stack)  # an attacker who got past it
    stack.s3.put_object(Bucket=stack.bucket, Key=manifest["artifact"]["key"], Body=evil_pickle)
    stack.s3.put_object(Bucket=stack.bucket, Key=manifest["compiled"]["artifact"]["key"], Body=evil_graph)
    manifest["artifact"].update(sha256=hashlib.sha256(evil_pickle).hexdigest(), version_id=None)
    manifest["compiled"]["artifact"].update(sha256=hashlib.sha256(evil_graph).hexdigest(), version_id=None)
    stack.s3.put_object(Bucket=stack.bucket, Key=manifest_key, Body=json.dumps(manifest).encode("utf-8"))

    # when predict starts cold and answers, and the champion is measured on a new labeled batch (monitor loads it)
    _restart_function(stack, "PredictFunction")
    _restart_function(stack, "MonitorFunction")
    response = stack.predict(_records(batches[1]))
    reports_before = len(stack.keys(MONITORING_PREFIX))
    stack.upload_csv(batches[2], "fresh.csv")
    (report_key,) = stack.wait_for_keys(MONITORING_PREFIX, reports_before + 1, timeout=180)[reports_before:]
    report = stack.read_json(report_key)

    # then nothing unpickled the attacker's bytes, and both paths used the pinned champion
    assert not marker.exists()
    assert response.status == 200, response.text
    assert response.body["model_version"] == version
    assert report["champion_version"] == version
    assert stack.read_json(CHAMPION_KEY)["pins"] == pointer["pins"]
