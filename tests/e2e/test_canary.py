"""Canary (`gate.canary`): a promotion first answers a share of the callers (sticky per caller key) while the
previous champion answers the rest; an alarm in the window rolls the pointer back through the rollback path with a
notification saying why; a window without an alarm ends with the new champion answering everyone."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from loopline.client import StackClient
from loopline.examples import TARGET, breast_cancer, split_batches
from loopline_runtime.bucket_layout import CHAMPION_KEY, DATASET_INDEX_PREFIX, TRAINING_LEASE_KEY
from loopline_runtime.config import MAX_CANARY_CHECKS
from tests.support.notifications import Inbox

pytestmark = pytest.mark.e2e

CALLERS = [f"customer-{n}" for n in range(24)]


@pytest.fixture(scope="module")
def frames() -> list[pd.DataFrame]:
    return split_batches(breast_cancer(), [150, 120, 120])


@pytest.fixture(scope="module")
def stack(start_stack: Callable[..., StackClient], local_stack_config_path: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    """Half the callers on the new champion for 40 s, alarms looked at every 2 s; every challenger passes the gate
    (gate.tolerance 1.0); an alarm line no batch here reaches."""
    config = yaml.safe_load(local_stack_config_path.read_text())
    config["gate"].update(tolerance=1.0, canary={"share": 0.5, "window_minutes": 40 / 60, "check_seconds": 2})
    config["alarm"] = {**config["alarm"], "max_drop": 0.9, "threshold": None}
    path = tmp_path_factory.mktemp("canary") / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    yield start_stack(path)


def _promote_with_canary(stack: StackClient, batch: pd.DataFrame, name: str) -> tuple[str, str, str]:
    """Upload `batch`, train on it by hand and wait until its challenger is the champion in a canary window;
    (execution ARN, new champion, previous champion)."""
    before = len(stack.keys(DATASET_INDEX_PREFIX))
    stack.upload_csv(batch, f"{name}.csv")
    deadline = time.monotonic() + 120
    while len(stack.keys(DATASET_INDEX_PREFIX)) <= before and time.monotonic() < deadline:
        time.sleep(0.5)
    previous = stack.read_json(CHAMPION_KEY)["version"]
    execution_arn = stack.sfn.start_execution(stateMachineArn=stack.state_machine_arn,
                                              name=f"manual-{name}-{uuid.uuid4().hex[:6]}",
                                              input=json.dumps({"reason": "manual"}))["executionArn"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        pointer = stack.read_json(CHAMPION_KEY)
        if pointer["version"] != previous and pointer.get("canary"):
            time.sleep(6)  # the predict function looks for a new champion every CHAMPION_CHECK_SECONDS (5)
            return execution_arn, str(pointer["version"]), previous
        assert stack.sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING", \
            stack.entered_states(execution_arn)
        time.sleep(0.5)
    raise TimeoutError(f"{execution_arn} promoted nothing")


def _answered_by(stack: StackClient, frame: pd.DataFrame) -> dict[str, str]:
    """The model version that answers each caller (one request each, the caller key in X-Loopline-Caller)."""
    record = frame.drop(columns=[TARGET]).iloc[0].to_dict()
    answered = {}
    for caller in CALLERS:
        response = stack.http("POST", "predict", {"records": [record]}, headers={"X-Loopline-Caller": caller})
        assert response.status == 200, response.text
        answered[caller] = response.body["model_version"]
    return answered


def test_a_canary_whose_alarm_fires_in_its_window_is_rolled_back_with_a_notification(
        stack: StackClient, frames: list[pd.DataFrame]) -> None:
    # given a first champion, then a challenger promoted with a canary: half the callers (always the same ones)
    # get the new champion, the rest the previous one, and the watching execution holds no training lease
    inbox = Inbox(stack)
    stack.upload_csv(frames[0], "first.csv")
    first_run = stack.wait_for_new_execution(set(), timeout=180)
    assert stack.wait_for_execution(first_run["executionArn"], timeout=600)["status"] == "SUCCEEDED"
    execution_arn, new, previous = _promote_with_canary(stack, frames[1], "second")
    answered = _answered_by(stack, frames[2])
    assert set(answered.values()) == {new, previous}, answered
    assert _answered_by(stack, frames[2]) == answered  # sticky
    assert stack.http("GET", "model").body["canary"]["previous_version"] == previous
    assert stack.read_json(TRAINING_LEASE_KEY)["execution_arn"] == ""

    # when the prediction API's error rate crosses its alarm line inside the window: the emulator's API publishes
    # API Gateway's 5XXError for every request (0 for the ones above), and predict never answers 5xx on purpose,
    # so 100 failed requests are put as the statistic set API Gateway would publish for them
    cloudwatch = stack.client("cloudwatch")
    [alarm] = [a for a in cloudwatch.describe_alarms(AlarmNamePrefix=stack.stack_name)["MetricAlarms"]
               if a["MetricName"] == "5XXError"]
    cloudwatch.put_metric_data(Namespace=alarm["Namespace"], MetricData=[{
        "MetricName": alarm["MetricName"], "Timestamp": datetime.now(UTC), "Dimensions": alarm["Dimensions"],
        "StatisticValues": {"SampleCount": 100, "Sum": 100, "Minimum": 1, "Maximum": 1}}])

    # then the pointer goes back to the previous champion through the rollback path, and a notification says why
    described = stack.wait_for_execution(execution_arn, timeout=120)
    assert (described["status"], stack.entered_states(execution_arn)[-1]) == ("SUCCEEDED", "Canary rolled back")
    pointer = stack.read_json(CHAMPION_KEY)
    assert (pointer["version"], pointer["reason"], pointer["requested_by"]) == (previous, "rollback", "canary")
    assert f"{alarm['AlarmName']} went to ALARM" in pointer["note"], pointer
    notified = inbox.wait_for("canary_rolled_back", timeout=60)["message"]
    assert (notified["model_version"], notified["rolled_back_to"]) == (new, previous)
    assert f"{alarm['AlarmName']} went to ALARM" in notified["why"]
    time.sleep(6)
    assert set(_answered_by(stack, frames[2]).values()) == {previous}


def test_a_clean_canary_ends_with_the_new_champion_answering_everyone(
        stack: StackClient, frames: list[pd.DataFrame]) -> None:
    # given a challenger promoted with a canary, answering half the callers
    execution_arn, new, previous = _promote_with_canary(stack, frames[2], "third")
    assert set(_answered_by(stack, frames[0]).values()) == {new, previous}

    # when its window passes with no alarm
    described = stack.wait_for_execution(execution_arn, timeout=180)

    # then its execution ends promoted, and it answers every caller
    assert (described["status"], stack.entered_states(execution_arn)[-1]) == ("SUCCEEDED", "Promoted")
    assert "Check canary" in stack.entered_states(execution_arn)
    # and each look at the alarms fits the history budget gate.canary's bound on checks assumes
    history = stack.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    checks = [e["id"] for e in history if (e.get("stateEnteredEventDetails") or {}).get("name") == "Check canary"]
    per_check = (checks[-1] - checks[0]) / (len(checks) - 1)  # events from one check to the next
    assert len(checks) >= 2 and per_check * MAX_CANARY_CHECKS <= 25_000, (per_check, len(checks))
    assert stack.read_json(CHAMPION_KEY)["version"] == new
    assert set(_answered_by(stack, frames[0]).values()) == {new}
