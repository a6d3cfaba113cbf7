"""Where a window trains (training_plan.plan_training): decided from its manifests alone by the measured
memory-per-cell rule, with training.engine / instance_type / image as the user's overrides."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from loopline_runtime.config import PipelineConfig, parse_config
from loopline_runtime.datasets import DatasetVersion
from loopline_runtime.errors import InvalidConfig, TrainingFailed
from loopline_runtime.training import MEASURED_CELLS, MEASURED_MEMORY_MB
from loopline_runtime.training_instances import INSTANCE_MEMORY_MB
from loopline_runtime.training_plan import MAX_CHANNELS, plan_training

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/loopline-training:1"
SCHEMA = {"target": "label", "task": "classification", "features": {f"x{i}": "numeric" for i in range(29)}}
COLUMNS = 30  # 29 features + the target


class Manifests:
    """A catalog that has only manifests (the plan must not load data: it has nothing else to read)."""

    store = SimpleNamespace(bucket="artifacts")

    def __init__(self, *rows: int) -> None:
        self.versions = [DatasetVersion(f"ds-{i}", {"rows": n, "schema": SCHEMA}) for i, n in enumerate(rows)]

    def newest(self, count: int, *, max_age_days: int | None = None) -> list[DatasetVersion]:
        return self.versions[-count:]


def _config(pipeline_config: PipelineConfig, **training: Any) -> PipelineConfig:
    data = pipeline_config.model_dump(mode="json")
    data["training"].update(training)
    return parse_config(data, source="test")


def _plan(config: PipelineConfig, *rows: int) -> Any:
    return plan_training(Manifests(*rows), config, lambda_memory_mb=MEASURED_MEMORY_MB,  # type: ignore[arg-type]
                         execution_arn="arn:execution", trigger={"reason": "new_data"})


def test_auto_keeps_a_window_the_train_function_trains_on_it(pipeline_config):
    plan = _plan(_config(pipeline_config, image=IMAGE), MEASURED_CELLS // COLUMNS)
    assert (plan.engine, plan.cells, plan.lambda_limit_cells) == ("lambda", MEASURED_CELLS, MEASURED_CELLS)


def test_auto_sends_a_larger_window_to_the_smallest_instance_that_fits(pipeline_config):
    # given a window of three times the cells the TrainFunction is measured to train
    plan = _plan(_config(pipeline_config, image=IMAGE), MEASURED_CELLS // COLUMNS, 2 * MEASURED_CELLS // COLUMNS)

    # then a training job on the smallest instance type measured to hold it (8 GB: 2.7 times the 3,008 MB)
    assert plan.engine == "sagemaker" and plan.cells == 3 * MEASURED_CELLS
    assert (plan.instance_type, plan.instance_memory_mb) == ("ml.m5.xlarge", INSTANCE_MEMORY_MB["ml.m5.xlarge"])
    assert plan.image == IMAGE and plan.max_runtime_seconds == 3600
    assert plan.job_name.startswith("loopline-train-") and len(plan.job_name) <= 63
    assert plan.hyperparameters == {"job_name": plan.job_name, "execution_arn": "arn:execution",
                                    "trigger": json.dumps({"reason": "new_data"}),
                                    "instance_memory_mb": str(INSTANCE_MEMORY_MB["ml.m5.xlarge"])}
    assert all(isinstance(v, str) for v in plan.hyperparameters.values())  # SageMaker takes strings only


def test_a_job_reads_each_dataset_version_of_the_window_as_a_fast_file_channel(pipeline_config):
    # given a window of three dataset versions trained on a job
    plan = _plan(_config(pipeline_config, engine="sagemaker", image=IMAGE, window=3), 10, 20, 30)

    # then each version's folder is one S3Prefix channel named by the version, streamed (FastFile)
    assert plan.input_data_config == [
        {"ChannelName": f"ds-{i}", "InputMode": "FastFile", "ContentType": "text/csv",
         "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
                                         "S3Uri": f"s3://artifacts/datasets/ds-{i}/"}}} for i in range(3)]


def test_a_window_of_more_versions_than_a_job_has_channels_fails_before_a_job_starts(pipeline_config):
    config = _config(pipeline_config, engine="sagemaker", image=IMAGE, window=MAX_CHANNELS + 1)
    with pytest.raises(TrainingFailed, match=rf"SageMaker allows at most {MAX_CHANNELS}. Set training.window"):
        _plan(config, *[10] * (MAX_CHANNELS + 1))
    assert len(_plan(config, *[10] * MAX_CHANNELS).input_data_config) == MAX_CHANNELS


def test_auto_without_an_image_stays_on_the_train_function_and_says_why(pipeline_config):
    plan = _plan(_config(pipeline_config), 2 * MEASURED_CELLS // COLUMNS)
    assert plan.engine == "lambda"
    assert "no training.image is set" in plan.why


def test_the_engine_can_be_forced_either_way(pipeline_config):
    small, large = MEASURED_CELLS // COLUMNS // 10, 2 * MEASURED_CELLS // COLUMNS
    assert _plan(_config(pipeline_config, engine="sagemaker", image=IMAGE), small).engine == "sagemaker"
    assert _plan(_config(pipeline_config, engine="lambda", image=IMAGE), large).engine == "lambda"
    forced = _plan(_config(pipeline_config, engine="sagemaker", image=IMAGE, instance_type="ml.r5.4xlarge"), small)
    assert forced.instance_type == "ml.r5.4xlarge"


def test_a_window_too_large_for_the_instance_type_fails_before_a_job_starts(pipeline_config):
    config = _config(pipeline_config, engine="sagemaker", image=IMAGE, instance_type="ml.m5.large")
    with pytest.raises(TrainingFailed, match=r"ml\.m5\.large .* is measured to train at most"):
        _plan(config, 10 * MEASURED_CELLS // COLUMNS)


@pytest.mark.parametrize(("training", "message"), [
    ({"engine": "sagemaker"}, "training.engine: sagemaker needs training.image"),
    ({"instance_type": "ml.p9.huge"}, "training.instance_type 'ml.p9.huge' is not one of"),
    ({"engine": "spark"}, "engine"),
])
def test_bad_engine_settings_are_refused_with_the_fix(pipeline_config, training, message):
    with pytest.raises(InvalidConfig, match=message):
        _config(pipeline_config, **training)
