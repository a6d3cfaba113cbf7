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
from loopline_runtime.live_drift import measure_live_drift
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
def champion(register_model: Callable[..., str], promote: Callable[[str], Any]) -> str:
    version = register_model()
    promote(version)
    return version


@pytest.fixture
def capture(aws_stack: Stack, fresh_rows: pd.DataFrame, config: PipelineConfig) -> Callable[..., None]:
    """Capture the fresh rows' features (times `scale` on every numeric feature) in the last few minutes."""

    def put(scale: float = 1.0, rows: int | None = None) -> None:
        features = fresh_rows.drop(columns=[config.target]).head(rows) * scale
        when = datetime.now(UTC) - timedelta(minutes=5)
        records = [capture_record(f"r{i}", row, captured_at=when) for i, row in enumerate(features.to_dict("records"))]
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
