"""Monitor: measure the champion on a new labeled batch and publish quality and drift to CloudWatch (ingest invokes
it asynchronously for each accepted upload while a champion serves; a daily schedule too).

A function of its own so that the ingest role, which parses untrusted CSVs, may invoke only this: its role reads the
registry but cannot write it, and it has no action that moves the champion pointer (the evaluate function's
promote, reject and rollback are invoked by the state machines only)."""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger

from loopline_runtime.datasets import DatasetCatalog
from loopline_runtime.errors import InvalidRequest
from loopline_runtime.live_drift import measure_live_drift
from loopline_runtime.monitor_settings import monitor_settings
from loopline_runtime.monitoring import monitor_champion
from loopline_runtime.orchestration import start_training
from loopline_runtime.storage import ObjectStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_cloudwatch import CloudWatchClient

logger = Logger()
config = monitor_settings()  # without pydantic: this function runs on the serving layer
store = ObjectStore.from_env()


@cache
def cloudwatch() -> CloudWatchClient:
    return boto3.client("cloudwatch")


def retrain(dataset_version: str) -> str:
    """Start a retraining for a bad batch measured while the alarm was already in ALARM (no new alarm event)."""
    return start_training(boto3.client("stepfunctions"), os.environ["STATE_MACHINE_ARN"], reason="alarm_persists",
                          dataset_version=dataset_version)


def retrain_on_live_drift(reason: str) -> str:
    """live_drift.retrain: retrain on the newest data (one retraining per newest dataset version)."""
    return start_training(boto3.client("stepfunctions"), os.environ["STATE_MACHINE_ARN"], reason="live_drift",
                          dataset_version=DatasetCatalog(store).latest().version)


@logger.inject_lambda_context(log_event=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("action") == "live_drift":
        live = measure_live_drift(store, config, cloudwatch(), reason=event.get("reason", "manual"),
                                  retrain=retrain_on_live_drift if os.environ.get("STATE_MACHINE_ARN") else None)
        logger.info("captured inputs measured", extra={k: v for k, v in live.items() if k != "drift"})
        return live
    if event.get("action") != "monitor":
        raise InvalidRequest(f"unknown action {event.get('action')!r}; the monitor function only measures the "
                             "champion: on a labeled batch ('monitor') or on the captured inputs ('live_drift')")
    report = monitor_champion(store, config, cloudwatch(), dataset_version=event.get("dataset_version", "latest"),
                              reason=event.get("reason", "manual"), alarm_name=os.environ.get("QUALITY_ALARM_NAME"),
                              retrain=retrain if os.environ.get("STATE_MACHINE_ARN") else None)
    logger.info("champion measured", extra=report)
    return report
