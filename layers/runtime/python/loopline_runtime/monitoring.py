"""Monitoring: measure the champion on a fresh labeled batch, before it joins the training data.

The quality metric, its drop below the champion's own holdout score and the drift summary go to CloudWatch (the
alarm watches `ModelQualityDrop`, or `ModelQuality` with an absolute floor) and a JSON report goes to monitoring/
in the artifact bucket. A batch is measured once per champion: a repeated request answers with the first report.

numpy, onnxruntime and the standard library only (the monitor function runs on the serving layer).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopline_runtime.bucket_layout import MEASURED_FOLDER, MONITORING_PREFIX, key_time
from loopline_runtime.column_drift import feature_distributions, measure_drift
from loopline_runtime.datasets import DatasetCatalog
from loopline_runtime.errors import NoChampion
from loopline_runtime.labeled_columns import score_columns
from loopline_runtime.metrics import higher_is_better, meets, quality_drop
from loopline_runtime.quality_estimate import (
    ESTIMATED_QUALITY_DROP_METRIC_NAME,
    ESTIMATED_QUALITY_METRIC_NAME,
    QualityEstimate,
    estimate_quality,
)
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.storage import ObjectNotFound, ObjectStore

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import DimensionTypeDef

    from loopline_runtime.config import AlarmConfig, PipelineConfig
    from loopline_runtime.monitor_settings import AlarmSettings, MonitorSettings

QUALITY_METRIC_NAME = "ModelQuality"
QUALITY_DROP_METRIC_NAME = "ModelQualityDrop"
DRIFT_MIN_PSI_ROWS = 250

# starts a retraining for a dataset version and returns the execution ARN (see orchestration.start_training)
Retrain = Callable[[str], str]


def metric_namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Loopline")


def breaches_alarm(alarm: AlarmConfig | AlarmSettings, metric: str, value: float, drop: float | None) -> bool:
    """True when one measurement is on the alarm's bad side (the rule the CloudWatch alarm applies per period)."""
    if alarm.max_drop is not None:
        return drop is not None and drop > alarm.max_drop
    assert alarm.threshold is not None  # the config allows exactly one of max_drop and threshold
    return not meets(metric, value, alarm.threshold)


def alarm_line(alarm: AlarmConfig | AlarmSettings, metric: str, reference: float | None) -> float | None:
    """The value of `metric` at which the alarm fires: the holdout score minus max_drop (plus the share for error
    metrics), or the absolute threshold; None when max_drop has no holdout score to start from."""
    if alarm.max_drop is None:
        return alarm.threshold
    if reference is None:
        return None
    if higher_is_better(metric):
        return float(reference - alarm.max_drop)
    return float(reference + alarm.max_drop * max(abs(reference), 1e-12))


def distance_to_alarm(metric: str, value: float, line: float | None) -> float | None:
    """How far `value` is from the alarm line on the good side (negative: past it)."""
    if line is None:
        return None
    return float(value - line) if higher_is_better(metric) else float(line - value)


