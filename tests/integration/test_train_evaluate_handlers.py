"""Train and evaluate on moto, driven by the events the training state machine sends them."""

from __future__ import annotations

import hashlib
import json
import platform
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import boto3
import pandas as pd
import pytest
import sklearn
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from loopline_runtime.bucket_layout import MODELS_PREFIX, TRAINING_LEASE_KEY, dataset_prefix, model_prefix
from loopline_runtime.compilation import PROBABILITY_TOLERANCE
from loopline_runtime.config import PipelineConfig
from loopline_runtime.errors import ArtifactIntegrityError, InvalidRequest
from loopline_runtime.modeling import build_pipeline
from loopline_runtime.orchestration import acquire_training_lease
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.schema import FeatureSchema
from tests.support.stack import Stack


def _train_event(load_event: Callable[[str], dict[str, Any]], stack: Stack, execution_arn: str) -> dict[str, Any]:
    """The "Train challenger" state's input for a running execution (its Parameters: trigger + ids)."""
    event = load_event("train_task.json")
    execution = boto3.client("stepfunctions").describe_execution(executionArn=execution_arn)
    event["trigger"] = json.loads(execution["input"])
    event["execution_arn"] = execution_arn
    event["state_machine_arn"] = stack.physical_ids["TrainingStateMachine"]
    return event


def _gate_event(load_event: Callable[[str], dict[str, Any]], training: dict[str, Any]) -> dict[str, Any]:
    event = load_event("evaluate_gate_task.json")
    event.update(model_version=training["model_version"], holdout_key=training["holdout_key"])
    return event


@pytest.fixture
def first_training(aws_stack: Stack, ingest: Callable[..., dict[str, Any]], training_rows: pd.DataFrame,
                   load_handler: Callable[[str], Any], load_event: Callable[[str], dict[str, Any]],
                   lambda_context: Any) -> dict[str, Any]:
    """An accepted upload, and the train function run by the execution that upload started."""
    outcome = ingest("incoming/breast-cancer.csv", training_rows)
    train = load_handler("train")
    result = train.lambda_handler(_train_event(load_event, aws_stack, outcome["execution_arn"]), lambda_context)
    return {**result, "dataset_version": outcome["dataset_version"]}


def _paths_read_from(definition: dict[str, Any], result_path: str) -> set[str]:
    """Fields of a task result that later states read (e.g. `$.evaluation.passes_gate` -> passes_gate)."""
    return set(re.findall(re.escape(result_path) + r"\.([A-Za-z_]+)", json.dumps(definition)))


def test_train_registers_a_challenger_with_a_complete_manifest(
    first_training: dict[str, Any], registry: ModelRegistry, config: PipelineConfig,
) -> None:
    # given a challenger trained by the state machine's first task
    version = first_training["model_version"]

    # when its manifest is read from the registry
    manifest = registry.manifest(version)

    # then the artifact's bytes match the recorded sha256
    artifact = registry.store.get_bytes(manifest["artifact"]["key"])
    assert manifest["artifact"]["sha256"] == hashlib.sha256(artifact).hexdigest()
    assert manifest["artifact"]["bytes"] == len(artifact)
    # and it records what it was trained on and with
    assert manifest["dataset_versions"] == [first_training["dataset_version"]]
    assert manifest["libraries"]["python"] == platform.python_version()
    assert manifest["libraries"]["scikit-learn"] == sklearn.__version__
    assert manifest["metric"] == config.metric
    assert manifest["seed"] == config.training.seed
    assert manifest["trigger"]["reason"] == "new_data"
    started, registered = (datetime.fromisoformat(manifest[k]) for k in ("started_at", "registered_at"))
    assert started <= registered
    assert manifest["holdout_key"] == first_training["holdout_key"]
    assert registry.store.exists(first_training["holdout_key"])
    assert manifest["training_rows"] + manifest["holdout_rows"] == registry.store.get_json(
        f"{dataset_prefix(first_training['dataset_version'])}manifest.json")["rows"]
    # and the holdout value of every metric, where the holdout rows come from, and the probabilities' calibration
    assert manifest["holdout_scores"][config.metric] == manifest["holdout_score"]
    assert set(manifest["holdout_scores"]) >= {"accuracy", "f1", "roc_auc", "average_precision"}
    assert manifest["holdout_origins"] == [{"dataset_version": first_training["dataset_version"],
                                            "rows": manifest["holdout_rows"]}]
    assert manifest["calibration"]["classes"] == manifest["classes"]
    assert manifest["calibration"]["holdout_rows"] == manifest["holdout_rows"]
    # and the configured candidate was the one searched
    assert {entry["candidate"] for entry in manifest["leaderboard"]} == {m.name for m in config.models or []}


