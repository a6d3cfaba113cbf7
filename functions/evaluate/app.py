"""Evaluate: `gate` scores challenger and champion on the same holdout; `monitor` measures the champion on a
new labeled batch and publishes quality and drift to CloudWatch."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger

from loopline_runtime.config import runtime_config
from loopline_runtime.errors import InvalidRequest
from loopline_runtime.evaluation import gate_challenger
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.storage import ObjectStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
config = runtime_config()
store = ObjectStore.from_env()

@cache
def cloudwatch() -> Any:
    """Only monitoring publishes metrics: the gate path does not pay for this client at cold start."""
    return boto3.client("cloudwatch")


@logger.inject_lambda_context(log_event=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    action = event.get("action")
    if action == "gate":
        decision = gate_challenger(ModelRegistry(store), config, event["model_version"], event["holdout_key"])
        logger.info("gate decision", extra=decision.to_dict())
        return decision.to_dict()
    if action == "monitor":
        from loopline_runtime.monitoring import monitor_champion  # local: the gate path does not need it

        report = monitor_champion(store, config, cloudwatch(), dataset_version=event.get("dataset_version", "latest"),
                                  reason=event.get("reason", "manual"))
        logger.info("champion measured", extra=report)
        return report
    raise InvalidRequest(f"unknown action {action!r}; expected 'gate' or 'monitor'")
