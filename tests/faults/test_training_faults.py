"""Faults in the training state machine (train, gate, promote): the run fails or stands aside, the champion stays a
verified model, and the next trigger trains (nothing is marked done that was not)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from faults_support import CRASH, TIMEOUT, Loop, assert_invariant, failing_writes

from loopline_runtime.bucket_layout import (
    CHAMPION_KEY,
    FINGERPRINT_PREFIX,
    HISTORY_PREFIX,
    MODELS_PREFIX,
    TRAINED_PREFIX,
    TRAINING_LEASE_KEY,
)
from loopline_runtime.config import GateConfig
from loopline_runtime.registry import ModelRegistry


@pytest.fixture(scope="module")
def first_champion(loop: Loop, cancer_batches: dict[str, pd.DataFrame]) -> str:
    key = loop.upload(cancer_batches["first"], "first.csv")
    assert loop.wait_for_upload(key) == "dataset"
    loop.wait_for(lambda: loop.registry.champion_version(), timeout=300, what="the first champion")
    loop.settled()
    return str(loop.registry.champion_version())


def _retrain(loop: Loop, name: str) -> dict[str, Any]:
    """Start a training run as an alarm would; return its described execution once it ended."""
    arn = loop.client.sfn.start_execution(stateMachineArn=loop.client.state_machine_arn, name=name,
                                          input=json.dumps({"reason": "alarm"}))["executionArn"]
    return dict(loop.client.wait_for_execution(arn, timeout=300))


def _new_data(loop: Loop, batches: dict[str, pd.DataFrame], tag: int) -> None:
    """A new labeled batch, so a retraining has something new to train on (its own fingerprint)."""
    key = loop.upload(batches["rest"].drop(index=list(range(tag, tag + 3))).reset_index(drop=True), f"new-{tag}.csv")
    assert loop.wait_for_upload(key) == "dataset"
    loop.settled()


@pytest.mark.parametrize(("write", "tag"), [
    pytest.param(lambda key: key.endswith("/holdout.csv"), 0, id="train-holdout"),
    pytest.param(lambda key: key.endswith("/model.joblib"), 4, id="train-artifact"),
    pytest.param(lambda key: key.startswith(f"{MODELS_PREFIX}m-") and key.endswith("/manifest.json"), 8,
                 id="train-manifest"),
    pytest.param(lambda key: key.startswith(TRAINED_PREFIX), 12, id="train-challenger-marker"),
    pytest.param(lambda key: key == TRAINING_LEASE_KEY, 16, id="train-lease"),
    pytest.param(lambda key: key.endswith("/evaluation.json"), 20, id="gate-evaluation"),
    pytest.param(lambda key: key.startswith(FINGERPRINT_PREFIX), 24, id="gate-fingerprint"),
])
def test_a_failed_write_in_train_or_gate_fails_the_run_and_the_next_trigger_trains(
        loop: Loop, first_champion: str, cancer_batches: dict[str, pd.DataFrame], write: Any, tag: int) -> None:
    # given new data since the champion, and one write of the training run failing
    _new_data(loop, cancer_batches, tag)
    champion = loop.registry.champion_version()

    # when a retraining runs
    with failing_writes(write, times=10**6) as hit:
        failed = _retrain(loop, f"fault-{tag}")

    # then it fails without touching the champion, and nothing says this data was trained on
    assert hit
    assert failed["status"] == "FAILED"
    assert loop.registry.champion_version() == champion
    assert_invariant(loop)
    # and the next trigger trains (or gates the challenger the failed run left) to a decision
    retried = _retrain(loop, f"fault-{tag}-again")
    assert retried["status"] == "SUCCEEDED"
    assert loop.client.entered_states(retried["executionArn"])[-1] in {"Promoted", "Challenger rejected"}
    assert "Evaluate challenger and champion" in loop.client.entered_states(retried["executionArn"])
    assert_invariant(loop)


@pytest.mark.parametrize(("write", "tag"), [
    pytest.param(lambda key: key == CHAMPION_KEY, 28, id="promote-pointer"),
    pytest.param(lambda key: key.startswith(HISTORY_PREFIX), 32, id="promote-history"),
])
def test_a_failed_promotion_write_is_retried_and_the_champion_stays_verified(
        loop: Loop, first_champion: str, cancer_batches: dict[str, pd.DataFrame], write: Any, tag: int) -> None:
    # given new data, and the promotion's pointer (or history) write failing once
    _new_data(loop, cancer_batches, tag)

    # when a retraining runs and passes the gate
    with failing_writes(write) as hit:
        described = _retrain(loop, f"promote-{tag}")

    # then the promote step's retry finishes it: one pointer move, one history record
    assert hit and described["status"] == "SUCCEEDED"
    states = loop.client.entered_states(described["executionArn"])
    if states[-1] == "Promoted":
        version = loop.registry.champion_version()
        assert [h["version"] for h in loop.registry.history()].count(version) == 1
    assert_invariant(loop)


@pytest.mark.parametrize("answer", [CRASH, TIMEOUT])
@pytest.mark.parametrize("function", ["TrainFunction", "EvaluateFunction"])
def test_a_crash_or_timeout_in_training_fails_the_run_and_the_next_trigger_finishes_it(
        loop: Loop, first_champion: str, cancer_batches: dict[str, pd.DataFrame], function: str,
        answer: str) -> None:
    # given new data, and the function crashing (or timing out) on its next invocation in the state machine
    tag = 36 + 4 * ["TrainFunction", "EvaluateFunction"].index(function) + 2 * [CRASH, TIMEOUT].index(answer)
    _new_data(loop, cancer_batches, tag)
    champion = loop.registry.champion_version()
    loop.answer_next(function, answer)

    # when a retraining runs
    failed = _retrain(loop, f"{function}-{answer}-{tag}")

    # then the run fails (Training failed / Evaluation failed), the champion is untouched
    assert failed["status"] == "FAILED"
    assert loop.registry.champion_version() == champion
    assert_invariant(loop)
    # and the next trigger trains or gates the challenger left behind, to a decision
    retried = _retrain(loop, f"{function}-{answer}-{tag}-again")
    assert retried["status"] == "SUCCEEDED"
    assert "Evaluate challenger and champion" in loop.client.entered_states(retried["executionArn"])
    assert_invariant(loop)


def test_the_predict_function_crashing_serves_an_error_and_the_champion_stays(loop: Loop, first_champion: str,
                                                                             cancer_batches: dict[str, Any]) -> None:
    # given the predict function crashing on its next invocation
    record = cancer_batches["rest"].drop(columns=[loop.config.target]).iloc[:1].to_dict(orient="records")
    loop.answer_next("PredictFunction", CRASH)

    # when a client asks for a prediction, twice
    failed, served = loop.client.predict(record), loop.client.predict(record)

    # then the crash is a 502 (API Gateway's answer to a broken integration) and the next request is served
    assert failed.status == 502
    assert served.status == 200 and served.body["model_version"] == loop.registry.champion_version()
    assert_invariant(loop)


def test_a_monitoring_request_failing_every_attempt_ends_in_the_on_failure_queue(
        loop: Loop, first_champion: str, cancer_batches: dict[str, pd.DataFrame]) -> None:
    # given the monitor function crashing on three invocations in a row
    loop.answer_next("MonitorFunction", CRASH, CRASH, CRASH)

    # when a new labeled batch asks for the champion to be measured
    key = loop.upload(cancer_batches["fresh_a"], "fresh.csv")
    assert loop.wait_for_upload(key) == "dataset"

    # then the monitoring request is kept in the on-failure queue (EvaluateFailureQueue) with the batch it was for
    records = loop.wait_for(lambda: loop.failure_messages("EvaluateFailureQueueUrl"), what="a failure record")
    assert records[0]["requestPayload"]["action"] == "monitor"
    assert records[0]["responsePayload"]["errorType"] == "Runtime.ExitError"
    assert_invariant(loop)


def test_a_promotion_that_loses_the_race_ends_in_challenger_rejected(
        loop: Loop, first_champion: str, cancer_batches: dict[str, pd.DataFrame],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # given new data, a gate that passes the challenger, and another promotion (a rollback, an operator) moving
    # the pointer after the gate compared against it and before this run's promotion
    _new_data(loop, cancer_batches, 52)
    evaluate = loop.handler("EvaluateFunction")
    monkeypatch.setattr(evaluate, "config", evaluate.config.model_copy(
        update={"gate": GateConfig(threshold=0.0, tolerance=1.0)}))
    original = ModelRegistry.promote

    def promote_after_another(self: ModelRegistry, record: dict[str, Any], *, expected_etag: str | None) -> Any:
        current = self.champion_pointer()
        assert current is not None
        self.store.put_json(CHAMPION_KEY, {**current, "reason": "moved by another promotion"})
        return original(self, record, expected_etag=expected_etag)

    monkeypatch.setattr(ModelRegistry, "promote", promote_after_another)
    champion = loop.registry.champion_version()

    # when a retraining runs
    described = _retrain(loop, "race-52")

    # then it ends in "Challenger rejected", says why, and the champion is the one the other promotion left
    assert described["status"] == "SUCCEEDED"
    states = loop.client.entered_states(described["executionArn"])
    assert "Promote challenger" in states and states[-1] == "Challenger rejected"
    challenger = json.loads(described["output"])["training"]["model_version"]
    evaluation = loop.store.get_json(loop.registry.prefix(challenger) + "evaluation.json")
    assert evaluation["promote"] is False
    assert "the champion changed during evaluation" in evaluation["reasons"][-1]
    assert loop.registry.champion_version() == champion
    assert_invariant(loop)
