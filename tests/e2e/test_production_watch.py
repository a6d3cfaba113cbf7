"""Production watched, as a client drives it on one stack: predictions through the API are captured (predict log ->
Firehose -> S3), labels for some of them arrive later and are joined, measured, fire the quality alarm and retrain a
new champion (unmatched ids reported); then live inputs drift with no labels: the drift alarm notifies, and
nothing retrains."""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest

from loopline.cli import main
from loopline.client import StackClient
from loopline.examples import TARGET, breast_cancer, recalibrated_sensors, split_batches
from loopline_runtime.bucket_layout import CAPTURE_PREDICTIONS_PREFIX, CHAMPION_KEY, LABELS_REPORTS_PREFIX
from tests.support.notifications import Inbox

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def batches() -> list[pd.DataFrame]:
    initial, served, live = split_batches(breast_cancer(), [250, 120, 150])
    return [initial, recalibrated_sensors(served), live]


@pytest.fixture(scope="module")
def stack(start_stack: Callable[..., StackClient]) -> Iterator[StackClient]:
    yield start_stack()


def _captured(stack: StackClient) -> dict[str, dict[str, Any]]:
    """Every captured record in the bucket, by prediction id."""
    records = {}
    for key in stack.keys(CAPTURE_PREDICTIONS_PREFIX):
        body = stack.s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()
        for line in gzip.decompress(body).decode().splitlines():
            record = json.loads(line)
            records[record["prediction_id"]] = record
    return records


def _wait_for_captures(stack: StackClient, ids: list[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        captured = _captured(stack)
        if set(ids) <= set(captured) or time.monotonic() > deadline:
            return captured
        time.sleep(0.5)


def _predict(stack: StackClient, rows: pd.DataFrame) -> list[str]:
    response = stack.predict(rows.drop(columns=[TARGET]).to_dict(orient="records"))
    assert response.status == 200, response.text
    return list(response.body["prediction_ids"])


def _schedule_input(stack: StackClient, action: str) -> tuple[str, str]:
    """(target function ARN, input) of the stack's EventBridge schedule whose input runs `action`."""
    events = stack.client("events")
    for rule in events.list_rules()["Rules"]:
        for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]:
            if json.loads(target.get("Input") or "{}").get("action") == action:
                return target["Arn"], target["Input"]
    raise AssertionError(f"no schedule runs {action!r}")


def test_labels_arriving_later_are_joined_measured_and_retrain_a_new_champion(
    stack: StackClient, batches: list[pd.DataFrame],
) -> None:
    # given a first champion, serving predictions for rows from recalibrated sensors
    stack.upload_csv(batches[0], "initial.csv")
    first_run = stack.wait_for_new_execution(set(), timeout=180)
    assert stack.wait_for_execution(first_run["executionArn"], timeout=600)["status"] == "SUCCEEDED"
    first = stack.read_json(CHAMPION_KEY)["version"]
    served = batches[1]
    ids = _predict(stack, served)

    # when every prediction has been captured, and the labels of 100 of them arrive later with 3 unknown ids
    captured = _wait_for_captures(stack, ids)
    assert set(ids) <= set(captured), f"{len(set(ids) - set(captured))} of {len(ids)} predictions not captured"
    assert captured[ids[0]]["model_version"] == first
    labels = pd.DataFrame({"request_id": [*ids[:100], "unknown-1", "unknown-2", "unknown-3"],
                           TARGET: [*list(served[TARGET][:100]), "benign", "benign", "malignant"]})
    known = {e["executionArn"] for e in stack.executions()}
    stack.upload_csv(labels, "labels/outcomes.csv")

    # then the labels are joined (unmatched ids reported in a file), the joined batch is measured below the alarm
    # line, and the alarm's retraining promotes a new champion
    (report_key,) = [k for k in stack.wait_for_keys(LABELS_REPORTS_PREFIX, 2, timeout=120) if k.endswith(".json")]
    report = stack.read_json(report_key)
    assert (report["matched"], report["unmatched"]) == (100, 3)
    unmatched = stack.s3.get_object(Bucket=stack.bucket, Key=report["unmatched_key"])["Body"].read().decode()
    assert unmatched.split() == ["request_id", "unknown-1", "unknown-2", "unknown-3"]
    assert report["monitoring"] == "requested"
    assert stack.wait_for_alarm_state("ALARM", timeout=120)["StateValue"] == "ALARM"
    retraining = stack.wait_for_new_execution(known, timeout=120)
    described = stack.wait_for_execution(retraining["executionArn"], timeout=600)
    assert (described["status"], json.loads(described["input"])["reason"]) == ("SUCCEEDED", "alarm")
    model = stack.http("GET", "model").body
    assert model["model_version"] != first
    assert report["dataset_version"] in model["dataset_versions"]


def test_live_inputs_drifting_without_labels_notify_and_retrain_nothing(
    stack: StackClient, batches: list[pd.DataFrame], capsys: pytest.CaptureFixture[str],
) -> None:
    # given a subscriber to the stack's notifications, and live requests drawn toward the middle of the data, where
    # the champion is unsure (every feature 90% of the way to its mean)
    inbox = Inbox(stack)
    live = batches[2].copy()
    features = [c for c in live.columns if c != TARGET]
    live[features] = live[features] + 0.9 * (live[features].mean() - live[features])
    ids = _predict(stack, live)
    assert set(ids) <= set(_wait_for_captures(stack, ids))
    known = {e["executionArn"] for e in stack.executions()}

    # when the live drift schedule fires (its own target and input, as EventBridge sends them)
    function_arn, schedule_input = _schedule_input(stack, "live_drift")
    reply = stack.client("lambda").invoke(FunctionName=function_arn, Payload=schedule_input.encode())
    measured = json.loads(reply["Payload"].read())

    # then the window is drifted, the quality estimated without labels fell, the drift alarm notifies on the topic,
    # and nothing retrains
    assert measured["status"] == "measured" and measured["drifted"] is True, measured
    assert measured["estimate"] is not None and measured["estimate"]["rows"] == len(live), measured
    assert measured["estimated_value"] < measured["holdout_score"] - 0.1, measured
    alarm_name = f"{stack.stack_name}-"

    notification = inbox.wait_for("alarm_alarm", timeout=120, where=lambda m: str(m.get("AlarmName", "")).startswith(
        alarm_name) and str(m["AlarmName"]).endswith("-live-drift"))
    assert notification["message"]["NewStateValue"] == "ALARM"
    time.sleep(3)
    assert {e["executionArn"] for e in stack.executions()} == known
    # and `loopline status` shows the live run against the drift alarm's line, and the labels joined earlier
    assert main(["status", "--stack-name", stack.stack_name, "--endpoint-url", stack.s3.meta.endpoint_url]) == 0
    shown = capsys.readouterr().out
    assert re.search(r"Live .* predictions captured .*drifted share \d\.\d\d \(alarm line", shown), shown
    assert re.search(r"Labels .* 100 joined, 3 unmatched", shown), shown
