"""SageMaker training jobs on the emulator (gap module sagemaker_training_jobs): the container's entry point runs
as a local process under the job's role, with the instance's memory and MaxRuntimeInSeconds enforced, and the
ASL's createTrainingJob.sync waits for the job and fails the task with SageMaker's reason."""

from __future__ import annotations

import json
import textwrap
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from loopline.emulator.enforcement_switches import SWITCH_VARIABLE
from loopline_runtime.training_instances import INSTANCE_MEMORY_MB

BUCKET = "training-jobs-test"
SAGEMAKER = "sagemaker.amazonaws.com"

# the entry point: writes a marker to S3 with the job's own credentials, then does what `mode` says
ENTRY_POINT = textwrap.dedent("""
    import json, os, pathlib, sys, time
    import boto3
    opt_ml = pathlib.Path(os.environ["LOOPLINE_OPT_ML"])
    mode = json.loads((opt_ml / "input/config/hyperparameters.json").read_text())["mode"]
    boto3.client("s3").put_object(Bucket=os.environ["BUCKET"], Key="out/" + os.environ["TRAINING_JOB_NAME"], Body=b"x")
    (opt_ml / "model" / "weights.txt").write_text("42")
    if mode == "fail":
        (opt_ml / "output" / "failure").write_text("ValueError: the data has one class")
        sys.exit(3)
    if mode == "slow":
        time.sleep(60)
    if mode == "memory":
        block = bytearray(300 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
""")


@pytest.fixture
def job_role(aws: Callable[[str], Any], make_role: Callable[..., str]) -> str:
    aws("s3").create_bucket(Bucket=BUCKET)
    return make_role(SAGEMAKER, [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}])


def _job(role: str, mode: str, *, max_runtime: int = 120, name: str | None = None) -> dict[str, Any]:
    return {
        "TrainingJobName": name or f"job-{uuid.uuid4().hex[:8]}",
        "RoleArn": role,
        "AlgorithmSpecification": {"TrainingImage": "local/test:1", "TrainingInputMode": "File",
                                   "ContainerEntrypoint": ["python", "-c", ENTRY_POINT]},
        "HyperParameters": {"mode": mode},
        "Environment": {"BUCKET": BUCKET},
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
    }


def _wait(aws: Callable[[str], Any], name: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described: dict[str, Any] = aws("sagemaker").describe_training_job(TrainingJobName=name)
        if described["TrainingJobStatus"] not in {"InProgress", "Stopping"}:
            return described
        time.sleep(0.2)
    raise TimeoutError(name)


def test_a_job_runs_its_entry_point_as_its_role_and_uploads_the_model(aws, job_role):
    # given a job whose entry point writes to S3 and to /opt/ml/model
    job = _job(job_role, "ok")

    # when it is created
    aws("sagemaker").create_training_job(**job)
    running = aws("sagemaker").describe_training_job(TrainingJobName=job["TrainingJobName"])
    described = _wait(aws, job["TrainingJobName"])

    # then it was in progress, then completed; its write was made (allowed) as the role; /opt/ml/model was uploaded
    assert running["TrainingJobStatus"] == "InProgress"
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Completed", "Completed")
    assert "FailureReason" not in described
    keys = [o["Key"] for o in aws("s3").list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert f"out/{job['TrainingJobName']}" in keys
    assert f"output/{job['TrainingJobName']}/output/model.tar.gz" in keys


def test_a_write_the_role_does_not_allow_fails_the_job(aws, make_role):
    # given a job role that may not write to the bucket
    aws("s3").create_bucket(Bucket=BUCKET)
    role = make_role(SAGEMAKER, [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}])

    # when the job runs
    job = _job(role, "ok")
    aws("sagemaker").create_training_job(**job)
    described = _wait(aws, job["TrainingJobName"])

    # then its entry point's call was refused (its traceback is the job's log) and the job failed
    assert described["TrainingJobStatus"] == "Failed"
    assert described["FailureReason"] == "AlgorithmError: See job logs for more information"


def test_a_non_zero_exit_fails_the_job_with_the_failure_file(aws, job_role):
    job = _job(job_role, "fail")
    aws("sagemaker").create_training_job(**job)
    described = _wait(aws, job["TrainingJobName"])
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Failed", "Failed")
    assert described["FailureReason"] == "AlgorithmError: ValueError: the data has one class"


def test_a_job_past_max_runtime_is_stopped(aws, job_role):
    job = _job(job_role, "slow", max_runtime=2)
    started = time.monotonic()
    aws("sagemaker").create_training_job(**job)
    described = _wait(aws, job["TrainingJobName"])
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert time.monotonic() - started < 30  # stopped, not slept through


def test_a_job_past_its_instance_memory_fails_out_of_memory(aws, job_role, monkeypatch):
    # given an instance type of 128 MB (the real ones hold GBs; the rule is the same)
    monkeypatch.setitem(INSTANCE_MEMORY_MB, "ml.m5.large", 128)

    # when the entry point holds 300 MB
    job = _job(job_role, "memory")
    aws("sagemaker").create_training_job(**job)
    described = _wait(aws, job["TrainingJobName"])

    # then SageMaker's out-of-memory failure
    assert described["TrainingJobStatus"] == "Failed"
    assert described["FailureReason"].startswith("OutOfMemoryError: Please use an instance type with more memory")

    # and with memory enforcement switched off, the same job completes (the enforcement is what stopped it)
    monkeypatch.setenv(SWITCH_VARIABLE, "memory")
    again = _job(job_role, "memory")
    aws("sagemaker").create_training_job(**again)
    assert _wait(aws, again["TrainingJobName"])["TrainingJobStatus"] == "Completed"


def test_a_role_sagemaker_may_not_assume_is_refused(aws, make_role):
    role = make_role("lambda.amazonaws.com", [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}])
    with pytest.raises(ClientError) as refused:
        aws("sagemaker").create_training_job(**_job(role, "ok"))
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "does not allow sagemaker.amazonaws.com" in refused.value.response["Error"]["Message"]