def test_train_result_carries_what_the_state_machine_reads(
    first_training: dict[str, Any], state_machine_definition: dict[str, Any],
) -> None:
    # given the paths later states read from the train task's result ($.training)
    needed = _paths_read_from(state_machine_definition, "$.training")

    # when / then every one is in the result, and the reason is the execution's
    assert needed <= set(first_training)
    assert first_training["reason"] == "new_data"


def test_train_stands_aside_while_another_execution_holds_the_training_lease(
    aws_stack: Stack, ingest: Callable[..., dict[str, Any]], training_rows: pd.DataFrame,
    load_handler: Callable[[str], Any], load_event: Callable[[str], dict[str, Any]],
    state_machine_definition: dict[str, Any], registry: ModelRegistry, lambda_context: Any,
) -> None:
    # given two running executions (an upload, then an alarm), the first one training (it holds the lease)
    older = ingest("incoming/breast-cancer.csv", training_rows)["execution_arn"]
    sfn = boto3.client("stepfunctions")
    machine = aws_stack.physical_ids["TrainingStateMachine"]
    newer = sfn.start_execution(stateMachineArn=machine, name="alarm-run-1", input=json.dumps({"reason": "alarm"}))
    acquire_training_lease(registry.store, sfn, older)
    train = load_handler("train")

    # when the newer one's train task runs
    with pytest.raises(Exception) as caught:
        train.lambda_handler(_train_event(load_event, aws_stack, newer["executionArn"]), lambda_context)

    # then it fails with an error the state machine catches into a successful "skipped" end (one run at a time)
    states = state_machine_definition["States"]
    catches = states[state_machine_definition["StartAt"]]["Catch"]
    (route,) = [c for c in catches if type(caught.value).__name__ in c["ErrorEquals"]]
    assert states[route["Next"]]["Type"] == "Succeed"
    assert "is still running" in str(caught.value)
    assert registry.store.get_json(TRAINING_LEASE_KEY)["execution_arn"] == older
    assert list(registry.store.list_keys(MODELS_PREFIX)) == [TRAINING_LEASE_KEY]


def test_gate_passes_a_good_first_challenger_and_records_the_decision(
    first_training: dict[str, Any], load_handler: Callable[[str], Any], load_event: Callable[[str], dict[str, Any]],
    registry: ModelRegistry, config: PipelineConfig, state_machine_definition: dict[str, Any], lambda_context: Any,
) -> None:
    # given a challenger and no champion
    evaluate = load_handler("evaluate")

    # when the gate task runs
    decision = evaluate.lambda_handler(_gate_event(load_event, first_training), lambda_context)

    # then it meets the configured threshold and, with no champion, is promotable
    assert decision["metric"] == config.metric
    assert decision["gate_threshold"] == config.gate.threshold
    assert decision["challenger_score"] >= config.gate.threshold
    assert decision["passes_gate"] is True
    assert decision["beats_champion"] is True
    assert decision["champion_version"] is None
    # and the decision is what the Choice and promotion states read, and is kept next to the model
    assert _paths_read_from(state_machine_definition, "$.evaluation") <= set(decision)
    stored = registry.store.get_json(f"{model_prefix(first_training['model_version'])}evaluation.json")
    assert {k: stored[k] for k in decision} == json.loads(json.dumps(decision))
    assert datetime.fromisoformat(stored["evaluated_at"])


