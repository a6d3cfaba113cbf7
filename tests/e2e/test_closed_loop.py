"""The closed loop, driven purely as a client: drifted labeled data -> quality below the alarm threshold ->
CloudWatch alarm -> EventBridge -> retraining -> a new champion -> the alarm back to OK."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from loopline.client import StackClient
from loopline.examples import breast_cancer, recalibrated_sensors, split_batches
from loopline_runtime.bucket_layout import CHAMPION_KEY, MODELS_PREFIX, MONITORING_PREFIX, REGISTRY_PREFIX
from loopline_runtime.config import PipelineConfig

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def batches() -> list[Any]:
    initial, drifted_a, drifted_b, fresh = split_batches(breast_cancer(), [250, 100, 100, 100])
    return [initial, recalibrated_sensors(drifted_a), recalibrated_sensors(drifted_b), fresh]


def _first_champion(stack: StackClient, initial: Any) -> str:
    stack.upload_csv(initial, "initial.csv")
    execution = stack.wait_for_new_execution(set(), timeout=180)
    assert stack.wait_for_execution(execution["executionArn"], timeout=600)["status"] == "SUCCEEDED"
    return str(stack.read_json(CHAMPION_KEY)["version"])


def _measure(stack: StackClient, frame: Any, name: str) -> dict[str, Any]:
    before = len(stack.keys(MONITORING_PREFIX))
    stack.upload_csv(frame, name)
    keys = stack.wait_for_keys(MONITORING_PREFIX, before + 1, timeout=180)
    assert len(keys) == before + 1, "the champion was not measured on the new labeled batch"
    return dict(stack.read_json(sorted(keys)[-1]))


def test_drift_fires_the_alarm_which_retrains_and_recovers(start_stack: Callable[..., StackClient],
                                                           batches: list[Any], pipeline_config: PipelineConfig) -> None:
    # given a stack with a first champion, and the alarm threshold of pipeline.yaml
    stack = start_stack()
    first = _first_champion(stack, batches[0])
    threshold = pipeline_config.alarm.threshold
    known = {e["executionArn"] for e in stack.executions()}

    # when a labeled batch from recalibrated sensors arrives
    drifted = _measure(stack, batches[1], "recalibrated-1.csv")

    # then the champion's measured quality is below the threshold and the alarm goes to ALARM
    assert drifted["champion_version"] == first
    assert drifted["value"] < threshold
    assert drifted["drift"]["drifted_share"] > 0
    assert stack.wait_for_alarm_state("ALARM", timeout=120)["StateValue"] == "ALARM"

    # and EventBridge starts a retraining execution (reason: alarm) that promotes a new champion
    execution = stack.wait_for_new_execution(known, timeout=120)
    described = stack.wait_for_execution(execution["executionArn"], timeout=600)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["input"])["reason"] == "alarm"
    model = stack.http("GET", "model").body
    assert model["model_version"] != first
    assert model["promotion_reason"] == "alarm"

    # when the next drifted batch arrives, in a later alarm period
    period = int(stack.alarm()["Period"])
    time.sleep(period - time.time() % period + 0.5)  # a new alarm period: CloudWatch averages within a period
    recovered = _measure(stack, batches[2], "recalibrated-2.csv")

    # then the new champion measures above the threshold on it, and the alarm is back to OK
    assert recovered["champion_version"] == model["model_version"]
    assert recovered["value"] >= threshold
    assert stack.wait_for_alarm_state("OK", timeout=120)["StateValue"] == "OK"


def test_five_alarm_events_within_a_second_yield_one_training_run(start_stack: Callable[..., StackClient],
                                                                  batches: list[Any]) -> None:
    # given a stack with a champion, a new labeled batch since (measured: no alarm), and the alarm's ARN
    stack = start_stack()
    _first_champion(stack, batches[0])
    assert _measure(stack, batches[3], "fresh.csv")["value"] >= stack.alarm()["Threshold"]
    alarm = stack.alarm()
    models_before = {k.split("/")[1] for k in stack.keys(MODELS_PREFIX)}
    known = {e["executionArn"] for e in stack.executions()}
    events = stack.client("events")

    # when five "CloudWatch Alarm State Change" events to ALARM arrive within a second
    started = time.monotonic()
    for index in range(5):
        detail = {"alarmName": alarm["AlarmName"], "state": {"value": "ALARM", "reason": f"test {index}",
                  "timestamp": datetime.now(UTC).isoformat()}, "previousState": {"value": "OK"}}
        entry = {"Source": "aws.cloudwatch", "DetailType": "CloudWatch Alarm State Change",
                 "Resources": [alarm["AlarmArn"]], "Detail": json.dumps(detail)}
        response = events.put_events(Entries=[entry])
        assert response["FailedEntryCount"] == 0
    assert time.monotonic() - started < 1.0

    # then the rule starts an execution per event, exactly one of them trains on the new window, and the others
    # stand aside (still running, or already trained on exactly this data)
    deadline = time.monotonic() + 120
    while len(new := [e for e in stack.executions() if e["executionArn"] not in known]) < 5:
        assert time.monotonic() < deadline, f"only {len(new)} executions started"
        time.sleep(0.5)
    outcomes = [stack.wait_for_execution(e["executionArn"], timeout=600) for e in new]
    assert all(o["status"] == "SUCCEEDED" for o in outcomes)
    paths = [stack.entered_states(e["executionArn"]) for e in new]
    trained = [p for p in paths if "Evaluate challenger and champion" in p]
    skipped = [p for p in paths if p[-1].startswith("Skipped:")]
    assert len(trained) == 1
    assert len(skipped) == 4
    models_after = {k.split("/")[1] for k in stack.keys(MODELS_PREFIX)}
    assert len(models_after - models_before) == 1


def test_a_challenger_below_the_gate_is_rejected_with_its_reason(start_stack: Callable[..., StackClient],
                                                                batches: list[Any], local_stack_config_path: Path,
                                                                tmp_path: Path) -> None:
    # given a pipeline whose gate no model can pass
    config = yaml.safe_load(local_stack_config_path.read_text())
    config["gate"]["threshold"] = 0.9999
    path = tmp_path / "strict.yaml"
    path.write_text(yaml.safe_dump(config))
    stack = start_stack(path)

    # when the first upload is trained
    stack.upload_csv(batches[0], "initial.csv")
    execution = stack.wait_for_new_execution(set(), timeout=180)
    described = stack.wait_for_execution(execution["executionArn"], timeout=600)

    # then the run ends as rejected, nothing is promoted, and the evaluation says why
    assert described["status"] == "SUCCEEDED"
    assert stack.entered_states(execution["executionArn"])[-1] == "Challenger rejected"
    assert stack.keys(REGISTRY_PREFIX) == []
    [evaluation_key] = [k for k in stack.keys(MODELS_PREFIX) if k.endswith("evaluation.json")]
    evaluation = stack.read_json(evaluation_key)
    assert evaluation["promote"] is False
    assert "does not meet the gate threshold 0.9999" in evaluation["reasons"][0]
    assert stack.http("GET", "model").status == 503
