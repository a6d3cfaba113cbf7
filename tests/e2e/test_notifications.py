"""Notifications on the stack's SNS topic, received the way a user's integration receives them: an SQS queue
subscribed to NotificationTopicArn. One message per event, a small JSON document with a readable subject."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from loopline.client import StackClient
from loopline.examples import TARGET, breast_cancer, split_batches
from loopline.score_command import follow, submit
from tests.support.notifications import Inbox

pytestmark = pytest.mark.e2e


def _config(local_stack_config_path: Path, folder: Path, name: str, **gate: Any) -> Path:
    config = yaml.safe_load(local_stack_config_path.read_text())
    config["gate"].update(gate)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_promoted_and_alarm_notifications(start_stack: Callable[..., StackClient], tmp_path: Path) -> None:
    # given a stack and an inbox subscribed to its topic
    stack = start_stack()
    inbox = Inbox(stack)

    # when the first upload is trained and promoted
    initial, _ = split_batches(breast_cancer(), [250, 100])
    stack.upload_csv(initial, "initial.csv")
    promoted = inbox.wait_for("promoted")

    # then one small JSON message names the model, its score and why, under a readable subject
    champion = stack.read_json("registry/champion.json")
    assert promoted["subject"] == f"Loopline breast-cancer: {champion['version']} promoted (new_data)"
    assert promoted["message"]["model_version"] == champion["version"]
    assert promoted["message"]["score"] == champion["score"]
    assert len(json.dumps(promoted["message"])) < 1024

    # when the quality alarm changes state, and back
    alarm = stack.alarm()
    stack.cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue="ALARM", StateReason="test: drift")
    fired = inbox.wait_for("alarm_alarm")
    stack.cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue="OK", StateReason="test: recovered")
    recovered = inbox.wait_for("alarm_ok")

    # then each change is one message, CloudWatch's own, with the alarm's name in the subject
    assert fired["subject"].startswith(f'ALARM: "{alarm["AlarmName"]}"')
    assert fired["message"]["NewStateReason"] == "test: drift"
    assert recovered["subject"].startswith(f'OK: "{alarm["AlarmName"]}"')
    assert recovered["message"]["OldStateValue"] == "ALARM"

    # when a file is scored in batch
    rows = breast_cancer().drop(columns=[TARGET]).head(30)
    rows.to_csv(tmp_path / "to-score.csv", index=False)
    _, candidates = submit(stack, tmp_path / "to-score.csv", chunk_rows=10)
    summary = follow(stack, candidates, timeout=300)

    # then one message says it finished, with the row count, the output and the model that scored it
    finished = inbox.wait_for("batch_scoring_finished")
    assert finished["subject"] == "Loopline breast-cancer: batch scoring complete, 30 rows"
    assert finished["message"]["output"] == f"predictions/{summary['run_id']}/summary.json"
    assert finished["message"]["model_version"] == champion["version"] == summary["model_version"]
    assert finished["message"]["execution_arn"].endswith(summary["run_id"])


def test_rejected_and_training_failed_notifications(start_stack: Callable[..., StackClient],
                                                    local_stack_config_path: Path, tmp_path: Path) -> None:
    # given a stack whose gate no model passes, and an inbox
    stack = start_stack(_config(local_stack_config_path, tmp_path, "strict", threshold=0.9999))
    inbox = Inbox(stack)

    # when training starts with no data at all
    stack.sfn.start_execution(stateMachineArn=stack.state_machine_arn, name="manual-no-data",
                              input=json.dumps({"reason": "manual"}))
    failed = inbox.wait_for("training_failed")

    # then the failure says where and why
    assert failed["subject"] == "Loopline breast-cancer: training failed at the train step"
    assert failed["message"]["step"] == "train"
    assert failed["message"]["error"]
    assert "dataset" in failed["message"]["cause"].lower()

    # when an upload is trained and misses the gate
    initial, _ = split_batches(breast_cancer(), [250, 100])
    stack.upload_csv(initial, "initial.csv")
    rejected = inbox.wait_for("rejected")

    # then the rejection carries the gate's reasons
    version = rejected["message"]["model_version"]
    assert rejected["subject"] == f"Loopline breast-cancer: challenger {version} rejected"
    assert any("does not meet the gate threshold 0.9999" in r for r in rejected["message"]["reasons"])
    assert rejected["message"]["reasons"] == stack.read_json(f"models/{version}/evaluation.json")["reasons"]
