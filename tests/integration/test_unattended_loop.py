"""The loop without a person in it, on moto: champion-relative quality, a loop that retrains while the alarm stays
in ALARM, redelivered uploads that finish what was left undone, the fingerprint written by the gate, and the
champion pointer moved only if it is still the one the gate compared against."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pandas as pd
import pytest

from loopline_runtime.bucket_layout import CHAMPION_KEY, DATASET_INDEX_PREFIX, FINGERPRINT_PREFIX
from loopline_runtime.config import PipelineConfig
from loopline_runtime.datasets import DatasetCatalog
from loopline_runtime.errors import ChampionChanged
from loopline_runtime.metrics import quality_drop
from loopline_runtime.orchestration import execution_name
from loopline_runtime.registry import ModelRegistry
from tests.support.stack import Stack


def _executions(stack: Stack) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions")
    return sfn.list_executions(stateMachineArn=stack.physical_ids["TrainingStateMachine"])["executions"]


def _flipped(rows: pd.DataFrame, target: str) -> pd.DataFrame:
    """The same rows with every label swapped: a batch on which any champion scores badly."""
    labels = sorted(rows[target].unique())
    swapped = rows.copy()
    swapped[target] = rows[target].map({labels[0]: labels[1], labels[1]: labels[0]})
    return swapped


@pytest.fixture
def quality_alarm(aws_stack: Stack) -> str:
    """The stack's quality alarm in moto (the evaluate function reads its state), as template.yaml names it."""
    (logical_id,) = [k for k, r in aws_stack.resources_of_type("AWS::CloudWatch::Alarm").items()
                     if r["Properties"].get("MetricName") == {"Ref": "AlarmMetricName"}]
    name = aws_stack.physical_ids[logical_id]
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName=name, Namespace="Loopline", MetricName="ModelQuality", Statistic="Average", Period=10,
        EvaluationPeriods=1, Threshold=0.9, ComparisonOperator="LessThanThreshold")
    return name


@pytest.fixture
def champion(register_model: Callable[..., str], promote: Callable[[str], Any]) -> str:
    version = register_model(holdout_score=0.95)
    promote(version)
    return version


def test_monitor_publishes_the_drop_below_the_champions_own_holdout_score(
    champion: str, ingest: Callable[..., dict[str, Any]], fresh_rows: pd.DataFrame,
    load_handler: Callable[[str], Any], load_event: Callable[[str], dict[str, Any]], lambda_context: Any,
) -> None:
    # given a champion whose holdout f1 was 0.95 and a fresh batch
    event = {**load_event("monitor_async.json"),
             "dataset_version": ingest("incoming/fresh.csv", fresh_rows)["dataset_version"]}

    # when it is measured
    report = load_handler("monitor").lambda_handler(event, lambda_context)

    # then the drop is the holdout score minus the measured one, published as ModelQualityDrop
    assert report["quality_drop"] == pytest.approx(0.95 - report["value"])
    published = boto3.client("cloudwatch").list_metrics(Namespace="Loopline", MetricName="ModelQualityDrop")
    assert len(published["Metrics"]) == 1


def test_the_drop_is_positive_when_worse_for_every_metric() -> None:
    # given / when / then: a score falling, an error rising (relative to the holdout error)
    assert quality_drop("f1", 0.95, 0.80) == pytest.approx(0.15)
    assert quality_drop("r2", 0.50, 0.60) == pytest.approx(-0.10)
    assert quality_drop("rmse", 10.0, 12.5) == pytest.approx(0.25)
    assert quality_drop("mae", 4.0, 3.0) == pytest.approx(-0.25)


def test_a_bad_batch_while_the_alarm_stays_in_alarm_starts_training_once(
    aws_stack: Stack, champion: str, quality_alarm: str, ingest: Callable[..., dict[str, Any]],
    fresh_rows: pd.DataFrame, config: PipelineConfig, load_handler: Callable[[str], Any],
    load_event: Callable[[str], dict[str, Any]], lambda_context: Any,
) -> None:
    # given the alarm already in ALARM (a rejected retraining left it there: no new state-change event will come)
    boto3.client("cloudwatch").set_alarm_state(AlarmName=quality_alarm, StateValue="ALARM", StateReason="test")
    version = ingest("incoming/bad.csv", _flipped(fresh_rows, config.target))["dataset_version"]
    event = {**load_event("monitor_async.json"), "dataset_version": version}
    monitor = load_handler("monitor")

    # when the bad batch is measured, and the same request is delivered again
    first = monitor.lambda_handler(event, lambda_context)
    again = monitor.lambda_handler(event, lambda_context)

    # then the measurement breaches the alarm and starts one retraining, named after the batch
    assert first["alarm_breached"] is True
    (execution,) = _executions(aws_stack)
    assert execution["name"] == execution_name("alarm_persists", version)
    assert first["retraining_execution"] == execution["executionArn"]
    assert json.loads(boto3.client("stepfunctions").describe_execution(
        executionArn=execution["executionArn"])["input"]) == {"reason": "alarm_persists", "dataset_version": version}
    # and the repeated request answers with the first measurement
    assert again["status"] == "already_measured" and again["report_key"] == first["report_key"]


