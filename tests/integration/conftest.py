"""Handlers for real on moto: the stack's bucket, state machine and environment, built from template.yaml.

Every name and setting comes from template.yaml (resolved as CloudFormation would for a stack called
STACK_NAME) and from pipeline.yaml (through `loopline params`, as `make deploy` passes them).
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import uuid
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from loopline.emulator.iam_enforcement import enforce_iam
from loopline.emulator.local_access import CREDENTIALS
from loopline.local_lambda import import_function_app
from loopline.params import stack_parameters
from loopline_runtime.bucket_layout import CHAMPION_KEY, HISTORY_PREFIX
from loopline_runtime.config import PipelineConfig, load_config
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.storage import ObjectStore
from tests.support.roles import as_role, client_as_running_role, create_function_roles, running_as
from tests.support.stack import Stack
from tests.support.translated import translated_template

# moto runs no Lambda code without Docker; with use_docker off an invoke is accepted and echoed, which is all
# the handlers under test need from it (they call each other only asynchronously).
# executions stay RUNNING (no ASL interpreter): these tests drive the handlers one by one, whatever another test
# module left in moto's global config
MOTO_CONFIG: dict[str, Any] = {"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": False}}


@pytest.fixture
def stack(template: dict[str, Any], pipeline_config: PipelineConfig) -> Stack:
    parameters = {name: str(spec["Default"]) for name, spec in template["Parameters"].items() if "Default" in spec}
    parameters.update(stack_parameters(pipeline_config))
    return Stack(template, parameters)


@pytest.fixture
def aws_stack(stack: Stack, fast_pipeline_config_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """moto with the stack's bucket, training state machine and evaluate function; the test pipeline config; each
    function's role from the template (handlers run as it, and moto authorises as IAM would: enforce_iam)."""
    for name, value in {"AWS_DEFAULT_REGION": stack.region, **CREDENTIALS}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("LOOPLINE_PIPELINE_CONFIG", str(fast_pipeline_config_path))
    monkeypatch.setattr(boto3.session.Session, "client", client_as_running_role)
    with mock_aws(config=MOTO_CONFIG), enforce_iam():
        boto3.client("s3").create_bucket(Bucket=stack.bucket)
        versioning = stack.template["Resources"]["ArtifactBucket"]["Properties"].get("VersioningConfiguration")
        if versioning:  # as the template declares it: champion pins name S3 object versions
            boto3.client("s3").put_bucket_versioning(Bucket=stack.bucket, VersioningConfiguration=versioning)
        states_trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                                "Principal": {"Service": "states.amazonaws.com"}}]}
        role = boto3.client("iam").create_role(RoleName="loopline-test",
                                               AssumeRolePolicyDocument=json.dumps(states_trust))["Role"]["Arn"]
        for logical_id in stack.resources_of_type("AWS::Serverless::StateMachine"):
            machine_arn = stack.physical_ids[logical_id]
            boto3.client("stepfunctions").create_state_machine(
                name=machine_arn.rsplit(":", 1)[-1], definition=stack.state_machine_definition(logical_id),
                roleArn=role)
        # the monitor function exists so ingest's asynchronous "measure the champion" invoke is accepted
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "def lambda_handler(event, context):\n    return event\n")
        boto3.client("lambda").create_function(
            FunctionName=stack.physical_ids["MonitorFunction"], Runtime="python3.12", Role=role,
            Handler="app.lambda_handler", Code={"ZipFile": code.getvalue()})
        translated = translated_template(stack.template, stack.parameters, stack.region)
        stack.role_credentials = create_function_roles(stack, translated, boto3.client("iam"), boto3.client("sts"))
        yield stack


@pytest.fixture
def config(fast_pipeline_config_path: Path) -> PipelineConfig:
    """The pipeline config the handlers run with."""
    return load_config(fast_pipeline_config_path)


@pytest.fixture
def store(aws_stack: Stack) -> ObjectStore:
    return ObjectStore(aws_stack.bucket, boto3.client("s3"))