def test_a_challenger_worse_than_the_champion_is_not_promoted(
    first_training: dict[str, Any], load_handler: Callable[[str], Any], load_event: Callable[[str], dict[str, Any]],
    registry: ModelRegistry, register_model: Callable[..., str], promote: Callable[[str], Any],
    training_rows: pd.DataFrame, config: PipelineConfig, lambda_context: Any,
) -> None:
    # given the trained model is the champion, and a challenger that always predicts the majority class
    champion = first_training["model_version"]
    promote(champion)
    schema = FeatureSchema.from_dict(registry.manifest(champion)["schema"])
    weak = build_pipeline(schema, DummyClassifier(strategy="most_frequent"))
    weak.fit(training_rows[list(schema.features)], training_rows[config.target])
    challenger = register_model(weak, metric=config.metric)
    evaluate = load_handler("evaluate")

    # when both are scored on the same holdout
    event = _gate_event(load_event, {"model_version": challenger, "holdout_key": first_training["holdout_key"]})
    decision = evaluate.lambda_handler(event, lambda_context)

    # then the champion wins and the challenger is not promoted
    assert decision["champion_version"] == champion
    assert decision["champion_score"] > decision["challenger_score"]
    assert decision["beats_champion"] is False
    assert decision["promote"] is False
    assert any(f"champion {champion} scores" in reason for reason in decision["reasons"])
    assert registry.champion_version() == champion


def test_registry_refuses_a_tampered_artifact(
    first_training: dict[str, Any], registry: ModelRegistry, load_handler: Callable[[str], Any],
    load_event: Callable[[str], dict[str, Any]], lambda_context: Any,
) -> None:
    # given a model whose artifact was replaced after registration: the registry reads the S3 version it
    # registered, so the replacement is ignored
    version = first_training["model_version"]
    manifest = registry.manifest(version)
    registry.store.put_bytes(manifest["artifact"]["key"], b"not the model that was trained")
    assert registry.load(version).version == version
    # and a manifest whose sha256 no longer matches the registered bytes
    registry.store.put_json(registry.prefix(version) + "manifest.json",
                            {**manifest, "artifact": {**manifest["artifact"], "sha256": "0" * 64}})

    # when / then it is never loaded: not by the registry
    with pytest.raises(ArtifactIntegrityError, match=f"model {version} artifact sha256 .* does not match"):
        registry.load(version)
    # and not by the gate (the error type reaches the state machine's Catch)
    evaluate = load_handler("evaluate")
    with pytest.raises(ArtifactIntegrityError):
        evaluate.lambda_handler(_gate_event(load_event, first_training), lambda_context)


def test_evaluate_rejects_an_unknown_action(load_handler: Callable[[str], Any], lambda_context: Any) -> None:
    # given
    evaluate = load_handler("evaluate")

    # when / then
    expected = ("unknown action 'retrain'; expected 'gate', 'promote', 'request_approval', 'reject', 'rollback', "
                "'start_shadow', 'shadow_waiting', 'check_shadow', 'end_shadow' or 'check_canary'")
    with pytest.raises(InvalidRequest, match=re.escape(expected)):
        evaluate.lambda_handler({"action": "retrain"}, lambda_context)


# ---- compile at registration: what serves is what the gate scores

class _Unconvertible(LogisticRegression):
    """A LogisticRegression by another name: skl2onnx converts by type, so this has no converter."""


