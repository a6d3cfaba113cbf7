"""Live drift on the monitor function: the captured inputs of the last window against the champion's training
profile, published where the live drift alarm looks; no labels, and no retraining unless configured."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pandas as pd
import pytest

from loopline_runtime.config import LiveDriftConfig, PipelineConfig
from loopline_runtime.feature_schema import Task
from loopline_runtime.live_drift import measure_live_drift
from loopline_runtime.metrics import all_scores
from loopline_runtime.quality_estimate import fit_calibration
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.serving import predict_records
from loopline_runtime.storage import ObjectStore
from tests.support.captures import capture_record, put_capture_file
from tests.support.stack import Stack


@pytest.fixture
def schedule_event(stack: Stack) -> dict[str, Any]:
    """What the live drift schedule sends the monitor function (template.yaml MonitorFunction Events.LiveDrift)."""
    events = stack.template["Resources"][stack.function_logical_id("monitor")]["Properties"]["Events"]
    return dict(json.loads(events["LiveDrift"]["Properties"]["Input"]))


@pytest.fixture
def drift_alarm(stack: Stack) -> dict[str, Any]:
    """The live drift alarm of template.yaml: what it watches."""
    (properties,) = [r["Properties"] for r in stack.resources_of_type("AWS::CloudWatch::Alarm").values()
                     if r["Properties"].get("MetricName") == "LiveDriftedFeatureShare"]
    return {"Namespace": stack.resolve(properties["Namespace"]), "MetricName": properties["MetricName"],
            "Dimensions": [{"Name": d["Name"], "Value": stack.resolve(d["Value"])} for d in properties["Dimensions"]],
            "Threshold": float(stack.resolve(properties["Threshold"]))}


@pytest.fixture
def capture(aws_stack: Stack, fresh_rows: pd.DataFrame, config: PipelineConfig, store: ObjectStore
            ) -> Callable[..., None]:
    """Capture the fresh rows' features (times `scale` on every numeric feature, or drawn `toward_centre` of the
    data by that share) in the last few minutes, with what the champion answers for them, as predict captures."""

    def put(scale: float = 1.0, rows: int | None = None, toward_centre: float = 0.0) -> None:
        features = fresh_rows.drop(columns=[config.target]).head(rows) * scale
        features = features + toward_centre * (features.mean() - features)
        registry = ModelRegistry(store)
        answers = predict_records(registry.load_champion(registry.champion_pointer() or {}),
                                  features.to_dict("records"), max_records=len(features))
        when = datetime.now(UTC) - timedelta(minutes=5)
        records = [capture_record(f"r{i}", row, captured_at=when, model_version=answers["model_version"],
                                  prediction=answers["predictions"][i], probabilities=answers["probabilities"][i])
                   for i, row in enumerate(features.to_dict("records"))]
        put_capture_file(boto3.client("s3"), aws_stack.bucket, records, arrived=when)

    return put


def _published(alarm: dict[str, Any]) -> list[float]:
    now = datetime.now(UTC)
    points = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=alarm["Namespace"], MetricName=alarm["MetricName"], Dimensions=alarm["Dimensions"],
        StartTime=now - timedelta(hours=1), EndTime=now + timedelta(hours=1), Period=60, Statistics=["Maximum"])
    return [point["Maximum"] for point in points["Datapoints"]]


def _executions(stack: Stack) -> list[Any]:
    arn = stack.physical_ids["TrainingStateMachine"]
    return list(boto3.client("stepfunctions").list_executions(stateMachineArn=arn)["executions"])


def test_drifted_captured_inputs_are_published_above_the_alarm_line_and_retrain_nothing_by_default(
    champion: str, capture: Callable[..., None], load_handler: Callable[[str], Any], drift_alarm: dict[str, Any],
    store: ObjectStore, aws_stack: Stack, schedule_event: dict[str, Any], lambda_context: Any,
) -> None:
    # given live requests whose every feature is three times what the champion was trained on
    capture(scale=3.0)

    # when the schedule runs the monitor function
    report = load_handler("monitor").lambda_handler(schedule_event, lambda_context)

    # then the drifted share is published where the drift alarm looks, above its threshold
    assert report["status"] == "measured" and report["drifted"] is True
    assert report["captured_rows"] == 120 and report["champion_version"] == champion
    assert _published(drift_alarm) == [pytest.approx(report["drifted_share"])]
    assert report["drifted_share"] > drift_alarm["Threshold"]
    # and the report names the drifted features; nothing retrains (live_drift.retrain is off)
    assert store.get_json(report["report_key"])["drift"]["drifted"]
    assert report["retraining_execution"] is None and _executions(aws_stack) == []


def test_captured_inputs_like_the_training_data_are_not_drifted(
    champion: str, capture: Callable[..., None], load_handler: Callable[[str], Any], drift_alarm: dict[str, Any],
    schedule_event: dict[str, Any], lambda_context: Any,
) -> None:
    # given live requests from the training distribution
    capture(scale=1.0)

    # when
    report = load_handler("monitor").lambda_handler(schedule_event, lambda_context)

    # then
    assert report["drifted"] is False
    assert _published(drift_alarm) == [pytest.approx(report["drifted_share"])]
    assert report["drifted_share"] <= drift_alarm["Threshold"]


def test_a_window_with_too_few_captures_is_reported_not_measured(
    champion: str, capture: Callable[..., None], load_handler: Callable[[str], Any], drift_alarm: dict[str, Any],
    config: PipelineConfig, schedule_event: dict[str, Any], lambda_context: Any,
) -> None:
    # given fewer captured rows than live_drift.min_rows
    capture(scale=3.0, rows=config.live_drift.min_rows - 1)

    # when
    report = load_handler("monitor").lambda_handler(schedule_event, lambda_context)

    # then no drift share is published on a handful of rows
    assert report["status"] == "too_few_rows" and report["drifted"] is False
    assert _published(drift_alarm) == []


def test_live_drift_retrains_only_when_configured(
    champion: str, capture: Callable[..., None], store: ObjectStore, config: PipelineConfig,
) -> None:
    # given drifted captures and live_drift.retrain on
    capture(scale=3.0)
    started: list[str] = []
    retraining = config.model_copy(update={"live_drift": LiveDriftConfig(retrain=True)})

    # when
    report = measure_live_drift(store, retraining, boto3.client("cloudwatch"), reason="schedule",
                                retrain=lambda reason: started.append(reason) or "arn:execution")

    # then
    assert report["retraining_execution"] == "arn:execution" and len(started) == 1


@pytest.fixture
def calibrated_champion(register_model: Callable[..., str], promote: Callable[[str], Any],
                        fitted_champion: tuple[Any, dict[str, Any]], breast_cancer: pd.DataFrame,
                        config: PipelineConfig) -> str:
    """A champion registered as training registers one: calibrated and scored on a holdout of its own."""
    pipeline, manifest = fitted_champion
    holdout = breast_cancer.iloc[300:].astype(str)
    proba = pipeline.predict_proba(holdout.drop(columns=[config.target]))
    labels = holdout[config.target].to_numpy()
    scores = all_scores(Task.CLASSIFICATION, labels, pipeline.predict(holdout.drop(columns=[config.target])),
                        proba, list(pipeline.classes_))
    version = register_model(calibration=fit_calibration(proba, labels, manifest["classes"]),
                             holdout_score=scores[manifest["metric"]])
    promote(version)
    return version


def test_captured_inputs_drawn_toward_the_class_boundary_lower_the_estimated_quality(
    calibrated_champion: str, capture: Callable[..., None], load_handler: Callable[[str], Any], store: ObjectStore,
    aws_stack: Stack, schedule_event: dict[str, Any], lambda_context: Any,
) -> None:
    # given the champion's label-free estimate on live requests like its training data
    capture()
    before = load_handler("monitor").lambda_handler(schedule_event, lambda_context)
    for key in list(store.list_keys("capture/")):
        boto3.client("s3").delete_object(Bucket=aws_stack.bucket, Key=key)

    # when the live requests drift toward the middle of the data (where the model is unsure), with no labels
    capture(toward_centre=0.9)
    after = load_handler("monitor").lambda_handler(schedule_event, lambda_context)

    # then the estimate, published as a labeled batch's is, falls well below the holdout score and the first
    assert before["estimate"] is not None and after["estimate"] is not None
    assert after["estimated_value"] < before["estimated_value"] - 0.1
    assert after["estimated_value"] < after["holdout_score"] - 0.1
    assert store.get_json(after["report_key"])["estimated_value"] == after["estimated_value"]
    published = boto3.client("cloudwatch").list_metrics(MetricName="EstimatedModelQualityDrop")["Metrics"]
    assert published, "the estimated quality drop was not published"
