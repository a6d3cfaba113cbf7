"""Gap: moto's SageMaker records a CreateTrainingJob as `Completed` at once and runs nothing, and its ASL
interpreter has no `sagemaker` integration (`createTrainingJob.sync` is forwarded once and never waited for).

Fill both, as SageMaker and Step Functions do:
- CreateTrainingJob needs SageMaker to be able to assume the job's role (its trust policy names
  `sagemaker.amazonaws.com`; else ValidationException). The job is `InProgress` while its container's entry point
  (`AlgorithmSpecification.ContainerEntrypoint` + `ContainerArguments`) runs as a local process: the job's
  `Environment`, the role's temporary credentials (so IAM is enforced on every call it makes), its
  hyperparameters in `<opt_ml>/input/config/hyperparameters.json` (`LOOPLINE_OPT_ML` names the folder that stands
  for /opt/ml). The image is not pulled: its code is the venv's pinned packages plus the stack's runtime layer,
  what `make training-image` puts in the image.
- Input channels (`InputDataConfig`, `S3DataType: S3Prefix`): before the entry point starts, every object under
  each channel's S3Uri is downloaded as the job's role to `<opt_ml>/input/data/<channel>/<key past the prefix>`
  (secondary status `Downloading`), and the channels are written to `input/config/inputdataconfig.json`. A download
  the role may not make fails the job with `ClientError: Data download failed: ...`, as SageMaker does. SageMaker's
  `FastFile` streams the files lazily from S3 as they are read; here they are materialised first (same files,
  same paths). `File` and `FastFile` channels are downloaded alike; ManifestFile/Pipe channels are refused.
- The instance type's memory is enforced (resident memory of the process and its children, as for Lambda
  workers): past it the job fails with SageMaker's `OutOfMemoryError` reason. `MaxRuntimeInSeconds` is enforced:
  SIGTERM, then SIGKILL after SageMaker's 120 s grace; the job is `Stopped` / `MaxRuntimeExceeded`.
- Exit 0: /opt/ml/model is uploaded as `<S3OutputPath>/<job>/output/model.tar.gz` with the role's credentials,
  then `Completed`. Non-zero: `Failed`, FailureReason `AlgorithmError: <the text of /opt/ml/output/failure>`.
- The ASL's `arn:aws:states:::sagemaker:createTrainingJob.sync` calls CreateTrainingJob and then
  DescribeTrainingJob (as the state machine role) until the job ends; Failed or Stopped fail the task with
  `States.TaskFailed` and the description as the Cause, as on AWS.
Not modelled: lazy FastFile streaming (files are materialised), ManifestFile and Pipe channels, StopTrainingJob
when an execution is stopped, Spot, several instances, and the provisioning minutes (the job starts at once).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import botocore.session
from botocore.exceptions import ClientError
from moto.core.utils import utcnow
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import FakeTrainingJob, sagemaker_backends
from moto.sagemaker.responses import SageMakerResponse
from moto.settings import moto_server_port
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_factory,
    state_task_service_unsupported,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

from loopline.emulator.role_sessions import RoleCannotBeAssumed, RoleSessions
from loopline.emulator.worker_limits import POLL_SECONDS, over_memory
from loopline_runtime.training_instances import INSTANCE_MEMORY_MB

SERVICE = "sagemaker.amazonaws.com"
OPT_ML_ENV = "LOOPLINE_OPT_ML"
STOP_GRACE_SECONDS = 120  # SIGTERM, then this long before the container is killed (StoppingCondition)
OUT_OF_MEMORY = ("OutOfMemoryError: Please use an instance type with more memory, or reduce the size of training "
                 "data processed on an instance.")
_INTEGRATION_PATTERNS: set[ResourceCondition] = {
    ResourceCondition.WaitForTaskToken, ResourceCondition.Sync}  # type: ignore[arg-type]  # str members
_ORIGINAL_FACTORY = state_task_service_factory.state_task_service_for
_ORIGINAL_CREATE = SageMakerResponse.create_training_job

Echo = Callable[[str, str], None]


class TrainingJobs:
    """Runs moto's training jobs as local processes (see the module docstring)."""

    def __init__(self, roles: RoleSessions, code_dir: Callable[[], Path | None], echo: Echo | None = None) -> None:
        self.roles = roles
        self.code_dir = code_dir  # the runtime layer's python/ folder: the image's own code
        self.echo = echo
        self._threads: list[threading.Thread] = []

    @property
    def aws_endpoint_url(self) -> str:
        """This emulator's endpoint (the moto server the job's calls go to, as the state machine's tasks do)."""
        return f"http://127.0.0.1:{moto_server_port()}"

    def installed(self) -> AbstractContextManager[object]:
        """The patches: CreateTrainingJob runs the job; the ASL's `sagemaker` integration supports `.sync`."""
        jobs = self

        def create_training_job(self: SageMakerResponse) -> Any:
            role_arn = str(self._get_param("RoleArn"))
            name = str(self._get_param("TrainingJobName"))
            try:
                credentials = jobs.roles.credentials(role_arn, SERVICE, name)
            except RoleCannotBeAssumed as exc:
                raise ValidationError(message=f"Could not assume role {role_arn}: {exc}") from None
            result = _ORIGINAL_CREATE(self)
            backend = sagemaker_backends[self.current_account][self.region]
            job = backend.training_jobs[name]
            _set_status(job, "InProgress", "Starting")
            job.training_end_time = None  # type: ignore[assignment]  # set when it ends
            environment = {str(k): str(v) for k, v in (self._get_param("Environment") or {}).items()}
            thread = threading.Thread(target=jobs.run, args=(job, environment, credentials.as_environment()),
                                      name=f"training-job-{name}", daemon=True)
            jobs._threads.append(thread)
            thread.start()
            return result

        return _patches(create_training_job)

    def run(self, job: FakeTrainingJob, environment: dict[str, str], credentials: dict[str, str]) -> None:
        """Run the job's container entry point to its end and record the outcome on the job."""
        opt_ml = Path(tempfile.mkdtemp(prefix=f"loopline-training-job-{job.training_job_name[:40]}-"))
        try:
            self._run(job, opt_ml, environment, credentials)
        except Exception as exc:  # the emulator failed, not the job: say so as SageMaker's internal error
            print(f"loopline: training job {job.training_job_name} failed to run: {exc!r}", file=sys.stderr)
            _end(job, "Failed", "Failed", f"InternalServerError: {exc}")
        finally:
            shutil.rmtree(opt_ml, ignore_errors=True)

    def _run(self, job: FakeTrainingJob, opt_ml: Path, environment: dict[str, str],
             credentials: dict[str, str]) -> None:
        spec = job.algorithm_specification or {}
        entrypoint = [str(a) for a in spec.get("ContainerEntrypoint") or []]
        if not entrypoint:
            _end(job, "Failed", "Failed", "ClientError: the emulator runs AlgorithmSpecification.ContainerEntrypoint; "
                 "it cannot read an image's own ENTRYPOINT")
            return
        instance_type = str((job.resource_config or {}).get("InstanceType", ""))
        memory_mb = INSTANCE_MEMORY_MB.get(instance_type)
        if memory_mb is None:
            _end(job, "Failed", "Failed", f"ClientError: instance type {instance_type} is not one the emulator "
                 f"knows the memory of ({', '.join(INSTANCE_MEMORY_MB)})")
            return
        for folder in ("input/config", "model", "output"):
            (opt_ml / folder).mkdir(parents=True)
        (opt_ml / "input/config/hyperparameters.json").write_text(json.dumps(job.hyper_parameters or {}))
        region = job.arn.split(":")[3]
        _set_status(job, "InProgress", "Downloading")
        error = self._download_channels(job, opt_ml, credentials, region)
        if error:
            _end(job, "Failed", "Failed", error)
            return
        command = [sys.executable if a == "python" else a for a in entrypoint[:1]] + entrypoint[1:]
        command += [str(a) for a in spec.get("ContainerArguments") or []]
        code_dir = self.code_dir()
        inherited = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
        process_env = {
            **inherited, **environment, **credentials,
            "AWS_ENDPOINT_URL": self.aws_endpoint_url, "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
            "TRAINING_JOB_NAME": job.training_job_name, "TRAINING_JOB_ARN": job.arn,
            OPT_ML_ENV: str(opt_ml), "PYTHONUNBUFFERED": "1", "TZ": "UTC",
            "PYTHONPATH": str(code_dir) if code_dir else "",
        }
        _set_status(job, "InProgress", "Training")
        log_path = opt_ml / "output" / "job.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, env=process_env, cwd=opt_ml, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
            outcome = self._watch(process, memory_mb, int((job.stopping_condition or {}).get(
                "MaxRuntimeInSeconds", 86_400)))
        if self.echo is not None:
            self.echo(job.training_job_name, log_path.read_text(errors="replace"))
        if outcome == "memory":
            _end(job, "Failed", "Failed", OUT_OF_MEMORY)
        elif outcome == "runtime":
            _end(job, "Stopped", "MaxRuntimeExceeded", None)
        elif process.returncode != 0:
            failure = opt_ml / "output" / "failure"
            text = failure.read_text(errors="replace").strip() if failure.is_file() else ""
            _end(job, "Failed", "Failed", f"AlgorithmError: {text or 'See job logs for more information'}")
        else:
            _set_status(job, "InProgress", "Uploading")
            error = self._upload_model(job, opt_ml / "model", credentials, region)
            if error:
                _end(job, "Failed", "Failed", error)
            else:
                _end(job, "Completed", "Completed", None)

    def _watch(self, process: subprocess.Popen[bytes], memory_mb: int, max_runtime: int) -> str | None:
        """Wait for the process: None (it exited), "memory" or "runtime" (it was stopped)."""
        deadline = time.monotonic() + max_runtime
        while process.poll() is None:
            if over_memory(process.pid, memory_mb):
                process.kill()
                process.wait()
                return "memory"
            if time.monotonic() >= deadline:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                return "runtime"
            time.sleep(POLL_SECONDS)
        return "memory" if over_memory(process.pid, memory_mb, "VmHWM", children=False) else None

    def _s3(self, credentials: dict[str, str], region: str) -> Any:
        """An S3 client with the job role's credentials (what SageMaker uses for channels and the model upload)."""
        return boto3.client("s3", region_name=region, endpoint_url=self.aws_endpoint_url,
                            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
                            aws_session_token=credentials["AWS_SESSION_TOKEN"])

    def _download_channels(self, job: FakeTrainingJob, opt_ml: Path, credentials: dict[str, str],
                           region: str) -> str | None:
        """Each channel's objects as files under <opt_ml>/input/data/<channel>/, downloaded as the job's role;
        the FailureReason when one cannot be."""
        channels = list(job.input_data_config or [])
        data_dir = opt_ml / "input" / "data"
        data_dir.mkdir(parents=True)
        (opt_ml / "input/config/inputdataconfig.json").write_text(json.dumps({
            str(c["ChannelName"]): {"ContentType": c.get("ContentType"),
                                    "TrainingInputMode": c.get("InputMode", "File")} for c in channels}))
        s3 = self._s3(credentials, region)
        for channel in channels:
            name = str(channel["ChannelName"])
            source = (channel.get("DataSource") or {}).get("S3DataSource") or {}
            uri = str(source.get("S3Uri", ""))
            if source.get("S3DataType") != "S3Prefix" or channel.get("InputMode", "File") not in {"File", "FastFile"}:
                return (f"ClientError: channel {name}: the emulator downloads S3Prefix channels in File or FastFile "
                        "mode only")
            bucket, _, prefix = uri.removeprefix("s3://").partition("/")
            key = prefix
            try:
                keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=prefix) for item in page.get("Contents", [])]
                if not keys:
                    return f"ClientError: No S3 objects found under S3 URL \"{uri}\" given in input data source."
                for key in keys:
                    relative = key[len(prefix):].lstrip("/") or key.rsplit("/", 1)[-1]
                    target = data_dir / name / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    s3.download_file(bucket, key, str(target))
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                return (f"ClientError: Data download failed: channel {name}: {code} on s3://{bucket}/{key}: the "
                        f"job's role {job.role_arn} may not read it; grant it s3:ListBucket and s3:GetObject there")
        return None

    def _upload_model(self, job: FakeTrainingJob, model_dir: Path, credentials: dict[str, str],
                      region: str) -> str | None:
        """SageMaker's upload of /opt/ml/model, as the job's role; the error reason when it is refused."""
        artifact = str(job.model_artifacts["S3ModelArtifacts"])
        bucket, _, key = artifact.removeprefix("s3://").partition("/")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            archive.add(model_dir, arcname=".")
        s3 = self._s3(credentials, region)
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
        except Exception as exc:
            return f"ClientError: Failed to upload model artifacts to {artifact}: {exc}"
        return None

    def join(self, timeout: float) -> None:
        """Wait for the jobs started so far (tests)."""
        for thread in list(self._threads):
            thread.join(timeout)