@pytest.fixture
def registry(store: ObjectStore) -> ModelRegistry:
    return ModelRegistry(store)


@pytest.fixture
def reset_metrics() -> Iterator[None]:
    """Powertools keeps metrics in a shared set: each test starts with none."""
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics.provider.cold_start import reset_cold_start_flag

    Metrics().clear_metrics()
    reset_cold_start_flag()
    yield
    Metrics().clear_metrics()


@pytest.fixture
def load_handler(aws_stack: Stack, monkeypatch: pytest.MonkeyPatch,
                 reset_metrics: None) -> Iterator[Callable[[str], ModuleType]]:
    """Import functions/<name>/app.py with its template environment, inside moto, under a unique module name,
    running as its role."""
    loaded: list[str] = []

    def load(function: str) -> ModuleType:
        for name, value in aws_stack.function_environment(function).items():
            monkeypatch.setenv(name, value)
        module_name = f"loopline_test_{function}_app_{uuid.uuid4().hex[:8]}"
        loaded.append(module_name)
        credentials = aws_stack.role_credentials[aws_stack.function_logical_id(function)]
        with running_as(credentials):  # module-level clients are the role's, as in the function's environment
            return as_role(import_function_app(function, module_name), credentials)

    yield load
    for module_name in loaded:
        sys.modules.pop(module_name, None)


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


@pytest.fixture
def upload(aws_stack: Stack, load_event: Callable[[str], dict[str, Any]]) -> Callable[[str, bytes | pd.DataFrame],
                                                                                      dict[str, Any]]:
    """Put a file into the bucket; return the S3 event notification for it (from tests/events, URL-encoded key)."""

    def put(key: str, body: bytes | pd.DataFrame) -> dict[str, Any]:
        data = _csv(body) if isinstance(body, pd.DataFrame) else body
        put = boto3.client("s3").put_object(Bucket=aws_stack.bucket, Key=key, Body=data)
        event = load_event("s3_put_incoming.json")
        record = event["Records"][0]
        record["awsRegion"] = aws_stack.region
        record["s3"]["bucket"]["name"] = aws_stack.bucket
        record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{aws_stack.bucket}"
        record["s3"]["object"].update(key=quote_plus(key, safe="/"), size=len(data), eTag=hashlib.md5(data).hexdigest())
        if put.get("VersionId"):  # a versioned bucket's events name the version they are about
            record["s3"]["object"]["versionId"] = put["VersionId"]
        return event

    return put


@pytest.fixture
def training_rows(breast_cancer: pd.DataFrame) -> pd.DataFrame:
    """The first labeled upload."""
    return breast_cancer.iloc[:200].reset_index(drop=True)


@pytest.fixture
def fresh_rows(breast_cancer: pd.DataFrame) -> pd.DataFrame:
    """A later labeled batch of other rows (what monitoring measures the champion on)."""
    return breast_cancer.iloc[200:320].reset_index(drop=True)


@pytest.fixture(scope="session")
def fitted_champion(breast_cancer: pd.DataFrame, pipeline_config: PipelineConfig) -> tuple[Any, dict[str, Any]]:
    """A fitted pipeline and the manifest fields training records, made once (registering it is cheap)."""
    from sklearn.linear_model import LogisticRegression

    from loopline_runtime.drift import build_profile
    from loopline_runtime.modeling import build_pipeline
    from loopline_runtime.schema import coerce_target, infer_schema

    rows = breast_cancer.iloc[:200].astype(str)
    schema = infer_schema(rows, pipeline_config)
    X, y = rows[list(schema.features)], coerce_target(rows[schema.target], schema.task)
    pipeline = build_pipeline(schema, LogisticRegression(max_iter=1000)).fit(X, y)
    manifest = {
        "pipeline": pipeline_config.name,
        "task": schema.task.value,
        "target": schema.target,
        "schema": schema.to_dict(),
        "classes": [str(c) for c in pipeline.classes_],
        "metric": pipeline_config.metric_for(schema.task),
        "estimator": "linear",
        "params": {},
        "dataset_versions": [],
        "training_profile": build_profile(X, {n: k.value for n, k in schema.features.items()}),
    }
    return pipeline, manifest


