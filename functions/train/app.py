"""Train: the state machine's first task. Trains a challenger on the newest dataset versions and registers it;
also plans where a window trains (`action: plan`) and reads back and verifies a training job's result
(`action: job_result`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger

from loopline_runtime.bucket_layout import training_job_result_key
from loopline_runtime.config import runtime_config
from loopline_runtime.datasets import DatasetCatalog
from loopline_runtime.errors import TrainingUpToDate
from loopline_runtime.orchestration import acquire_training_lease
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.storage import ObjectStore
from loopline_runtime.training import train_challenger, training_memory_mb
from loopline_runtime.training_job import verify_registered
from loopline_runtime.training_plan import plan_training

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
config = runtime_config()
store = ObjectStore.from_env()
sfn = boto3.client("stepfunctions")


@logger.inject_lambda_context(log_event=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    trigger = event.get("trigger") or {}
    if event.get("action") == "job_result":  # what a SageMaker training job's train step returned
        result: dict[str, Any] = store.get_json(training_job_result_key(event["job_name"]))
        if result.get("stand_aside") == TrainingUpToDate.__name__:
            raise TrainingUpToDate(result["message"])  # routed to "Skipped", as from the train step
        # the register step: what the job wrote is checked (sha256, compiled form, parity) before evaluation
        verify_registered(ModelRegistry(store), result["model_version"], event["job_name"])
        return result
    if event.get("execution_arn"):
        acquire_training_lease(store, sfn, event["execution_arn"])
    if event.get("action") == "plan":  # Lambda or a training job: decided on the window's manifests alone
        plan = plan_training(DatasetCatalog(store), config, lambda_memory_mb=training_memory_mb(),
                             execution_arn=event.get("execution_arn") or "", trigger=trigger)
        logger.info("training plan", extra={k: v for k, v in plan.to_dict().items() if k != "hyperparameters"})
        return plan.to_dict()
    result = train_challenger(
        DatasetCatalog(store),
        ModelRegistry(store),
        config,
        trigger={**trigger, "execution_arn": event.get("execution_arn")},
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    logger.info("challenger registered", extra=result.to_dict())
    return {**result.to_dict(), "reason": trigger.get("reason", "manual")}
