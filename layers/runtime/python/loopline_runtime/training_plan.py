"""Where the challenger trains: the TrainFunction, or a SageMaker training job for windows past its memory.

The decision reads only the window's manifests (rows x model-input columns, the cells the measured rule in
training.check_training_size is stated in), so it costs one Lambda invocation of a second, not a load.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from loopline_runtime.bucket_layout import dataset_prefix
from loopline_runtime.config import PipelineConfig
from loopline_runtime.datasets import DatasetCatalog, DatasetVersion
from loopline_runtime.errors import TrainingFailed
from loopline_runtime.schema import FeatureSchema
from loopline_runtime.training import cells_limit, window_size
from loopline_runtime.training_instances import INSTANCE_MEMORY_MB

MAX_CHANNELS = 20  # SageMaker's limit on a training job's InputDataConfig: one channel per dataset version


@dataclass(frozen=True)
class TrainingPlan:
    """The state machine's routing input: `engine` picks the branch; the job fields are set for "sagemaker"."""

    engine: str  # "lambda" | "sagemaker"
    why: str
    rows: int
    columns: int
    cells: int
    lambda_limit_cells: int
    job_name: str = ""
    image: str = ""
    instance_type: str = ""
    instance_memory_mb: int = 0
    max_runtime_seconds: int = 0
    # the job's input, as SageMaker passes it (/opt/ml/input/config/hyperparameters.json: strings only)
    hyperparameters: dict[str, str] = field(default_factory=dict)
    # the window's dataset versions as the job's input channels (CreateTrainingJob's InputDataConfig)
    input_data_config: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_training(catalog: DatasetCatalog, config: PipelineConfig, *, lambda_memory_mb: int, execution_arn: str,
                  trigger: dict[str, Any]) -> TrainingPlan:
    """Choose the engine for this window (training.engine; auto: the TrainFunction while the window fits it).

    Raises:
        TrainingFailed: the window is larger than the largest instance type (or the configured one) trains.
    """
    training = config.training
    datasets = catalog.newest(training.window, max_age_days=training.window_days)
    rows, columns = window_size(datasets, FeatureSchema.from_dict(datasets[-1].manifest["schema"]))
    cells, limit = rows * columns, cells_limit(lambda_memory_mb)
    if training.engine == "lambda":
        return TrainingPlan("lambda", "training.engine: lambda", rows, columns, cells, limit)
    if training.engine == "auto" and cells <= limit:
        return TrainingPlan("lambda", f"{cells:,} cells fit the TrainFunction ({limit:,} at {lambda_memory_mb:,} MB)",
                            rows, columns, cells, limit)
    if not training.image:  # auto only: engine sagemaker without an image is refused when the config is read
        why = (f"{cells:,} cells are more than the TrainFunction trains ({limit:,}), and no training.image is set "
               "for a SageMaker training job (make training-image)")
        return TrainingPlan("lambda", why, rows, columns, cells, limit)
    instance_type = training.instance_type or _smallest_instance_for(cells)
    memory = INSTANCE_MEMORY_MB[instance_type]
    if cells > cells_limit(memory):
        raise TrainingFailed(
            f"the training window holds {rows:,} rows x {columns} columns ({cells:,} cells); a training job on "
            f"{instance_type} ({memory:,} MB) is measured to train at most {cells_limit(memory):,} cells. Set "
            f"training.instance_type to a larger one (or null to size it from the window), or lower training.window")
    if len(datasets) > MAX_CHANNELS:
        raise TrainingFailed(
            f"the training window holds {len(datasets)} dataset versions; a training job reads each as an input "
            f"channel and SageMaker allows at most {MAX_CHANNELS}. Set training.window to {MAX_CHANNELS} or fewer")
    job_name = f"loopline-train-{datetime.now(UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"
    why = ("training.engine: sagemaker" if training.engine == "sagemaker"
           else f"{cells:,} cells are more than the TrainFunction trains ({limit:,} at {lambda_memory_mb:,} MB)")
    return TrainingPlan(
        "sagemaker", why, rows, columns, cells, limit, job_name=job_name, image=training.image,
        instance_type=instance_type,
        instance_memory_mb=memory, max_runtime_seconds=training.job_max_runtime_seconds,
        hyperparameters={"job_name": job_name, "execution_arn": execution_arn, "trigger": json.dumps(trigger),
                         "instance_memory_mb": str(memory)},
        input_data_config=input_channels(catalog.store.bucket, datasets),
    )


def input_channels(bucket: str, datasets: list[DatasetVersion]) -> list[dict[str, Any]]:
    """One S3Prefix channel per dataset version, named by the version: SageMaker puts datasets/<version>/data.csv
    and manifest.json under /opt/ml/input/data/<version>/ (FastFile: streamed from S3 as they are read).

    S3Prefix per version rather than one ManifestFile channel: nothing has to be written for it (the plan step only
    reads), the job role's read grant is the datasets/ folder it already has, and each channel holds one version's
    files, so the job knows which version each file is without a lookup. The cost is SageMaker's 20 channels."""
    return [{
        "ChannelName": dataset.version,
        "InputMode": "FastFile",
        "ContentType": "text/csv",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
                                        "S3Uri": f"s3://{bucket}/{dataset_prefix(dataset.version)}"}},
    } for dataset in datasets]


def _smallest_instance_for(cells: int) -> str:
    for instance_type, memory in INSTANCE_MEMORY_MB.items():
        if cells <= cells_limit(memory):
            return instance_type
    return next(reversed(INSTANCE_MEMORY_MB))  # too large even for it: plan_training says so
