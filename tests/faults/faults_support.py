"""The fault-injection harness: the emulator's Lambda seam running the real handlers in this process, the stack as
a test sees it, faults to inject, and the invariant every test checks (see conftest.py for the stack itself)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote_plus

import pandas as pd
import pytest
from moto.awslambda.models import LambdaFunction

from loopline.client import StackClient
from loopline.emulator.lambda_workers import InvocationResult
from loopline.emulator.role_sessions import RoleCredentials, RoleSessions
from loopline_runtime.bucket_layout import DATASET_INDEX_PREFIX, QUARANTINE_PREFIX, dataset_prefix
from loopline_runtime.config import PipelineConfig
from loopline_runtime.datasets import version_for
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.storage import ObjectStore
from tests.support.roles import client_as_running_role, running_as

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
CRASH, TIMEOUT = "crash", "timeout"
_ANSWERS = {CRASH: ("Runtime.ExitError", "RequestId: injected Error: Runtime exited with error: signal: killed"),
            TIMEOUT: ("Sandbox.Timedout", "RequestId: injected Error: Task timed out after 120.00 seconds")}


class InjectedFault(Exception):
    """A failure a test asked for (an S3 write, a StartExecution call)."""


@dataclass
class _Context:
    function_name: str
    invoked_function_arn: str
    timeout_seconds: int
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_seconds * 1000


class InProcessRuntime:
    """The emulator's Lambda seam (what `LambdaRuntime` does in worker processes), running the real handlers here,
    each as its function's role (boto3 clients made while it runs get the role's credentials: patch
    `boto3.session.Session.client` with `client_as_running_role` for as long as the runtime is used)."""

    client_as_running_role = staticmethod(client_as_running_role)

    def __init__(self) -> None:
        self.logical_ids: dict[str, str] = {}  # function name -> logical id in template.yaml
        self.code_dirs: dict[str, Path] = {}  # logical id -> functions/<step>/
        self.answers: dict[str, list[str]] = defaultdict(list)  # logical id -> crash/timeout for the next calls
        self.invocations: dict[str, int] = defaultdict(int)
        self._modules: dict[str, ModuleType] = {}
        self._lock = threading.Lock()
        self.roles = RoleSessions()
        self._credentials: dict[str, RoleCredentials] = {}  # logical id -> its role's credentials

    echo = None  # the handlers' output stays in this process's

    def set_layers(self, function_name: str, layer_dirs: list[Path]) -> None:
        """The layers are this process's own packages (loopline_runtime and the venv)."""

    def package_dir(self, package: str) -> Path | None:
        """A training job's code: this process's own packages too (no layer folder)."""
        return None

    def close(self) -> None:
        for module in self._modules.values():
            sys.modules.pop(module.__name__, None)

    def credentials(self, logical_id: str) -> RoleCredentials:
        """The function role's credentials (assumed as the Lambda service does, once)."""
        if logical_id not in self._credentials:
            from moto.awslambda.utils import get_backend

            name = next(n for n, i in self.logical_ids.items() if i == logical_id)
            function = get_backend("123456789012", REGION).get_function(name)
            self._credentials[logical_id] = self.roles.credentials(function.role, "lambda.amazonaws.com", name)
        return self._credentials[logical_id]

    def module(self, logical_id: str) -> ModuleType:
        """functions/<step>/app.py, imported once (with the stack's environment already set) as its role."""
        credentials = self.credentials(logical_id)
        with self._lock, running_as(credentials):
            if logical_id not in self._modules:
                name = f"loopline_faults_{logical_id}_{uuid.uuid4().hex[:6]}"
                spec = importlib.util.spec_from_file_location(name, self.code_dirs[logical_id] / "app.py")
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
                self._modules[logical_id] = module
            return self._modules[logical_id]

    def invoke(self, function: LambdaFunction, event: Any) -> InvocationResult:
        logical_id = self.logical_ids[function.function_name]
        with self._lock:
            self.invocations[logical_id] += 1
            answer = self.answers[logical_id].pop(0) if self.answers[logical_id] else None
        if answer is not None:
            error_type, message = _ANSWERS[answer]
            return InvocationResult(json.dumps({"errorType": error_type, "errorMessage": message}), True, "")
        if isinstance(event, bytes | str):
            event = json.loads(event or "{}")
        context = _Context(function.function_name, function.function_arn, int(function.timeout or 3))
        credentials = self.credentials(logical_id)
        try:
            with running_as(credentials):
                result = self.module(logical_id).lambda_handler(event, context)
        except Exception as exc:
            payload = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            return InvocationResult(json.dumps(payload), True, "")
        return InvocationResult(json.dumps(result, default=str), False, "")


