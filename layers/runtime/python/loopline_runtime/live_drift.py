"""Live drift: the captured inputs of the last window against the champion's training profile, on a schedule.

No labels needed: the monitor function (an EventBridge schedule every live_drift.every_minutes, default 60) streams
the capture files of the last live_drift.every_minutes, keeps a uniform sample of at most `MAX_SAMPLE_ROWS` rows
(reservoir sampling: memory bounded whatever the window holds; the drift tests are as good on a 100,000-row
sample), measures it with the same PSI / KS / chi-squared code as a labeled batch (loopline_runtime.drift) and
publishes the drifted share as `LiveDriftedFeatureShare` (the LiveDriftAlarm notifies above
live_drift.max_drifted_share). For a classifier with a calibration in its manifest, the captured probabilities
also give the quality estimated without labels (quality_estimate), published as `EstimatedModelQuality` /
`EstimatedModelQualityDrop` as for a labeled batch. It starts a retraining only with live_drift.retrain (off by
default: without new labels a retraining learns the same data). Each run writes monitoring/live/<time>.json.

numpy and the standard library only here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from loopline_runtime.bucket_layout import LIVE_MONITORING_PREFIX, key_time
from loopline_runtime.column_drift import DriftReport, measure_drift
from loopline_runtime.errors import NoChampion
from loopline_runtime.labels import capture_keys, capture_records
from loopline_runtime.metrics import higher_is_better
from loopline_runtime.quality_estimate import (
    ESTIMATED_QUALITY_DROP_METRIC_NAME,
    ESTIMATED_QUALITY_METRIC_NAME,
    QualityEstimate,
    estimate_quality,
)
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.storage import ObjectStore

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

    from loopline_runtime.config import PipelineConfig
    from loopline_runtime.monitor_settings import MonitorSettings

LIVE_DRIFT_METRIC_NAME = "LiveDriftedFeatureShare"
MAX_SAMPLE_ROWS = 100_000
DRIFT_MIN_PSI_ROWS = 250  # as monitoring: PSI on ten bins is noise below a few hundred rows

# starts a retraining (reason) and returns the execution ARN
Retrain = Callable[[str], str]


@dataclass(frozen=True)
class CapturedSample:
    """A uniform sample of a window's captured predictions: each feature's values, each row's class probabilities
    (classifiers; None where a row has none) and the model version that answered it, and how many rows the window
    held."""

    columns: dict[str, list[Any]]
    probabilities: list[Mapping[str, float] | None]
    model_versions: list[str | None]
    captured: int


def sample_captured_inputs(store: ObjectStore, features: Sequence[str], start: datetime, end: datetime, *,
                           max_rows: int = MAX_SAMPLE_ROWS, seed: int = 0) -> CapturedSample:
    """A uniform sample (at most `max_rows`, reservoir sampling) of the window's captured rows."""
    rng = np.random.default_rng(seed)
    sample: list[Mapping[str, Any]] = []
    seen = 0
    for key in capture_keys(store, start, end):
        for record in capture_records(store, key):
            captured = str(record.get("captured_at", ""))
            if captured and not start.isoformat() <= captured <= end.isoformat():
                continue  # the hour partitions are by arrival; the window is by prediction time
            seen += 1
            if len(sample) < max_rows:
                sample.append(record)
            else:  # reservoir sampling (Algorithm R): every row of the window is kept with equal probability
                slot = int(rng.integers(0, seen))
                if slot < max_rows:
                    sample[slot] = record
    inputs = [row.get("inputs") or {} for row in sample]
    return CapturedSample({name: [row.get(name) for row in inputs] for name in features},
                          [row.get("probabilities") for row in sample], [row.get("model_version") for row in sample],
                          seen)


def estimate_live_quality(sample: CapturedSample, version: str, manifest: Mapping[str, Any]
                          ) -> QualityEstimate | None:
    """The champion's quality estimated from the probabilities it answered in the window (quality_estimate; rows a
    previous champion answered are left out), or None: a regressor, a champion without a calibration, or no such
    row."""
    calibration = manifest.get("calibration")
    rows = [row for row, answered_by in zip(sample.probabilities, sample.model_versions, strict=True)
            if row and answered_by == version]
    if not calibration or not rows:
        return None
    classes = [str(c) for c in calibration["classes"]]
    matrix = np.array([[float(row.get(c, 0.0)) for c in classes] for row in rows], dtype=float)
    return estimate_quality(matrix, calibration)


