"""Faults of the loop itself: a rejected retraining followed by another bad batch, alarm events and uploads
arriving at once, two promotions racing. The gate here rejects every challenger (threshold 0.999), so the
champion is one promoted under an earlier, laxer gate."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from faults_support import REPO_ROOT, Loop, assert_invariant

from loopline_runtime.bucket_layout import MODELS_PREFIX
from loopline_runtime.datasets import version_for
from loopline_runtime.orchestration import execution_name
from tests.support.bucket_policy import remove_bucket_policy


@pytest.fixture(scope="module")
def fault_config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pipeline.yaml with a tiny model search and a gate no challenger passes."""
    data = yaml.safe_load((REPO_ROOT / "pipeline.yaml").read_text(encoding="utf-8"))
    data["training"]["time_budget_seconds"] = 5
    data["models"] = [{"name": "linear", "params": {"C": [1.0]}}]
    data["gate"]["threshold"] = 0.999
    path = tmp_path_factory.mktemp("strict-gate") / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _approve_and_promote(loop: Loop, version: str, expected_etag: str | None) -> dict[str, Any]:
    """Mark a rejected challenger as passed (an earlier, laxer gate) and promote it through the promote action."""
    remove_bucket_policy(loop.client)  # writing the gate's record by hand: the policy reserves models/ to the roles
    key = loop.registry.prefix(version) + "evaluation.json"
    loop.store.put_json(key, {**loop.store.get_json(key), "passes_gate": True, "beats_champion": True,
                              "promote": True, "reasons": ["passed an earlier gate"]})
    event = {"action": "promote", "version": version, "previous_version": loop.registry.champion_version(),
             "expected_etag": expected_etag, "metric": "f1", "score": 0.95,
             "promoted_at": datetime.now(UTC).isoformat(), "execution_arn": "manual", "reason": "test",
             "pins": loop.registry.pins(version)}
    response = loop.client.client("lambda").invoke(FunctionName=loop.function_names["EvaluateFunction"],
                                                   Payload=json.dumps(event).encode())
    return {"error": response.get("FunctionError"), "payload": json.loads(response["Payload"].read())}


def _challengers(loop: Loop) -> list[str]:
    keys = loop.store.list_keys(f"{MODELS_PREFIX}m-")
    return sorted({k.split("/")[1] for k in keys if k.endswith("evaluation.json")})


@pytest.fixture(scope="module")
def champion(loop: Loop, cancer_batches: dict[str, pd.DataFrame]) -> Iterator[str]:
    key = loop.upload(cancer_batches["first"], "first.csv")
    assert loop.wait_for_upload(key) == "dataset"
    loop.wait_for(lambda: _challengers(loop), timeout=300, what="the first challenger's gate decision")
    loop.settled()
    (version,) = _challengers(loop)
    assert _approve_and_promote(loop, version, None)["error"] is None
    yield version


def test_a_rejected_retraining_followed_by_another_bad_batch_trains_again(
        loop: Loop, champion: str, cancer_batches: dict[str, pd.DataFrame]) -> None:
    # given a bad batch that puts the alarm in ALARM, and the retraining it starts rejected by the gate
    loop.upload(cancer_batches["drift_a"], "drifted-a.csv")
    assert loop.client.wait_for_alarm_state("ALARM", timeout=120)["StateValue"] == "ALARM"
    first = loop.wait_for(lambda: [e for e in loop.client.executions() if e["name"].startswith("events-")],
                          what="the alarm's retraining")[0]
    assert loop.client.wait_for_execution(first["executionArn"], timeout=300)["status"] == "SUCCEEDED"
    assert loop.client.entered_states(first["executionArn"])[-1] == "Challenger rejected"

    # when another bad batch arrives while the alarm stays in ALARM (no new state-change event)
    key = loop.upload(cancer_batches["drift_b"], "drifted-b.csv")
    version = version_for(loop.store.get_bytes(key))

    # then its measurement starts a retraining on the new data, which the gate judges (and records why)
    name = execution_name("alarm_persists", version)
    again = loop.wait_for(lambda: [e for e in loop.client.executions() if e["name"] == name],
                          what="a retraining for the second bad batch")[0]
    assert loop.client.wait_for_execution(again["executionArn"], timeout=300)["status"] == "SUCCEEDED"
    states = loop.client.entered_states(again["executionArn"])
    assert "Evaluate challenger and champion" in states and states[-1] == "Challenger rejected"
    newest = _challengers(loop)[-1]
    assert "does not meet the gate threshold 0.999" in \
        loop.store.get_json(loop.registry.prefix(newest) + "evaluation.json")["reasons"][0]
    assert loop.registry.champion_version() == champion
    assert_invariant(loop)