def test_a_bad_batch_while_the_alarm_is_ok_leaves_retraining_to_the_alarm(
    aws_stack: Stack, champion: str, quality_alarm: str, ingest: Callable[..., dict[str, Any]],
    fresh_rows: pd.DataFrame, config: PipelineConfig, load_handler: Callable[[str], Any],
    load_event: Callable[[str], dict[str, Any]], lambda_context: Any,
) -> None:
    # given the alarm in OK: its transition to ALARM will start the retraining through EventBridge
    version = ingest("incoming/bad.csv", _flipped(fresh_rows, config.target))["dataset_version"]
    event = {**load_event("monitor_async.json"), "dataset_version": version}

    # when
    report = load_handler("monitor").lambda_handler(event, lambda_context)

    # then no second trigger from the monitor
    assert report["alarm_breached"] is True
    assert report["retraining_execution"] is None
    assert _executions(aws_stack) == []


def test_a_redelivered_upload_completes_the_index_and_starts_the_training_that_did_not_start(
    aws_stack: Stack, load_handler: Callable[[str], Any], upload: Callable[..., dict[str, Any]],
    training_rows: pd.DataFrame, store: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a first delivery that stopped after the manifest: no index entry, StartExecution failed
    ingest = load_handler("ingest")
    event = upload("incoming/first.csv", training_rows)

    def start_execution_fails(**kwargs: Any) -> Any:
        raise RuntimeError("injected: StartExecution failed")

    with monkeypatch.context() as patch:
        patch.setattr(ingest.follow_ups.sfn, "start_execution", start_execution_fails)
        with pytest.raises(RuntimeError, match="injected"):
            ingest.lambda_handler(event, lambda_context)
    [index_key] = store.list_keys(DATASET_INDEX_PREFIX)
    store.client.delete_object(Bucket=store.bucket, Key=index_key)

    # when S3 (or Lambda's async retry) delivers the event again, five times
    outcomes = [ingest.lambda_handler(event, lambda_context)["results"][0] for _ in range(5)]

    # then the version is indexed again, and exactly one training execution exists, named after the version
    version = outcomes[0]["dataset_version"]
    assert list(store.list_keys(DATASET_INDEX_PREFIX)) == [index_key]
    assert DatasetCatalog(store).latest().version == version
    (execution,) = _executions(aws_stack)
    assert execution["name"] == execution_name("new_data", version)
    assert {o["execution_arn"] for o in outcomes} == {execution["executionArn"]}


def test_an_empty_schema_is_never_inherited(
    aws_stack: Stack, ingest: Callable[..., dict[str, Any]], training_rows: pd.DataFrame, store: Any,
    config: PipelineConfig,
) -> None:
    # given a dataset version with no feature (accepted before uploads without features were quarantined)
    DatasetCatalog(store).write("ds-legacy-empty-schema", training_rows[[config.target]], {
        "schema": {"target": config.target, "task": "classification", "features": {}}, "rows": len(training_rows)})

    # when a good upload arrives
    outcome = ingest("incoming/good.csv", training_rows)

    # then it is accepted with its own features
    assert outcome["status"] == "accepted"
    manifest = DatasetCatalog(store).get(outcome["dataset_version"]).manifest
    assert set(manifest["schema"]["features"]) == set(training_rows.columns) - {config.target}


def test_the_fingerprint_is_written_by_the_gate_and_an_ungated_challenger_is_gated_next_time(
    aws_stack: Stack, ingest: Callable[..., dict[str, Any]], training_rows: pd.DataFrame,
    load_handler: Callable[[str], Any], load_event: Callable[[str], dict[str, Any]], registry: ModelRegistry,
    lambda_context: Any,
) -> None:
    # given a challenger trained by a run whose evaluate step then failed (no gate decision)
    execution_arn = ingest("incoming/first.csv", training_rows)["execution_arn"]
    train = load_handler("train")
    event = {**load_event("train_task.json"), "execution_arn": execution_arn, "trigger": {"reason": "new_data"}}
    trained = train.lambda_handler(event, lambda_context)
    assert not list(registry.store.list_keys(FINGERPRINT_PREFIX))

    # when the next trigger's train step runs
    sfn = boto3.client("stepfunctions")
    later = sfn.start_execution(stateMachineArn=aws_stack.physical_ids["TrainingStateMachine"], name="alarm-1",
                                input=json.dumps({"reason": "alarm"}))["executionArn"]
    sfn.stop_execution(executionArn=execution_arn)  # the failed run is over: its lease can be taken over
    resumed = train.lambda_handler({**event, "execution_arn": later, "trigger": {"reason": "alarm"}}, lambda_context)

    # then it hands the same challenger to the gate instead of training another
    assert resumed["model_version"] == trained["model_version"] and resumed["resumed"] is True
    # and once the gate has decided, the data counts as trained on
    gate = {**load_event("evaluate_gate_task.json"), "model_version": resumed["model_version"],
            "holdout_key": resumed["holdout_key"], "fingerprint": resumed["fingerprint"]}
    load_handler("evaluate").lambda_handler(gate, lambda_context)
    assert registry.store.get_json(FINGERPRINT_PREFIX + resumed["fingerprint"])["model_version"] == \
        trained["model_version"]


def test_the_pointer_moves_only_if_the_champion_is_still_the_one_the_gate_compared_against(
    register_model: Callable[..., str], promote: Callable[[str], Any], registry: ModelRegistry,
    load_handler: Callable[[str], Any], load_event: Callable[[str], dict[str, Any]], lambda_context: Any,
) -> None:
    # given two challengers gated against the same champion
    promote(register_model())
    _, etag = registry.champion_pointer_and_etag()
    first, second = register_model(), register_model()
    for version in (first, second):  # as the gate records them: the pins and the champion ETag it compared to
        registry.store.put_json(registry.prefix(version) + "evaluation.json",
                                {"promote": True, "reasons": ["ok"], "pins": registry.pins(version),
                                 "champion_etag": etag})
    evaluate = load_handler("evaluate")
    event = {**load_event("evaluate_promote_task.json"), "promoted_at": datetime.now(UTC).isoformat()}

    # when both promotions run, one after the other
    evaluate.lambda_handler({**event, "version": first, "expected_etag": etag, "pins": registry.pins(first)},
                            lambda_context)
    with pytest.raises(ChampionChanged, match="the champion changed during evaluation") as lost:
        evaluate.lambda_handler({**event, "version": second, "expected_etag": etag, "pins": registry.pins(second)},
                                lambda_context)

    # then the first is the champion, the second is rejected with the reason on its evaluation
    assert registry.champion_version() == first
    assert type(lost.value).__name__ == "ChampionChanged"
    evaluation = registry.store.get_json(registry.prefix(second) + "evaluation.json")
    assert evaluation["promote"] is False
    assert "the champion changed during evaluation" in evaluation["reasons"][-1]
    assert [h["version"] for h in registry.history()][-1] == first
    assert registry.store.exists(CHAMPION_KEY)


def test_a_retried_promotion_finishes_the_history_without_moving_the_pointer_twice(
    register_model: Callable[..., str], registry: ModelRegistry, load_handler: Callable[[str], Any],
    load_event: Callable[[str], dict[str, Any]], lambda_context: Any,
) -> None:
    # given a first promotion (no champion yet) of a version the gate passed
    version = register_model()
    registry.store.put_json(registry.prefix(version) + "evaluation.json",
                            {"promote": True, "reasons": ["ok"], "pins": registry.pins(version), "champion_etag": None})
    event = {**load_event("evaluate_promote_task.json"), "version": version, "expected_etag": None,
             "pins": registry.pins(version)}
    evaluate = load_handler("evaluate")

    # when it is delivered twice (a Lambda retry after the pointer was written)
    evaluate.lambda_handler(event, lambda_context)
    evaluate.lambda_handler(event, lambda_context)

    # then one champion, one history record
    assert registry.champion_version() == version
    assert [h["version"] for h in registry.history()] == [version]
