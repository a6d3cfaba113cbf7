"""The training job's entry point (loopline_runtime.training_job) on the synthetic table: what a SageMaker training
job runs, measured as the train case measures the TrainFunction (`--only train,train_job`: the same table on both;
past the TrainFunction's measured cells, the train case is refused and this one trains)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any


def child_train_job(workdir: Path) -> dict[str, Any]:
    """Ingest the table, plan it for a training job (the smallest instance type that fits), run the entry point."""
    from loopline.bench.cases import BUCKET, UPLOAD_KEY, _aws_environment, reset_hwm, vm_hwm_kib
    from loopline.bench.ingest import moto_server
    from loopline.bench.limits import FunctionLimits

    plan_data = json.loads((workdir / "plan.json").read_text())
    lambda_limits = FunctionLimits(**plan_data["train_limits"])
    _aws_environment(lambda_limits, workdir / "config.yaml")
    os.environ.pop("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", None)  # a job is not a Lambda: its instance sets the memory
    import boto3

    from loopline_runtime import training_job
    from loopline_runtime.bucket_layout import training_job_result_key
    from loopline_runtime.config import runtime_config
    from loopline_runtime.datasets import DatasetCatalog
    from loopline_runtime.ingest import ingest_upload
    from loopline_runtime.storage import ObjectStore
    from loopline_runtime.training_plan import plan_training

    with moto_server() as endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        store = ObjectStore(BUCKET)
        config = runtime_config()
        store.put_file(UPLOAD_KEY, workdir / "data.csv", content_type="text/csv")
        if ingest_upload(store, UPLOAD_KEY, config).status != "accepted":
            raise RuntimeError("the synthetic upload was not accepted")
        as_job = config.model_copy(update={"training": config.training.model_copy(
            update={"engine": "sagemaker", "image": "bench"})})
        plan = plan_training(DatasetCatalog(store), as_job, lambda_memory_mb=lambda_limits.memory_mb,
                             execution_arn="bench", trigger={"reason": "benchmark"})
        opt_ml = workdir / "opt_ml"
        (opt_ml / "input" / "config").mkdir(parents=True, exist_ok=True)
        (opt_ml / "input" / "config" / "hyperparameters.json").write_text(json.dumps(plan.hyperparameters))
        (opt_ml / "output" / "failure").unlink(missing_ok=True)
        shutil.rmtree(opt_ml / "input" / "data", ignore_errors=True)  # a previous run's channels
        for channel in plan.input_data_config:  # what SageMaker (and the emulator) put under input/data/<channel>
            prefix = channel["DataSource"]["S3DataSource"]["S3Uri"].removeprefix(f"s3://{BUCKET}/")
            for key in store.list_keys(prefix):
                target = opt_ml / "input" / "data" / channel["ChannelName"] / key[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                store.client.download_file(BUCKET, key, str(target))
        os.environ[training_job.OPT_ML_ENV] = str(opt_ml)
        import gc

        gc.collect()
        result: dict[str, Any] = {"hwm_reset": reset_hwm(), "rss_before_job_kib": vm_hwm_kib()}
        t0, cpu0 = time.perf_counter(), time.process_time()
        exit_code = training_job.main()
        result.update(job_s=time.perf_counter() - t0, job_cpu_s=time.process_time() - cpu0, exit_code=exit_code,
                      train_hwm_kib=vm_hwm_kib(), hwm_kib=vm_hwm_kib())
        failure = opt_ml / "output" / "failure"
        result["failure"] = failure.read_text() if failure.is_file() else None
        result["plan"] = {k: v for k, v in plan.to_dict().items() if k != "hyperparameters"}
        result["lambda_memory_mb"] = lambda_limits.memory_mb
        if exit_code == 0:
            trained = store.get_json(training_job_result_key(plan.job_name))
            manifest = store.get_json(f"models/{trained['model_version']}/manifest.json")
            result["manifest"] = {k: manifest[k] for k in (
                "estimator", "holdout_score", "training_rows", "training_seconds", "peak_memory_mb", "metric")}
    return result