def test_five_alarm_events_and_two_uploads_at_once_train_one_run_at_a_time(
        loop: Loop, champion: str, cancer_batches: dict[str, pd.DataFrame]) -> None:
    # given a quiet stack and the quality alarm
    loop.settled()
    alarm = loop.client.alarm()
    known = {e["executionArn"] for e in loop.client.executions()}
    events = loop.client.client("events")

    def alarm_event(index: int) -> None:
        detail = {"alarmName": alarm["AlarmName"], "state": {"value": "ALARM", "reason": f"test {index}"},
                  "previousState": {"value": "OK"}}
        events.put_events(Entries=[{"Source": "aws.cloudwatch", "DetailType": "CloudWatch Alarm State Change",
                                    "Resources": [alarm["AlarmArn"]], "Detail": json.dumps(detail)}])

    # when five alarm events and two uploads arrive at once
    senders = [threading.Thread(target=alarm_event, args=(i,)) for i in range(5)]
    keys: list[str] = []
    senders += [threading.Thread(target=lambda n=n: keys.append(loop.upload(cancer_batches[n], f"{n}.csv")))
                for n in ("fresh_a", "fresh_b")]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()

    # then both uploads become dataset versions
    for key in keys:
        assert loop.wait_for_upload(key) == "dataset"
    # and the alarm's five executions end, no two of them training at the same time: each one trains, or stands
    # aside (another holds the lease, or the gate already decided on this data)
    new = loop.wait_for(lambda: len(n := [e for e in loop.client.executions() if e["executionArn"] not in known])
                        >= 5 and n, what="five executions")
    described = [loop.client.wait_for_execution(e["executionArn"], timeout=300) for e in new]
    assert all(d["status"] == "SUCCEEDED" for d in described)
    paths = {d["executionArn"]: loop.client.entered_states(d["executionArn"]) for d in described}
    trained = sorted((d["startDate"], d["stopDate"]) for d in described
                     if "Evaluate challenger and champion" in paths[d["executionArn"]])
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(trained))
    assert all(p[-1].startswith("Skipped:") for p in paths.values() if "Evaluate challenger and champion" not in p)
    assert_invariant(loop)


def test_two_promotions_racing_move_the_pointer_once(loop: Loop, champion: str) -> None:
    # given two gated challengers, both compared against the current champion (same pointer ETag)
    loop.settled()
    first, second = [v for v in _challengers(loop) if v != champion][-2:]
    _, etag = loop.registry.champion_pointer_and_etag()
    results: dict[str, dict[str, Any]] = {}

    # when both promotions run at the same moment
    racers = [threading.Thread(target=lambda v=v: results.__setitem__(v, _approve_and_promote(loop, v, etag)))
              for v in (first, second)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()

    # then exactly one moved the pointer; the other was turned down because the champion changed
    winners = [v for v, r in results.items() if r["error"] is None]
    losers = [r["payload"] for r in results.values() if r["error"] is not None]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0]["errorType"] == "ChampionChanged"
    assert "the champion changed during evaluation" in losers[0]["errorMessage"]
    assert loop.registry.champion_version() == winners[0]
    time.sleep(0.5)
    assert_invariant(loop)
