"""A SageMaker training job's entry point (`python -m loopline_runtime.training_job`): the TrainFunction's train
step, unchanged, on an instance with more memory.

SageMaker passes the job's input as /opt/ml/input/config/hyperparameters.json (the plan step's hyperparameters:
job name, execution ARN, trigger, instance memory), the window's dataset versions as input channels under
/opt/ml/input/data/<version>/ (read through ChannelStore, so the train step reads files, not S3), and reports a
failure with the text of /opt/ml/output/failure as the job's FailureReason. The model is registered under
models/<version>/ exactly as the TrainFunction does it; the step's result goes to
models/_training-jobs/<job>/result.json, which the state machine reads back (and verifies: `verify_registered`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from loopline_runtime.bucket_layout import training_job_result_key
from loopline_runtime.channel_store import ChannelStore
from loopline_runtime.config import runtime_config
from loopline_runtime.datasets import DatasetCatalog
from loopline_runtime.errors import ArtifactIntegrityError, TrainingFailed, TrainingUpToDate
from loopline_runtime.registry import ModelRegistry, serves_scikit_learn
from loopline_runtime.storage import ObjectStore
from loopline_runtime.training import TRAINING_MEMORY_ENV, train_challenger

# the emulator runs a job in a folder of its own; SageMaker mounts /opt/ml
OPT_ML_ENV = "LOOPLINE_OPT_ML"
FAILURE_REASON_MAX = 1024  # SageMaker keeps the first 1,024 characters of the failure file

logger = logging.getLogger("loopline.training_job")


def main() -> int:
    """Train, write the result; on any error write the failure file and exit 1 (the job then fails with it)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(message)s")
    opt_ml = Path(os.environ.get(OPT_ML_ENV, "/opt/ml"))
    try:
        hyperparameters = json.loads((opt_ml / "input" / "config" / "hyperparameters.json").read_text())
        # the size check inside the train step measures against this instance, not a Lambda's memory
        os.environ[TRAINING_MEMORY_ENV] = hyperparameters["instance_memory_mb"]
        trigger = json.loads(hyperparameters["trigger"])
        store = ObjectStore.from_env()
        channels = ChannelStore(store, opt_ml / "input" / "data")
        if not channels.channels:
            raise RuntimeError(f"the job has no input channels under {channels.data_dir}: its InputDataConfig must "
                               "name the window's dataset versions (the plan step's input_data_config)")
        logger.info("reading dataset versions %s from the input channels under %s", ", ".join(channels.channels),
                    channels.data_dir)
        result_key = training_job_result_key(hyperparameters["job_name"])
        try:
            result = train_challenger(
                DatasetCatalog(channels), ModelRegistry(store), runtime_config(),
                trigger={**trigger, "execution_arn": hyperparameters["execution_arn"],
                         "training_job": hyperparameters["job_name"]},
            )
        except TrainingUpToDate as exc:  # not a failure: the state machine stands aside, as after the TrainFunction
            store.put_json(result_key, {"stand_aside": type(exc).__name__, "message": str(exc)})
            logger.info("%s", exc)
            return 0
        # which channel files the train step read (bytes): the datasets came from the channels, not from S3
        read = {Path(path).relative_to(channels.data_dir).as_posix(): size
                for path, size in sorted(channels.bytes_read.items())}
        logger.info("read from the input channels: %s", json.dumps(read))
        store.put_json(result_key, {**result.to_dict(), "reason": trigger.get("reason", "manual"),
                                    "input_channels_read": read})
        logger.info("challenger registered: %s", json.dumps(result.to_dict()))
        return 0
    except Exception as exc:  # every failure becomes the job's FailureReason, which the state machine notifies
        reason = f"{type(exc).__name__}: {exc}"
        logger.exception("training failed")
        failure = opt_ml / "output" / "failure"
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(reason[:FAILURE_REASON_MAX])
        return 1


def verify_registered(registry: ModelRegistry, version: str, job_name: str) -> dict[str, Any]:
    """The register step of a job-trained challenger, before evaluation: the bytes of every artifact its manifest
    pins match their sha256 (`ModelRegistry.verify`, as predict and the gate check them), the compiled (ONNX) form is
    there when the model serves ONNX, and its parity check passed. The manifest; else the error says what does not
    hold (the run then ends at "Notify: training failed", the champion untouched).

    Raises:
        NoChampion: no manifest at models/<version>/.
        ArtifactIntegrityError: an artifact is missing or its bytes do not match the manifest's sha256.
        TrainingFailed: no compiled form where one must serve, or its parity check did not pass.
    """
    manifest = registry.manifest(version)
    if not isinstance(manifest.get("artifact"), dict):
        raise ArtifactIntegrityError(f"model {version} written by training job {job_name} pins no model artifact "
                                     "in its manifest; it is not evaluated")
    registry.verify(version)
    if serves_scikit_learn(manifest):
        return manifest
    compiled = manifest.get("compiled") or {}
    if not isinstance(compiled.get("artifact"), dict):
        reason = compiled.get("error") or "the manifest records no model.onnx"
        raise TrainingFailed(f"model {version} written by training job {job_name} has no compiled (ONNX) form, "
                             f"which is what serves: {reason}; it is not evaluated")
    parity = compiled.get("parity") or {}
    if parity.get("passed") is not True:
        raise TrainingFailed(
            f"model {version} written by training job {job_name}: the parity check of its compiled (ONNX) form "
            f"{'did not pass (' + json.dumps(parity, sort_keys=True) + ')' if parity else 'is not recorded'}; "
            "it is not evaluated")
    return manifest


if __name__ == "__main__":
    sys.exit(main())