def measure_columns(profile: Mapping[str, Any], columns: Mapping[str, list[Any]], rows: int) -> DriftReport:
    """The drift report of captured columns against a training profile (loopline_runtime.column_drift)."""
    return measure_drift(profile, columns, rows, min_psi_rows=DRIFT_MIN_PSI_ROWS)


def measure_live_drift(store: ObjectStore, config: PipelineConfig | MonitorSettings, cloudwatch: CloudWatchClient, *,
                       reason: str, now: datetime | None = None, retrain: Retrain | None = None) -> dict[str, Any]:
    """Measure the last window's captured inputs against the champion's training profile; publish and report."""
    registry = ModelRegistry(store)
    pointer = registry.champion_pointer()
    if pointer is None:
        raise NoChampion("no champion yet, so no training profile to compare the captured inputs with")
    manifest = registry.manifest(pointer["version"])
    profile = manifest["training_profile"]
    settings = config.live_drift
    end = now or datetime.now(UTC)
    start = end - timedelta(minutes=settings.every_minutes)
    sample = sample_captured_inputs(store, list(profile.get("features", {})), start, end)
    columns, captured = sample.columns, sample.captured
    sampled = min(captured, MAX_SAMPLE_ROWS)
    pipeline = os.environ.get("PIPELINE_NAME", config.name)
    report: dict[str, Any] = {"pipeline": pipeline, "champion_version": pointer["version"], "reason": reason,
                              "window": {"start": start.isoformat(), "end": end.isoformat()},
                              "captured_rows": captured, "sampled_rows": sampled,
                              "max_drifted_share": settings.max_drifted_share, "measured_at": end.isoformat()}
    points: dict[str, float] = {"LiveCapturedRows": float(captured)}
    if captured < settings.min_rows:
        report.update(status="too_few_rows", drifted=False, retraining_execution=None,
                      note=f"{captured} captured rows in the window; live_drift.min_rows is {settings.min_rows}")
    else:
        drift = measure_columns(profile, columns, sampled)
        drifted = drift.drifted_share > settings.max_drifted_share
        retraining = retrain(f"live_drift-{key_time(end)}") if drifted and settings.retrain and retrain else None
        points.update({LIVE_DRIFT_METRIC_NAME: drift.drifted_share, "LiveMaxFeaturePSI": drift.max_psi})
        report.update(status="measured", drifted=drifted, drifted_share=drift.drifted_share,
                      retraining_execution=retraining, drift=drift.to_dict())
        estimate = estimate_live_quality(sample, str(pointer["version"]), manifest)
        metric = manifest["metric"]
        estimated_value = estimate.metrics.get(metric) if estimate is not None else None
        reference = manifest.get("holdout_score")
        report.update(estimate=estimate.to_dict() if estimate is not None else None, estimated_value=estimated_value,
                      holdout_score=reference, metric=metric)
        if estimated_value is not None:
            # the same metrics a labeled batch publishes (the optional estimated-quality alarm watches the drop)
            points[ESTIMATED_QUALITY_METRIC_NAME] = estimated_value
            if reference is not None and higher_is_better(metric):  # estimates exist for classifier metrics only
                points[ESTIMATED_QUALITY_DROP_METRIC_NAME] = float(reference) - estimated_value
    # stamped when published, not when the window closed: reading and measuring a large window takes longer than a
    # short alarm period, and a point stamped in a period already evaluated would never reach the alarm
    published = datetime.now(UTC) if now is None else end
    cloudwatch.put_metric_data(
        Namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Loopline"),
        MetricData=[{"MetricName": name, "Dimensions": [{"Name": "Pipeline", "Value": pipeline}], "Value": value,
                     "Timestamp": published, "StorageResolution": 1, "Unit": "None"}
                    for name, value in points.items()])
    report["report_key"] = f"{LIVE_MONITORING_PREFIX}{key_time(end)}.json"
    store.put_json(report["report_key"], report)
    return report
