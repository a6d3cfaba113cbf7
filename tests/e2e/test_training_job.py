"""training.engine: sagemaker — the challenger trains on a (locally emulated) SageMaker training job started by the
training state machine, and is evaluated, promoted and served as one trained by the TrainFunction; a job that
fails or overruns its MaxRuntimeInSeconds ends the run at "Notify: training failed" with SageMaker's reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from loopline.client import StackClient
from loopline.examples import TARGET, breast_cancer, split_batches
from loopline_runtime.bucket_layout import (
    CHAMPION_KEY,
    DATASET_INDEX_PREFIX,
    MODELS_PREFIX,
    TRAINING_JOBS_PREFIX,
    model_prefix,
)
from tests.support.notifications import Inbox

pytestmark = pytest.mark.e2e

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/loopline-training:test"  # recorded, not pulled, locally


def _job_config(local_stack_config_path: Path, folder: Path, name: str, **training: Any) -> Path:
    config = yaml.safe_load(local_stack_config_path.read_text())
    config["training"].update(engine="sagemaker", image=IMAGE, **training)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _finished(stack: StackClient, known: set[str]) -> dict[str, Any]:
    execution = stack.wait_for_new_execution(known, timeout=180)
    return stack.wait_for_execution(execution["executionArn"], timeout=600)


def _job_name(stack: StackClient, execution_arn: str) -> str:
    history = stack.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    scheduled = [json.loads(e["taskScheduledEventDetails"]["parameters"]) for e in history
                 if e.get("taskScheduledEventDetails", {}).get("resourceType") == "sagemaker"]
    return str(scheduled[0]["TrainingJobName"])


def test_a_job_trained_challenger_is_promoted_and_served_and_a_failed_job_leaves_the_champion(
        start_stack: Callable[..., StackClient], local_stack_config_path: Path, tmp_path: Path) -> None:
    # given a stack that trains every window on a training job, and an inbox
    stack = start_stack(_job_config(local_stack_config_path, tmp_path, "job"))
    inbox = Inbox(stack)
    first, second, fresh = split_batches(breast_cancer(), [250, 100, 5])

    # when the first upload is trained
    stack.upload_csv(first, "first.csv")
    described = _finished(stack, set())

    # then it went through the job, and the job's challenger was evaluated, promoted and serves
    assert described["status"] == "SUCCEEDED", described
    states = stack.entered_states(described["executionArn"])
    assert states[:4] == ["Plan training", "Choose where to train", "Train on a SageMaker training job",
                          "Read the training job's result"]
    assert "Train challenger" not in states and states[-1] == "Promoted"
    job_name = _job_name(stack, described["executionArn"])
    job = stack.client("sagemaker").describe_training_job(TrainingJobName=job_name)
    assert job["TrainingJobStatus"] == "Completed"
    champion = stack.read_json(CHAMPION_KEY)
    manifest = stack.read_json(f"{model_prefix(champion['version'])}manifest.json")
    assert manifest["trigger"]["training_job"] == job_name
    # and the job trained from its input channel's files (one per dataset version), not from S3
    version = manifest["dataset_versions"][0]
    assert [(c["ChannelName"], c["InputMode"]) for c in job["InputDataConfig"]] == [(version, "FastFile")]
    read = stack.read_json(f"{TRAINING_JOBS_PREFIX}{job_name}/result.json")["input_channels_read"]
    assert set(read) == {f"{version}/data.csv", f"{version}/manifest.json"} and read[f"{version}/data.csv"] > 0
    assert stack.keys(f"{TRAINING_JOBS_PREFIX}{job_name}/") == [
        f"{TRAINING_JOBS_PREFIX}{job_name}/output/model.tar.gz", f"{TRAINING_JOBS_PREFIX}{job_name}/result.json"]
    response = stack.predict(fresh.drop(columns=[TARGET]).to_dict(orient="records"))
    assert response.status == 200 and response.body["model_version"] == champion["version"], response.text

    # when the job's role loses read access to the datasets' rows (a misconfigured role) and new data is trained
    role = stack.client("cloudformation").describe_stack_resource(
        StackName=stack.stack_name, LogicalResourceId="TrainingJobRole")["StackResourceDetail"]["PhysicalResourceId"]
    stack.client("iam").put_role_policy(RoleName=role, PolicyName="test-deny-datasets", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:GetObject",
                                                "Resource": f"arn:aws:s3:::{stack.bucket}/datasets/*/data.csv"}]}))
    stack.upload_csv(second, "second.csv")
    stack.wait_for_keys(DATASET_INDEX_PREFIX, 2)
    models_before = set(stack.keys(MODELS_PREFIX))
    stack.sfn.start_execution(stateMachineArn=stack.state_machine_arn, name="manual-after-second",
                              input=json.dumps({"reason": "manual"}))
    failed_run = _finished(stack, {described["executionArn"]})

    # then the job's channel cannot be downloaded as its role, the run fails at the train step with the job's
    # reason (SageMaker's ClientError), the champion stays
    assert failed_run["status"] == "FAILED", failed_run
    failed = inbox.wait_for("training_failed")
    assert failed["message"]["step"] == "train" and failed["message"]["error"] == "States.TaskFailed"
    cause = json.loads(failed["message"]["cause"])
    assert cause["TrainingJobStatus"] == "Failed"
    assert cause["FailureReason"].startswith("ClientError: Data download failed: channel ds-"), cause
    assert f"{cause['FailureReason']}".count("/data.csv") == 1, cause["FailureReason"]
    assert stack.read_json(CHAMPION_KEY) == champion
    registered = {k for k in set(stack.keys(MODELS_PREFIX)) - models_before if k.endswith("/manifest.json")}
    assert registered == set(), registered


def test_a_job_past_its_max_runtime_is_stopped_and_the_run_fails(
        start_stack: Callable[..., StackClient], local_stack_config_path: Path, tmp_path: Path) -> None:
    # given a stack whose training jobs may run 1 second (too short to import scikit-learn)
    stack = start_stack(_job_config(local_stack_config_path, tmp_path, "short", job_max_runtime_seconds=1))
    inbox = Inbox(stack)

    # when an upload is trained
    stack.upload_csv(split_batches(breast_cancer(), [250])[0], "first.csv")
    described = _finished(stack, set())

    # then the job is stopped at its limit, the run fails at the train step saying so, and nothing is promoted
    assert described["status"] == "FAILED", described
    failed = inbox.wait_for("training_failed")
    cause = json.loads(failed["message"]["cause"])
    assert (cause["TrainingJobStatus"], cause["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert cause["StoppingCondition"]["MaxRuntimeInSeconds"] == 1
    assert CHAMPION_KEY not in stack.keys(CHAMPION_KEY)
    assert [k for k in stack.keys(MODELS_PREFIX) if k.endswith("manifest.json")] == []