def _compiled(pipeline: Any, manifest: dict[str, Any], rows: pd.DataFrame) -> tuple[dict[str, Any], bytes | None]:
    """Compile and parity-check a pipeline as the train step does; the manifest with its compilation record."""
    from loopline_runtime.compilation import compile_and_check
    from loopline_runtime.schema import FeatureSchema

    compilation = compile_and_check(pipeline, FeatureSchema.from_dict(manifest["schema"]), rows)
    return {**manifest, "compiled": compilation.record}, compilation.onnx_bytes


@pytest.fixture
def register_model(registry: ModelRegistry, fitted_champion: tuple[Any, dict[str, Any]],
                   breast_cancer: pd.DataFrame) -> Callable[..., str]:
    """Register a model version (the session's fitted pipeline unless another is given), compiled as the train
    step registers it; returns the version."""

    def register(pipeline: Any = None, **manifest_overrides: Any) -> str:
        version = f"m-test-{uuid.uuid4().hex[:8]}"
        fitted, manifest = fitted_champion
        chosen = pipeline if pipeline is not None else fitted
        compiled_manifest, compiled = _compiled(chosen, manifest, breast_cancer.iloc[200:260].astype(str))
        registry.register(version, chosen, {**compiled_manifest, **manifest_overrides}, compiled=compiled)
        return version

    return register


@pytest.fixture
def promote(registry: ModelRegistry) -> Callable[[str], dict[str, Any]]:
    """Move the champion pointer as the state machine's promotion states do (history record, then pointer)."""

    def move(version: str) -> dict[str, Any]:
        promoted_at = datetime.now(UTC).isoformat()
        record = {"version": version, "previous_version": registry.champion_version(), "metric": "f1",
                  "score": 1.0, "promoted_at": promoted_at, "execution_arn": "manual", "reason": "test",
                  "pins": registry.pins(version)}
        registry.store.put_json(f"{HISTORY_PREFIX}{promoted_at}-{version}.json", record)
        registry.store.put_bytes(CHAMPION_KEY, json.dumps(record).encode("utf-8"), content_type="application/json")
        return record

    return move


@pytest.fixture
def api_request(load_event: Callable[[str], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """An API Gateway proxy event for POST /predict (JSON body) or GET /model, from tests/events."""

    def build(method: str, path: str, body: Any = None, *, raw_body: str | None = None) -> dict[str, Any]:
        name = {("POST", "/predict"): "apigateway_post_predict.json",
                ("GET", "/model"): "apigateway_get_model.json"}[(method, path)]
        event = load_event(name)
        if raw_body is not None:
            event["body"] = raw_body
        elif body is not None:
            event["body"] = json.dumps(body)
        return event

    return build


@pytest.fixture
def ingest(load_handler: Callable[[str], ModuleType], upload: Callable[..., dict[str, Any]],
           lambda_context: Any) -> Callable[[str, pd.DataFrame], dict[str, Any]]:
    """Upload a CSV and run the ingest function on its S3 event; returns the outcome for that file."""
    handler = load_handler("ingest")

    def run(key: str, rows: pd.DataFrame) -> dict[str, Any]:
        (outcome,) = handler.lambda_handler(upload(key, rows), lambda_context)["results"]
        return outcome

    return run


@pytest.fixture
def state_machine_definition(stack: Stack) -> dict[str, Any]:
    """The training state machine's ASL (its DefinitionUri in template.yaml), substitutions applied."""
    return json.loads(stack.state_machine_definition("TrainingStateMachine"))


class ManualClock:
    """A monotonic clock that moves only when told: lets a test step past the predict function's documented
    staleness (CHAMPION_CHECK_SECONDS) without sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def champion(register_model: Callable[..., str], promote: Callable[[str], Any]) -> str:
    """The session's fitted model, registered and promoted: the version that serves."""
    version = register_model()
    promote(version)
    return version