# the entry point of a job with input channels: every file SageMaker put under input/data, and inputdataconfig.json
CHANNEL_READER = textwrap.dedent("""
    import json, os, pathlib
    import boto3
    opt_ml = pathlib.Path(os.environ["LOOPLINE_OPT_ML"])
    files = {p.relative_to(opt_ml / "input/data").as_posix(): p.read_text()
             for p in sorted((opt_ml / "input/data").rglob("*")) if p.is_file()}
    config = json.loads((opt_ml / "input/config/inputdataconfig.json").read_text())
    body = json.dumps({"files": files, "config": config}).encode()
    boto3.client("s3").put_object(Bucket=os.environ["BUCKET"], Key="out/" + os.environ["TRAINING_JOB_NAME"], Body=body)
""")


def _channel_job(role: str) -> dict[str, Any]:
    job = _job(role, "ok")
    job["AlgorithmSpecification"]["ContainerEntrypoint"] = ["python", "-c", CHANNEL_READER]
    job["InputDataConfig"] = [
        {"ChannelName": name, "InputMode": "FastFile", "ContentType": "text/csv",
         "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/datasets/{name}/"}}}
        for name in ("ds-a", "ds-b")]
    return job


def test_input_channels_are_files_under_input_data_downloaded_as_the_role(aws, make_role):
    # given two dataset folders in S3 (and a sibling whose name shares the prefix), and a role that may read them
    s3 = aws("s3")
    s3.create_bucket(Bucket=BUCKET)
    for key, body in {"datasets/ds-a/data.csv": "x\n1\n", "datasets/ds-a/manifest.json": "{}",
                      "datasets/ds-b/data.csv": "x\n2\n", "datasets/ds-ab/data.csv": "other"}.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())
    role = make_role(SAGEMAKER, [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/out/*"},
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/output/*"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/datasets/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"}])

    # when a job names one S3Prefix channel per folder
    job = _channel_job(role)
    aws("sagemaker").create_training_job(**job)
    described = _wait(aws, job["TrainingJobName"])

    # then the entry point found each channel's objects as files under input/data/<channel>/, and the channels'
    # modes in inputdataconfig.json
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    seen = json.loads(s3.get_object(Bucket=BUCKET, Key=f"out/{job['TrainingJobName']}")["Body"].read())
    assert seen["files"] == {"ds-a/data.csv": "x\n1\n", "ds-a/manifest.json": "{}", "ds-b/data.csv": "x\n2\n"}
    assert seen["config"] == {name: {"ContentType": "text/csv", "TrainingInputMode": "FastFile"}
                              for name in ("ds-a", "ds-b")}

    # when the role may not read one channel's rows
    denied = make_role(SAGEMAKER, [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/datasets/ds-a/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"}])
    refused = _channel_job(denied)
    aws("sagemaker").create_training_job(**refused)
    described = _wait(aws, refused["TrainingJobName"])

    # then the job fails before its entry point runs, with SageMaker's ClientError naming the object and the role
    assert described["TrainingJobStatus"] == "Failed"
    assert described["FailureReason"].startswith(
        f"ClientError: Data download failed: channel ds-b: 403 on s3://{BUCKET}/datasets/ds-b/data.csv: "
        f"the job's role {denied} may not read it"), described["FailureReason"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="out/")["Contents"]]
    assert f"out/{refused['TrainingJobName']}" not in keys


def _state_machine(aws: Callable[[str], Any], make_role: Callable[..., str], job_role: str, *,
                   pass_role: bool = True) -> str:
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": ["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob"],
         "Resource": "arn:aws:sagemaker:us-east-1:123456789012:training-job/*"}]
    if pass_role:
        statements.append({"Effect": "Allow", "Action": "iam:PassRole", "Resource": job_role,
                           "Condition": {"StringEquals": {"iam:PassedToService": SAGEMAKER}}})
    role = make_role("states.amazonaws.com", statements)
    task = {"Type": "Task", "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync",
            "Parameters": {**_job(job_role, "ok"), "TrainingJobName.$": "$.name", "HyperParameters.$": "$.hyper"},
            "End": True}
    del task["Parameters"]["TrainingJobName"], task["Parameters"]["HyperParameters"]  # type: ignore[attr-defined]
    definition = {"StartAt": "Train", "States": {"Train": task}}
    return str(aws("stepfunctions").create_state_machine(
        name=f"sm-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=role)["stateMachineArn"])


def _run(aws: Callable[[str], Any], machine: str, mode: str) -> dict[str, Any]:
    job = {"name": f"job-{uuid.uuid4().hex[:8]}", "hyper": {"mode": mode}}
    arn = aws("stepfunctions").start_execution(stateMachineArn=machine, name=f"run-{uuid.uuid4().hex[:8]}",
                                               input=json.dumps(job))["executionArn"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        described: dict[str, Any] = aws("stepfunctions").describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            history = aws("stepfunctions").get_execution_history(executionArn=arn)["events"]
            failed = [e for e in history if e["type"] in {"TaskFailed", "ExecutionFailed"}]
            return {**described, "failure": failed[0] if failed else None}
        time.sleep(0.3)
    raise TimeoutError(arn)


def test_sync_waits_for_the_job_and_fails_the_task_with_its_description(aws, make_role, job_role):
    # given a state machine whose role may create and describe training jobs and pass the job's role
    machine = _state_machine(aws, make_role, job_role)

    # when a job completes, and one fails
    completed = _run(aws, machine, "ok")
    failed = _run(aws, machine, "fail")

    # then the first execution waited for it and succeeded with the job's description
    assert completed["status"] == "SUCCEEDED", completed
    assert json.loads(completed["output"])["TrainingJobStatus"] == "Completed"
    # and the second failed its task with States.TaskFailed and the description (FailureReason) as the cause
    assert failed["status"] == "FAILED"
    details = failed["failure"]["taskFailedEventDetails"]
    assert details["error"] == "States.TaskFailed"
    assert json.loads(details["cause"])["FailureReason"] == "AlgorithmError: ValueError: the data has one class"


def test_creating_a_job_needs_pass_role_on_its_role(aws, make_role, job_role):
    # given a state machine role without iam:PassRole
    machine = _state_machine(aws, make_role, job_role, pass_role=False)

    # when it creates a job
    execution = _run(aws, machine, "ok")

    # then the call is refused, naming the missing permission
    assert execution["status"] == "FAILED"
    details = execution["failure"]["taskFailedEventDetails"]
    assert details["error"] == "SageMaker.AccessDeniedException"
    assert "is not authorized to perform: iam:PassRole on resource" in details["cause"]
