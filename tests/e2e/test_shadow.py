"""Shadow (`gate.shadow`): a challenger that passes the gate runs next to the champion on live traffic (its answers
captured, never returned) and is promoted only if it beats the champion on live labeled rows; one stack, a
worse challenger rejected from shadow, then a better one promoted from it, then one a person promotes by hand and
one a person rejects by hand."""

from __future__ import annotations

import gzip
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from loopline.cli import main
from loopline.client import StackClient
from loopline.examples import TARGET, breast_cancer, split_batches
from loopline_runtime.bucket_layout import (
    CAPTURE_PREDICTIONS_PREFIX,
    CHAMPION_KEY,
    DATASET_INDEX_PREFIX,
    SHADOW_KEY,
    TRAINING_LEASE_KEY,
    model_prefix,
)
from loopline_runtime.config import MAX_SHADOW_CHECKS
from tests.support.notifications import Inbox

pytestmark = pytest.mark.e2e

MIN_ROWS = 20


def _loopline(stack: StackClient, *args: str) -> int:
    return main([*args, "--stack-name", stack.stack_name, "--endpoint-url", stack.s3.meta.endpoint_url])


@pytest.fixture(scope="module")
def frames() -> list[pd.DataFrame]:
    return split_batches(breast_cancer(), [150, 120, 120, 120, 60])