def test_train_registers_the_compiled_model_with_its_parity_check(
    first_training: dict[str, Any], registry: ModelRegistry,
) -> None:
    # given a challenger trained by the state machine's first task
    manifest = registry.manifest(first_training["model_version"])

    # when its compiled form is read from the registry
    compiled = manifest["compiled"]
    onnx = registry.store.get_bytes(compiled["artifact"]["key"])

    # then it sits next to model.joblib, its bytes match the recorded sha256, and the parity check passed
    assert compiled["artifact"]["key"] == registry.prefix(first_training["model_version"]) + "model.onnx"
    assert compiled["artifact"]["sha256"] == hashlib.sha256(onnx).hexdigest()
    assert compiled["form"] == "onnx"
    assert set(compiled["converter"]) == {"skl2onnx", "onnx", "onnxruntime"}
    parity = compiled["parity"]
    assert parity["passed"] is True
    assert parity["rows"] == manifest["holdout_rows"]
    assert parity["label_mismatches"] == 0
    assert parity["max_probability_diff"] <= parity["tolerance"] == PROBABILITY_TOLERANCE


def test_the_gate_scores_the_compiled_model(
    first_training: dict[str, Any], load_handler: Callable[[str], Any], load_event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    # when the trained challenger is gated
    decision = load_handler("evaluate").lambda_handler(_gate_event(load_event, first_training), lambda_context)

    # then it was scored in the form that would serve
    assert decision["scored_form"] == "onnx"
    assert decision["compiled"]["parity"]["passed"] is True


def test_a_challenger_that_does_not_compile_does_not_pass_the_gate(
    first_training: dict[str, Any], load_handler: Callable[[str], Any], load_event: Callable[[str], dict[str, Any]],
    registry: ModelRegistry, register_model: Callable[..., str], training_rows: pd.DataFrame,
    config: PipelineConfig, lambda_context: Any,
) -> None:
    # given a good challenger that skl2onnx cannot convert
    schema = FeatureSchema.from_dict(registry.manifest(first_training["model_version"])["schema"])
    pipeline = build_pipeline(schema, _Unconvertible(max_iter=1000))
    pipeline.fit(training_rows[list(schema.features)], training_rows[config.target])
    challenger = register_model(pipeline, metric=config.metric)
    assert "artifact" not in registry.manifest(challenger)["compiled"]

    # when it is gated
    event = _gate_event(load_event, {"model_version": challenger, "holdout_key": first_training["holdout_key"]})
    decision = load_handler("evaluate").lambda_handler(event, lambda_context)

    # then it does not pass, whatever its score, and evaluation.json says why
    assert decision["challenger_score"] >= config.gate.threshold
    assert decision["passes_gate"] is False
    assert decision["promote"] is False
    assert decision["scored_form"] == "scikit-learn"
    stored = registry.store.get_json(registry.prefix(challenger) + "evaluation.json")
    assert any("did not compile to ONNX" in reason and "_Unconvertible" in reason for reason in stored["reasons"])


def test_a_challenger_whose_compiled_form_disagrees_does_not_pass_the_gate(
    first_training: dict[str, Any], load_handler: Callable[[str], Any], load_event: Callable[[str], dict[str, Any]],
    registry: ModelRegistry, register_model: Callable[..., str], config: PipelineConfig, lambda_context: Any,
) -> None:
    # given a challenger whose recorded parity check failed
    failed = {"rows": 10, "label_mismatches": 2, "tied_label_mismatches": 0, "max_probability_diff": 0.3,
              "tolerance": PROBABILITY_TOLERANCE, "passed": False}
    challenger = register_model(metric=config.metric, compiled={"form": "onnx", "parity": failed})

    # when it is gated
    event = _gate_event(load_event, {"model_version": challenger, "holdout_key": first_training["holdout_key"]})
    decision = load_handler("evaluate").lambda_handler(event, lambda_context)

    # then it does not pass, and the reason names the disagreement
    assert decision["passes_gate"] is False
    assert any("does not agree with scikit-learn" in r and "2 label(s) differ" in r for r in decision["reasons"])