def metrics_against_holdout(scores: dict[str, float], manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every measured metric next to the champion's holdout value of it and the drop (positive is worse)."""
    holdout = dict(manifest.get("holdout_scores") or {})
    if manifest.get("holdout_score") is not None:
        holdout.setdefault(manifest["metric"], manifest["holdout_score"])
    table: dict[str, dict[str, Any]] = {}
    for name, value in scores.items():
        reference = holdout.get(name)
        table[name] = {"value": value, "holdout": reference,
                       "drop": quality_drop(name, reference, value) if reference is not None else None}
    return table


def monitor_champion(store: ObjectStore, config: PipelineConfig | MonitorSettings, cloudwatch: CloudWatchClient, *,
                     dataset_version: str, reason: str, alarm_name: str | None = None, retrain: Retrain | None = None
                     ) -> dict[str, Any]:
    """Score the champion and measure drift on `dataset_version` ('latest' for the newest); publish both.

    When the alarm is already in ALARM before this measurement and the measurement breaches it too, no
    state-change event will fire, so `retrain` is called here: a loop whose retraining was rejected or skipped
    trains again on every new bad batch instead of waiting for an OK -> ALARM transition that never comes.
    """
    registry = ModelRegistry(store)
    catalog = DatasetCatalog(store)
    pointer = registry.champion_pointer()
    if pointer is None:
        raise NoChampion("no champion to monitor yet; the first accepted upload trains one")
    dataset = catalog.latest() if dataset_version == "latest" else catalog.get(dataset_version)
    marker = f"{registry.prefix(pointer['version'])}{MEASURED_FOLDER}{dataset.version}.json"
    try:
        return {**store.get_json(marker), "status": "already_measured"}
    except ObjectNotFound:
        pass
    champion = registry.load_champion(pointer)  # the form that serves (pinned, checked) is the form measured
    columns, rows = catalog.load_columns(dataset)
    schema = champion.schema
    metric = champion.manifest["metric"]
    scores, probabilities, labeled = score_columns(champion, columns, schema)
    value = scores[metric]
    reference = champion.manifest.get("holdout_score")
    drop = quality_drop(metric, reference, value) if reference is not None else None
    # PSI on ten bins is noisy below a few hundred rows; smaller batches are judged by the KS/chi-squared tests
    drift = measure_drift(champion.manifest["training_profile"], columns, rows, min_psi_rows=DRIFT_MIN_PSI_ROWS)
    alarm_before = _alarm_state(cloudwatch, alarm_name)
    pipeline = os.environ.get("PIPELINE_NAME", config.name)
    measured_at = datetime.now(UTC)
    dimensions: list[DimensionTypeDef] = [{"Name": "Pipeline", "Value": pipeline}]
    points = {QUALITY_METRIC_NAME: value, "DriftedFeatureShare": drift.drifted_share, "MaxFeaturePSI": drift.max_psi}
    if drop is not None:
        points[QUALITY_DROP_METRIC_NAME] = drop
    estimate = _estimate(probabilities, champion.manifest)
    estimated_value = estimate.metrics.get(metric) if estimate is not None else None
    if estimated_value is not None:
        points[ESTIMATED_QUALITY_METRIC_NAME] = estimated_value
        if reference is not None:  # what the optional estimated-quality alarm watches (alarm.estimated_max_drop)
            points[ESTIMATED_QUALITY_DROP_METRIC_NAME] = quality_drop(metric, reference, estimated_value)
    cloudwatch.put_metric_data(
        Namespace=metric_namespace(),
        # high resolution so short alarm periods (10 s, 30 s) work for fast feedback loops
        MetricData=[{"MetricName": name, "Dimensions": dimensions, "Value": point, "Timestamp": measured_at,
                     "StorageResolution": 1, "Unit": "None"} for name, point in points.items()],
    )
    breached = breaches_alarm(config.alarm, metric, value, drop)
    retraining = None
    if breached and alarm_before == "ALARM" and retrain is not None:
        retraining = retrain(dataset.version)
    report = {
        "pipeline": pipeline,
        "champion_version": champion.version,
        "dataset_version": dataset.version,
        "rows": labeled,
        "metric": metric,
        "value": value,
        "reference_score": reference,
        "quality_drop": drop,
        "scores": scores,
        # every metric of the task against the champion's holdout value of it; `metric` alone drives the alarm
        "metrics": metrics_against_holdout(scores, champion.manifest),
        # what the label-free estimate would have said of this batch (quality_estimate): estimated vs measured
        "estimate": estimate.to_dict() if estimate is not None else None,
        "estimated_value": estimated_value,
        "alarm_line": (line := alarm_line(config.alarm, metric, reference)),
        "distance_to_alarm": distance_to_alarm(metric, value, line),
        "alarm_threshold": config.alarm.threshold,
        "alarm_max_drop": config.alarm.max_drop,
        "alarm_breached": breached,
        "alarm_state_before": alarm_before,
        "retraining_execution": retraining,
        "drift": drift.to_dict(),
        # for the report: the champion's own holdout score, and each feature's reference and batch shares
        "champion_holdout_score": champion.manifest.get("holdout_score"),
        "distributions": feature_distributions(champion.manifest["training_profile"], columns),
        "reason": reason,
        "measured_at": measured_at.isoformat(),
    }
    key = f"{MONITORING_PREFIX}{key_time(measured_at)}-{dataset.version}.json"
    store.put_json(key, report)
    result = {"report_key": key, "champion_version": champion.version, "dataset_version": dataset.version,
              "metric": metric, "value": value, "quality_drop": drop, "drifted_share": drift.drifted_share,
              "estimated_value": estimated_value, "alarm_line": line,
              "alarm_breached": breached, "retraining_execution": retraining}
    store.put_json(marker, result)
    return {**result, "status": "measured"}


def _estimate(probabilities: Any, manifest: dict[str, Any]) -> QualityEstimate | None:
    calibration = manifest.get("calibration")
    if probabilities is None or not calibration:
        return None  # a regressor, or a champion registered before calibrations were recorded
    return estimate_quality(probabilities, calibration)


def _alarm_state(cloudwatch: CloudWatchClient, alarm_name: str | None) -> str | None:
    if not alarm_name:
        return None
    alarms = cloudwatch.describe_alarms(AlarmNames=[alarm_name]).get("MetricAlarms", [])
    return str(alarms[0]["StateValue"]) if alarms else None