@pytest.fixture(scope="module")
def stack(start_stack: Callable[..., StackClient], local_stack_config_path: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    """gate.shadow checked every 2 s; every challenger passes the holdout gate (gate.tolerance 1.0) so the live
    labels alone decide; an alarm line no live batch here reaches (the labels would otherwise retrain)."""
    config = yaml.safe_load(local_stack_config_path.read_text())
    config["gate"].update(tolerance=1.0, shadow={"min_rows": MIN_ROWS, "max_days": 0.02, "check_seconds": 2})
    config["alarm"] = {**config["alarm"], "max_drop": 0.9, "threshold": None}
    path = tmp_path_factory.mktemp("shadow") / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    yield start_stack(path)


@pytest.fixture(scope="module")
def inbox(stack: StackClient) -> Inbox:
    return Inbox(stack)


def _dataset_versions(stack: StackClient) -> int:
    return len(stack.keys(DATASET_INDEX_PREFIX))


def _new_challenger_in_shadow(stack: StackClient, batch: pd.DataFrame, name: str) -> tuple[str, str]:
    """Upload `batch` (measured: a champion serves), train on it by hand, and wait for its challenger to run in
    shadow; (execution ARN, challenger version)."""
    before = _dataset_versions(stack)
    stack.upload_csv(batch, f"{name}.csv")
    deadline = time.monotonic() + 120
    while _dataset_versions(stack) <= before and time.monotonic() < deadline:
        time.sleep(0.5)
    execution_arn = stack.sfn.start_execution(stateMachineArn=stack.state_machine_arn,
                                              name=f"manual-{name}-{uuid.uuid4().hex[:6]}",
                                              input=json.dumps({"reason": "manual"}))["executionArn"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        shadow = stack.read_json(SHADOW_KEY) if stack.keys(SHADOW_KEY) else {}
        if shadow.get("status") == "active" and shadow.get("execution_arn") == execution_arn:
            time.sleep(6)  # the predict function looks for a new shadow every CHAMPION_CHECK_SECONDS (5)
            return execution_arn, str(shadow["version"])
        described = stack.sfn.describe_execution(executionArn=execution_arn)
        assert described["status"] == "RUNNING", (described, stack.entered_states(execution_arn))
        time.sleep(0.5)
    raise TimeoutError(f"{execution_arn} put no challenger in shadow")


def _probes(frame: pd.DataFrame, count: int = 150) -> list[dict[str, Any]]:
    """Live requests between a benign and a malignant case, where two models' decision boundaries differ."""
    features = frame.drop(columns=[TARGET])
    benign = features[frame[TARGET] == "benign"].to_numpy()
    malignant = features[frame[TARGET] == "malignant"].to_numpy()
    steps = np.linspace(0.3, 0.7, 30)
    rows = [benign[i] + t * (malignant[i] - benign[i]) for i in range(count // len(steps)) for t in steps]
    return [dict(zip(features.columns, (float(v) for v in row), strict=True)) for row in rows]


def _serve(stack: StackClient, records: list[dict[str, Any]], champion: str) -> dict[str, dict[str, Any]]:
    """Predict `records` (the champion answers), then the capture record of each (with the shadow's answer)."""
    response = stack.predict(records)
    assert response.status == 200, response.text
    assert response.body["model_version"] == champion  # the shadow never answers
    ids = list(response.body["prediction_ids"])
    deadline = time.monotonic() + 90
    while True:
        captured = {}
        for key in stack.keys(CAPTURE_PREDICTIONS_PREFIX):
            body = stack.s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()
            for line in gzip.decompress(body).decode().splitlines():
                record = json.loads(line)
                captured[record["prediction_id"]] = record
        if set(ids) <= set(captured) or time.monotonic() > deadline:
            assert set(ids) <= set(captured), f"{len(set(ids) - set(captured))} of {len(ids)} not captured"
            return {i: captured[i] for i in ids}
        time.sleep(0.5)


def _upload_labels(stack: StackClient, captured: dict[str, dict[str, Any]], who: str, name: str) -> None:
    """Labels saying that `who` ("champion" or "shadow") was right on every live row."""
    labels = [record["prediction"] if who == "champion" else record["shadow"]["prediction"]
              for record in captured.values()]
    stack.upload_csv(pd.DataFrame({"request_id": list(captured), TARGET: labels}), f"labels/{name}.csv")


def _disagreements(captured: dict[str, dict[str, Any]]) -> int:
    return sum(r["prediction"] != r["shadow"]["prediction"] for r in captured.values())


def test_a_challenger_worse_on_live_labels_is_rejected_from_shadow(
        stack: StackClient, frames: list[pd.DataFrame], inbox: Inbox) -> None:
    # given a champion, and a challenger that passed the gate now in shadow, its execution not holding the lease
    stack.upload_csv(frames[0], "first.csv")
    first_run = stack.wait_for_new_execution(set(), timeout=180)
    assert stack.wait_for_execution(first_run["executionArn"], timeout=600)["status"] == "SUCCEEDED"
    champion = stack.read_json(CHAMPION_KEY)["version"]
    execution_arn, challenger = _new_challenger_in_shadow(stack, frames[1], "second")
    assert stack.read_json(TRAINING_LEASE_KEY)["execution_arn"] == ""
    assert inbox.wait_for("shadow_started", timeout=30)["message"]["model_version"] == challenger

    # when live requests are answered by the champion, both answers are captured, and the labels say the
    # champion was right on every one of them
    captured = _serve(stack, _probes(frames[3]), champion)
    assert {r["shadow"]["model_version"] for r in captured.values()} == {challenger}
    assert _disagreements(captured) > 0, "the probes should find rows the two models answer differently"
    _upload_labels(stack, captured, "champion", "champion-right")

    # then the shadow is rejected on those live rows, with both scores and the reason on record and notified
    described = stack.wait_for_execution(execution_arn, timeout=180)
    assert (described["status"], stack.entered_states(execution_arn)[-1]) == ("SUCCEEDED", "Challenger rejected")
    assert stack.read_json(CHAMPION_KEY)["version"] == champion
    evaluation = stack.read_json(model_prefix(challenger) + "evaluation.json")
    shadow = evaluation["shadow"]
    assert evaluation["promote"] is False and shadow["status"] == "rejected", evaluation
    assert shadow["rows"] == len(captured) and shadow["decided_by"] == "live labels"
    assert shadow["champion_live_score"] == 1.0 > shadow["shadow_live_score"]
    assert any("not promoted" in reason for reason in evaluation["reasons"])
    rejected = inbox.wait_for("rejected", timeout=30, where=lambda m: m.get("model_version") == challenger)
    assert rejected["message"]["shadow"]["shadow_live_score"] == shadow["shadow_live_score"]
    assert stack.read_json(SHADOW_KEY)["status"] == "rejected"
    # and each check of the wait fits the history budget gate.shadow's bound on checks assumes
    history = stack.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    checks = [e["id"] for e in history if (e.get("stateEnteredEventDetails") or {}).get("name") == "Check shadow"]
    per_check = (checks[-1] - checks[0]) / (len(checks) - 1)  # events from one check to the next
    assert len(checks) >= 2 and per_check * MAX_SHADOW_CHECKS <= 25_000, (per_check, len(checks))


def test_a_challenger_better_on_live_labels_is_promoted_from_shadow(
        stack: StackClient, frames: list[pd.DataFrame], inbox: Inbox, capsys: pytest.CaptureFixture[str]) -> None:
    # given a challenger in shadow, and `loopline status` / `loopline models` showing it
    champion = stack.read_json(CHAMPION_KEY)["version"]
    execution_arn, challenger = _new_challenger_in_shadow(stack, frames[2], "third")
    assert _loopline(stack, "status") == 0 and _loopline(stack, "models") == 0
    shown = capsys.readouterr().out
    assert re.search(rf"Shadow +{challenger} in shadow next to {champion} .*0 of {MIN_ROWS} live labeled rows",
                     shown), shown
    assert f"promote-now {challenger}" in shown and f"{challenger}" in shown and "passed; in shadow since" in shown

    # when the labels of live requests say the shadow was right on every one
    captured = _serve(stack, _probes(frames[3].iloc[::-1].reset_index(drop=True)), champion)
    _upload_labels(stack, captured, "shadow", "shadow-right")

    # then it is promoted from shadow, serves, and the promotion carries both live scores
    described = stack.wait_for_execution(execution_arn, timeout=180)
    assert (described["status"], stack.entered_states(execution_arn)[-1]) == ("SUCCEEDED", "Promoted")
    pointer = stack.read_json(CHAMPION_KEY)
    assert (pointer["version"], pointer["previous_version"]) == (challenger, champion)
    assert pointer["shadow"]["status"] == "promoted" and pointer["shadow"]["shadow_live_score"] == 1.0
    assert pointer["shadow"]["champion_live_score"] <= 1.0
    promoted = inbox.wait_for("promoted", timeout=30, where=lambda m: m.get("model_version") == challenger)
    assert promoted["message"]["shadow"]["rows"] == len(captured)
    time.sleep(6)
    assert stack.http("GET", "model").body["model_version"] == challenger
    assert _loopline(stack, "models") == 0
    assert "promoted from shadow by live labels" in capsys.readouterr().out


def test_promote_now_ends_a_shadow_by_hand_recorded_with_who(
        stack: StackClient, frames: list[pd.DataFrame], capsys: pytest.CaptureFixture[str]) -> None:
    # given a challenger in shadow with no live labels yet
    champion = stack.read_json(CHAMPION_KEY)["version"]
    execution_arn, challenger = _new_challenger_in_shadow(stack, frames[3], "fourth")

    # when a person promotes it now
    assert _loopline(stack, "promote-now", challenger, "--reason", "urgent fix") == 0
    assert f"{challenger}: promoted from shadow by " in capsys.readouterr().out

    # then it is promoted, with who and why on its evaluation and on the promotion record
    described = stack.wait_for_execution(execution_arn, timeout=120)
    assert (described["status"], stack.entered_states(execution_arn)[-1]) == ("SUCCEEDED", "Promoted")
    pointer = stack.read_json(CHAMPION_KEY)
    assert (pointer["version"], pointer["previous_version"]) == (challenger, champion)
    shadow = stack.read_json(model_prefix(challenger) + "evaluation.json")["shadow"]
    assert shadow["decided_by"] == pointer["shadow"]["decided_by"] != "live labels"
    assert shadow["rows"] == 0 and shadow["reasons"] == [f"promoted from shadow by {shadow['decided_by']}: urgent fix"]


def test_reject_ends_a_shadow_by_hand_and_the_champion_keeps_serving(
        stack: StackClient, frames: list[pd.DataFrame], capsys: pytest.CaptureFixture[str]) -> None:
    # given a challenger in shadow
    champion = stack.read_json(CHAMPION_KEY)["version"]
    execution_arn, challenger = _new_challenger_in_shadow(stack, frames[4], "fifth")

    # when a person rejects it
    assert _loopline(stack, "reject", challenger, "--reason", "too slow in shadow") == 0
    assert f"{challenger}: rejected from shadow by " in capsys.readouterr().out

    # then it is rejected with who and why, and the champion is unchanged
    described = stack.wait_for_execution(execution_arn, timeout=120)
    assert (described["status"], stack.entered_states(execution_arn)[-1]) == ("SUCCEEDED", "Challenger rejected")
    assert stack.read_json(CHAMPION_KEY)["version"] == champion
    evaluation = stack.read_json(model_prefix(challenger) + "evaluation.json")
    assert evaluation["promote"] is False and evaluation["shadow"]["status"] == "rejected"
    by = evaluation["shadow"]["decided_by"]
    assert by != "live labels" and evaluation["reasons"][-1] == f"rejected from shadow by {by}: too slow in shadow"