@dataclass
class Loop:
    """The running stack: a client, the runtime (for crash/timeout answers), the registry and the config."""

    client: StackClient
    runtime: InProcessRuntime
    config: PipelineConfig
    outputs: dict[str, str]
    function_names: dict[str, str]  # logical id -> function name
    uploads: list[str] = field(default_factory=list)

    @property
    def store(self) -> ObjectStore:
        return ObjectStore(self.client.bucket, self.client.s3)

    @property
    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.store)

    def handler(self, logical_id: str) -> ModuleType:
        return self.runtime.module(logical_id)

    def answer_next(self, logical_id: str, *answers: str) -> None:
        """Answer the function's next invocations with these faults (crash | timeout)."""
        self.runtime.answers[logical_id].extend(answers)

    def upload(self, frame: pd.DataFrame | bytes, name: str) -> str:
        key = self.client.upload_csv(frame, name)
        self.uploads.append(key)
        return key

    def failure_messages(self, output: str) -> list[dict[str, Any]]:
        """The records in an on-failure queue (read without deleting: visibility timeout 0)."""
        sqs = self.client.client("sqs")
        found: dict[str, dict[str, Any]] = {}
        for _ in range(3):
            response = sqs.receive_message(QueueUrl=self.outputs[output], MaxNumberOfMessages=10,
                                           VisibilityTimeout=0, WaitTimeSeconds=0)
            for message in response.get("Messages", []):
                found[message["MessageId"]] = json.loads(message["Body"])
        return list(found.values())

    def wait_for(self, condition: Callable[[], Any], *, timeout: float = 120, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while not (value := condition()):
            assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
            time.sleep(0.3)
        return value

    def wait_for_upload(self, key: str, *, timeout: float = 120) -> str:
        """Wait until `key` has one of the three ends; return which (dataset | quarantined | on_failure_queue)."""
        return str(self.wait_for(lambda: upload_outcome(self, key), timeout=timeout, what=f"an outcome for {key}"))

    def settled(self, *, timeout: float = 300) -> None:
        """Wait until no training execution runs."""
        self.wait_for(lambda: not [e for e in self.client.executions() if e["status"] == "RUNNING"],
                      timeout=timeout, what="the running executions to end")


def upload_outcome(loop: Loop, key: str) -> str | None:
    """How an upload ended: a dataset version (indexed), a quarantined copy with reason.json, or an on-failure
    queue record; None while none of them exists."""
    store = loop.store
    version = version_for(store.get_bytes(key))
    if store.exists(f"{dataset_prefix(version)}manifest.json") and any(
            k.endswith(f"_{version}") for k in store.list_keys(DATASET_INDEX_PREFIX)):
        return "dataset"
    for reason_key in (k for k in store.list_keys(QUARANTINE_PREFIX) if k.endswith("/reason.json")):
        if store.get_json(reason_key)["source_key"] == key:
            return "quarantined"
    for record in loop.failure_messages("IngestFailureQueueUrl"):
        keys = [unquote_plus(r["s3"]["object"]["key"]) for r in record["requestPayload"].get("Records", [])]
        if key in keys:
            return "on_failure_queue"
    return None


def assert_invariant(loop: Loop) -> None:
    """Every upload ends as a dataset version, a quarantined file with reason.json, or a message in an on-failure
    queue; the champion always serves a verified model (its sha256 checks out, and the gate promoted it)."""
    for key in loop.uploads:
        assert upload_outcome(loop, key) is not None, f"{key} ended nowhere"
    pointer = loop.registry.champion_pointer()
    if pointer is not None:
        model = loop.registry.load(pointer["version"])  # raises unless the artifact matches its manifest
        evaluation = loop.store.get_json(loop.registry.prefix(model.version) + "evaluation.json")
        assert evaluation["passes_gate"] and evaluation["beats_champion"], evaluation["reasons"]
        loop.registry.load_compiled(pointer["version"])  # the served (compiled) artifact checks out too
        assert _served_within_staleness(loop, pointer["version"]) == pointer["version"]


def _served_within_staleness(loop: Loop, expected: str) -> str:
    """GET /model's version once a pointer move is picked up: the predict function checks the pointer at most every
    CHAMPION_CHECK_SECONDS (template.yaml), so it may still answer with the previous champion until then."""
    from loopline.emulator.template_loading import load_template

    variables = load_template(REPO_ROOT / "template.yaml")["Resources"]["PredictFunction"]["Properties"][
        "Environment"]["Variables"]
    deadline = time.monotonic() + float(variables["CHAMPION_CHECK_SECONDS"]) + 2.0
    served = loop.client.http("GET", "model").body["model_version"]
    while served != expected and time.monotonic() < deadline:
        time.sleep(0.25)
        served = loop.client.http("GET", "model").body["model_version"]
    return str(served)


@contextlib.contextmanager
def failing_writes(match: Callable[[str], bool], times: int = 1) -> Iterator[list[str]]:
    """Make ObjectStore writes to keys matching `match` fail (the first `times` of them); yields the keys hit.
    Every write path: bytes (put_bytes), pinned artifacts (put_version, which returns the S3 VersionId), files
    uploaded in parts (put_file, a dataset version's rows) and server-side copies (copy, a quarantined upload)."""
    hit: list[str] = []
    lock = threading.Lock()

    def failing(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def write(self: ObjectStore, first: str, second: Any, **kwargs: Any) -> Any:
            key = second if name == "copy" else first  # copy(source_key, key) writes its second argument
            with lock:
                fail = match(key) and len(hit) < times
                if fail:
                    hit.append(key)
            if fail:
                raise InjectedFault(f"injected: PutObject {key} failed")
            return original(self, first, second, **kwargs)

        return write

    with pytest.MonkeyPatch.context() as patch:
        for name in ("put_bytes", "put_version", "put_file", "copy"):
            patch.setattr(ObjectStore, name, failing(name, getattr(ObjectStore, name)))
        yield hit


