"""Monitoring on moto: the champion measured on a fresh labeled batch, published where the quality alarm looks."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from loopline_runtime.bucket_layout import MONITORING_PREFIX
from loopline_runtime.config import PipelineConfig, Task
from loopline_runtime.errors import NoChampion
from loopline_runtime.metrics import all_scores, score
from loopline_runtime.quality_estimate import fit_calibration
from loopline_runtime.registry import ModelRegistry
from tests.support.stack import Stack


@pytest.fixture
def quality_alarm(stack: Stack) -> dict[str, Any]:
    """The alarm that starts retraining: what it watches, resolved from template.yaml."""
    (properties,) = [r["Properties"] for r in stack.resources_of_type("AWS::CloudWatch::Alarm").values()
                     if r["Properties"].get("MetricName") == {"Ref": "AlarmMetricName"}]
    return {
        "Namespace": stack.resolve(properties["Namespace"]),
        "MetricName": stack.resolve(properties["MetricName"]),
        "Dimensions": [{"Name": d["Name"], "Value": stack.resolve(d["Value"])} for d in properties["Dimensions"]],
        "Statistic": properties["Statistic"],
    }


def test_monitor_publishes_model_quality_where_the_alarm_looks(
    champion: str, ingest: Callable[..., dict[str, Any]], fresh_rows: pd.DataFrame, load_handler: Callable[[str], Any],
    load_event: Callable[[str], dict[str, Any]], quality_alarm: dict[str, Any], lambda_context: Any,
) -> None:
    # given a fresh labeled batch accepted while a champion serves (ingest asked for this measurement)
    outcome = ingest("incoming/fresh.csv", fresh_rows)
    assert outcome["monitoring"] == "requested"
    event = load_event("monitor_async.json")
    event["dataset_version"] = outcome["dataset_version"]
    monitor = load_handler("monitor")

    # when the monitor function measures the champion
    report = monitor.lambda_handler(event, lambda_context)

    # then the quality metric the alarm watches exists, with the alarm's namespace and dimensions
    cloudwatch = boto3.client("cloudwatch")
    listed = cloudwatch.list_metrics(Namespace=quality_alarm["Namespace"], MetricName=quality_alarm["MetricName"],
                                     Dimensions=quality_alarm["Dimensions"])["Metrics"]
    assert len(listed) == 1
    # and its datapoint is the measured value
    now = datetime.now(UTC)
    stats = cloudwatch.get_metric_statistics(
        Namespace=quality_alarm["Namespace"], MetricName=quality_alarm["MetricName"],
        Dimensions=quality_alarm["Dimensions"], StartTime=now - timedelta(hours=1), EndTime=now + timedelta(hours=1),
        Period=60, Statistics=[quality_alarm["Statistic"]])["Datapoints"]
    assert [point[quality_alarm["Statistic"]] for point in stats] == [pytest.approx(report["value"])]
    assert report["champion_version"] == champion
    assert report["dataset_version"] == outcome["dataset_version"]


def test_monitor_value_is_the_champions_metric_on_the_batch(
    champion: str, ingest: Callable[..., dict[str, Any]], fresh_rows: pd.DataFrame, load_handler: Callable[[str], Any],
    load_event: Callable[[str], dict[str, Any]], registry: ModelRegistry, config: PipelineConfig,
    lambda_context: Any,
) -> None:
    # given
    outcome = ingest("incoming/fresh.csv", fresh_rows)
    event = {**load_event("monitor_async.json"), "dataset_version": outcome["dataset_version"]}
    monitor = load_handler("monitor")
    model = registry.load(champion)
    expected = f1_score(fresh_rows[config.target],
                        model.pipeline.predict(fresh_rows.drop(columns=[config.target])), average="macro")

    # when
    report = monitor.lambda_handler(event, lambda_context)

    # then (the pipeline's metric is macro F1)
    assert report["metric"] == config.metric == "f1"
    assert report["value"] == pytest.approx(expected)


def test_monitor_writes_a_report(
    champion: str, ingest: Callable[..., dict[str, Any]], fresh_rows: pd.DataFrame, load_handler: Callable[[str], Any],
    load_event: Callable[[str], dict[str, Any]], registry: ModelRegistry, config: PipelineConfig,
    stack: Stack, lambda_context: Any,
) -> None:
    # given
    outcome = ingest("incoming/fresh.csv", fresh_rows)
    event = {**load_event("monitor_async.json"), "dataset_version": outcome["dataset_version"]}
    monitor = load_handler("monitor")

    # when
    result = monitor.lambda_handler(event, lambda_context)

    # then a JSON report sits under monitoring/ with the measurement, the threshold and the drift summary
    assert result["report_key"].startswith(MONITORING_PREFIX)
    report = registry.store.get_json(result["report_key"])
    assert report["champion_version"] == champion
    assert report["dataset_version"] == outcome["dataset_version"]
    assert report["rows"] == len(fresh_rows)
    assert report["value"] == result["value"]
    assert report["alarm_threshold"] == config.alarm.threshold
    assert report["pipeline"] == stack.function_environment("monitor")["PIPELINE_NAME"]
    assert report["reason"] == "new_data"
    assert report["drift"]["drifted_share"] == result["drifted_share"]
    assert {f["name"] for f in report["drift"]["features"]} == set(registry.manifest(champion)["schema"]["features"])


def test_the_daily_schedule_measures_the_newest_batch(
    champion: str, ingest: Callable[..., dict[str, Any]], breast_cancer: pd.DataFrame,
    load_handler: Callable[[str], Any], stack: Stack, lambda_context: Any,
) -> None:
    # given two accepted batches, and the schedule's payload as template.yaml defines it
    ingest("incoming/older.csv", breast_cancer.iloc[200:300])
    newest = ingest("incoming/newer.csv", breast_cancer.iloc[300:400])
    monitor_id = stack.function_logical_id("monitor")
    events = stack.template["Resources"][monitor_id]["Properties"]["Events"]
    (schedule,) = [e["Properties"] for name, e in events.items() if name == "DailyMonitoring"]
    monitor = load_handler("monitor")

    # when the schedule fires
    report = monitor.lambda_handler(json.loads(schedule["Input"]), lambda_context)

    # then the newest batch was measured
    assert report["dataset_version"] == newest["dataset_version"]


def test_monitor_without_a_champion_says_so(
    aws_stack: Stack, ingest: Callable[..., dict[str, Any]], fresh_rows: pd.DataFrame,
    load_handler: Callable[[str], Any], load_event: Callable[[str], dict[str, Any]], quality_alarm: dict[str, Any],
    lambda_context: Any,
) -> None:
    # given a dataset but no champion
    outcome = ingest("incoming/fresh.csv", fresh_rows)
    event = {**load_event("monitor_async.json"), "dataset_version": outcome["dataset_version"]}
    monitor = load_handler("monitor")

    # when / then
    with pytest.raises(NoChampion, match="no champion to monitor yet"):
        monitor.lambda_handler(event, lambda_context)
    assert boto3.client("cloudwatch").list_metrics(Namespace=quality_alarm["Namespace"])["Metrics"] == []


def test_monitor_publishes_the_label_free_estimate_next_to_the_measured_quality_and_every_metric(
    register_model: Callable[..., str], promote: Callable[[str], Any], fitted_champion: tuple[Any, dict[str, Any]],
    breast_cancer: pd.DataFrame, ingest: Callable[..., dict[str, Any]], fresh_rows: pd.DataFrame,
    load_handler: Callable[[str], Any], load_event: Callable[[str], dict[str, Any]], registry: ModelRegistry,
    config: PipelineConfig, quality_alarm: dict[str, Any], lambda_context: Any,
) -> None:
    # given a champion registered, as the train step does, with the holdout value of every metric and the
    # calibration of its probabilities on that holdout
    pipeline, _ = fitted_champion
    holdout = breast_cancer.iloc[200:400].astype(str)
    y = holdout[config.target].to_numpy()
    X = holdout.drop(columns=[config.target])
    proba = pipeline.predict_proba(X)
    champion = register_model(holdout_score=score(config.metric or "f1", y, pipeline.predict(X), proba,
                                                  list(pipeline.classes_)),
                              holdout_scores=all_scores(Task.CLASSIFICATION, y, pipeline.predict(X), proba,
                                                        list(pipeline.classes_)),
                              calibration=fit_calibration(proba, y, [str(c) for c in pipeline.classes_]))
    promote(champion)
    manifest = registry.manifest(champion)
    outcome = ingest("incoming/fresh.csv", fresh_rows)
    event = {**load_event("monitor_async.json"), "dataset_version": outcome["dataset_version"]}

    # when the monitor function measures it on a labeled batch
    result = load_handler("monitor").lambda_handler(event, lambda_context)

    # then the estimate of the configured metric is published as EstimatedModelQuality, where the measured one is
    cloudwatch = boto3.client("cloudwatch")
    now = datetime.now(UTC)
    stats = cloudwatch.get_metric_statistics(
        Namespace=quality_alarm["Namespace"], MetricName="EstimatedModelQuality",
        Dimensions=quality_alarm["Dimensions"], StartTime=now - timedelta(hours=1), EndTime=now + timedelta(hours=1),
        Period=60, Statistics=["Average"])["Datapoints"]
    assert [point["Average"] for point in stats] == [pytest.approx(result["estimated_value"])]
    # and the report holds every metric against its holdout value, the estimate and the alarm line
    report = registry.store.get_json(result["report_key"])
    assert {name: entry["holdout"] for name, entry in report["metrics"].items()} == {
        name: pytest.approx(value) for name, value in manifest["holdout_scores"].items() if name in report["metrics"]}
    assert report["estimate"]["metrics"][report["metric"]] == result["estimated_value"]
    assert report["alarm_line"] is not None and report["distance_to_alarm"] is not None