def _set_status(job: FakeTrainingJob, status: str, secondary: str) -> None:
    now = utcnow()
    transitions = job.secondary_status_transitions
    if secondary != job.secondary_status:
        if transitions:
            transitions[-1]["EndTime"] = now
        transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": secondary})
    job.training_job_status = status
    job.secondary_status = secondary
    job.last_modified_time = now


def _end(job: FakeTrainingJob, status: str, secondary: str, failure_reason: str | None) -> None:
    _set_status(job, status, secondary)
    if failure_reason is not None:
        job.failure_reason = failure_reason  # type: ignore[attr-defined]  # DescribeTrainingJob's FailureReason
    job.training_end_time = utcnow()
    job.final_metric_data_list = []


class StateTaskServiceSageMaker(StateTaskServiceCallback):
    """`arn:aws:states:::sagemaker:<action>[.sync]`: the call, then (.sync, createTrainingJob) the wait."""

    def __init__(self) -> None:
        super().__init__(supported_integration_patterns=_INTEGRATION_PATTERNS)

    def _get_supported_parameters(self) -> set[str] | None:
        # createTrainingJob only (what the training state machine uses): its request's parameters, from the SDK
        if self.resource.api_action.lower() != "createtrainingjob":
            return None
        operation = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob")
        return set(operation.input_shape.members) if operation.input_shape is not None else None

    def _from_error(self, env: Any, ex: Exception) -> FailureEvent:
        # a refused call (AccessDenied, ValidationException...) is a task failure named after the service's error
        if not isinstance(ex, ClientError):
            return super()._from_error(env=env, ex=ex)
        error = f"SageMaker.{ex.response['Error']['Code']}"
        return FailureEvent(
            env=env, error_name=CustomErrorName(error), event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(  # type: ignore[typeddict-item]  # one detail per event, as moto's
                taskFailedEventDetails=TaskFailedEventDetails(
                    error=error, cause=ex.response["Error"].get("Message", str(ex)),
                    resource=self._get_sfn_resource(), resourceType=self._get_sfn_resource_type())))

    def _client(self, region: str, state_credentials: Any) -> Any:
        # looked up at call time: state_machine_credentials patches this module's name to the state machine role
        return state_task_service_unsupported.boto_client_for(
            region=region, service="sagemaker", state_credentials=state_credentials)

    def _eval_service_task(self, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any],
                           state_credentials: Any) -> None:
        client = self._client(resource_runtime_part.region, state_credentials)
        response = getattr(client, self._get_boto_service_action())(**normalised_parameters)
        response.pop("ResponseMetadata", None)
        env.stack.append(_plain(response))

    def _build_sync_resolver(self, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any],
                             state_credentials: Any) -> Callable[[], Any] | None:
        if self._get_boto_service_action() != "create_training_job":
            return super()._build_sync_resolver(env, resource_runtime_part, normalised_parameters, state_credentials)
        client = self._client(resource_runtime_part.region, state_credentials)
        env.stack.pop()
        name = normalised_parameters["TrainingJobName"]

        def resolve() -> dict[str, Any] | None:
            described = client.describe_training_job(TrainingJobName=name)
            described.pop("ResponseMetadata", None)
            status = described["TrainingJobStatus"]
            if status == "Completed":
                return _plain(described)
            if status in {"Failed", "Stopped"}:
                error = StatesErrorNameType.StatesTaskFailed
                raise FailureEventException(FailureEvent(
                    env=env, error_name=StatesErrorName(typ=error), event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(  # type: ignore[typeddict-item]  # one detail per event, as moto's
                        taskFailedEventDetails=TaskFailedEventDetails(
                            resource=self._get_sfn_resource(), resourceType=self._get_sfn_resource_type(),
                            error=error.to_name(), cause=to_json_str(_plain(described))))))
            return None

        return resolve


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    """JSON types only (the interpreter's history cannot hold the SDK's datetimes)."""
    result: dict[str, Any] = json.loads(json.dumps(value, default=str))
    return result


def state_task_service_for(service_name: str) -> Any:
    if service_name == "sagemaker":
        return StateTaskServiceSageMaker()
    return _ORIGINAL_FACTORY(service_name)


@contextmanager
def _patches(create_training_job: Callable[[SageMakerResponse], Any]) -> Iterator[None]:
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(SageMakerResponse, "create_training_job", create_training_job))
        for module in (state_task_service_factory, state_task_factory):
            stack.enter_context(mock.patch.object(module, "state_task_service_for", state_task_service_for))
        yield
