"""Monitoring: measure the champion on a fresh labeled batch, before it joins the training data.

The quality metric and the drift summary go to CloudWatch (the alarm watches `ModelQuality`) and a JSON
report goes to monitoring/ in the artifact bucket.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from loopline_runtime.config import PipelineConfig
from loopline_runtime.datasets import DatasetCatalog
from loopline_runtime.drift import measure_drift
from loopline_runtime.errors import NoChampion
from loopline_runtime.evaluation import score_model
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.storage import ObjectStore

QUALITY_METRIC_NAME = "ModelQuality"
DRIFT_MIN_PSI_ROWS = 250


def metric_namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Loopline")


def monitor_champion(store: ObjectStore, config: PipelineConfig, cloudwatch: Any, *, dataset_version: str,
                     reason: str) -> dict[str, Any]:
    """Score the champion and measure drift on `dataset_version` ('latest' for the newest); publish both."""
    registry = ModelRegistry(store)
    catalog = DatasetCatalog(store)
    pointer = registry.champion_pointer()
    if pointer is None:
        raise NoChampion("no champion to monitor yet; the first accepted upload trains one")
    champion = registry.load(pointer["version"])
    dataset = catalog.latest() if dataset_version == "latest" else catalog.get(dataset_version)
    frame = catalog.load(dataset)
    schema = champion.schema
    metric = champion.manifest["metric"]
    scores = score_model(champion, frame, schema)
    # PSI on ten bins is noisy below a few hundred rows; smaller batches are judged by the KS/chi-squared tests
    drift = measure_drift(champion.manifest["training_profile"], frame, min_psi_rows=DRIFT_MIN_PSI_ROWS)
    pipeline = os.environ.get("PIPELINE_NAME", config.name)
    measured_at = datetime.now(UTC)
    dimensions = [{"Name": "Pipeline", "Value": pipeline}]
    cloudwatch.put_metric_data(
        Namespace=metric_namespace(),
        MetricData=[
            # high resolution so short alarm periods (10 s, 30 s) work for fast feedback loops
            {"MetricName": QUALITY_METRIC_NAME, "Dimensions": dimensions, "Value": scores[metric],
             "Timestamp": measured_at, "StorageResolution": 1, "Unit": "None"},
            {"MetricName": "DriftedFeatureShare", "Dimensions": dimensions, "Value": drift.drifted_share,
             "Timestamp": measured_at, "StorageResolution": 1, "Unit": "None"},
            {"MetricName": "MaxFeaturePSI", "Dimensions": dimensions, "Value": drift.max_psi,
             "Timestamp": measured_at, "StorageResolution": 1, "Unit": "None"},
        ],
    )
    report = {
        "pipeline": pipeline,
        "champion_version": champion.version,
        "dataset_version": dataset.version,
        "rows": int(frame[schema.target].notna().sum()),
        "metric": metric,
        "value": scores[metric],
        "scores": scores,
        "alarm_threshold": config.alarm.threshold,
        "drift": drift.to_dict(),
        "reason": reason,
        "measured_at": measured_at.isoformat(),
    }
    key = f"monitoring/{measured_at.strftime('%Y%m%dT%H%M%S%fZ')}-{dataset.version}.json"
    store.put_json(key, report)
    return {"report_key": key, "champion_version": champion.version, "dataset_version": dataset.version,
            "metric": metric, "value": scores[metric], "drifted_share": drift.drifted_share}
