"""End-to-end fixture: `loopline local up` as a subprocess on free ports, driven as a client.

    def test_something(local_stack):
        s3 = local_stack.client("s3")
        s3.put_object(Bucket=local_stack.outputs["ArtifactBucketName"], Key="incoming/x.csv", Body=...)
        requests.post(local_stack.api_url + "predict", headers={"x-api-key": local_stack.api_key()}, ...)

The stack is started once per session (about 10 s) and stopped with SIGINT at the end. Override the
`local_stack_config_path` fixture (session scope) to run it with another pipeline config.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from loopline.client import StackClient
from loopline.demo import local_stack as run_local_stack
from loopline_runtime.config import PipelineConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_SECONDS = 180


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is an e2e test (`-m "not e2e"` skips them)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@dataclass
class LocalStack:
    """A running `loopline local up`: endpoints, stack outputs and ready-made clients."""

    aws_endpoint_url: str  # e.g. http://127.0.0.1:5123
    api_url: str  # e.g. http://127.0.0.1:3123/Prod/ (PredictApiUrl)
    region: str
    stack_name: str
    outputs: dict[str, str]  # describe_stacks Outputs (ArtifactBucketName, TrainingStateMachineArn, ...)
    resources: dict[str, str]  # logical id -> physical id
    log_path: Path  # the emulator's stdout+stderr (Lambda output is echoed there, prefixed by function name)
    _session: Any = field(repr=False, default=None)

    def client(self, service: str) -> Any:
        """A boto3 client for `service` on the emulator, with its dummy credentials."""
        return self._session.client(service, endpoint_url=self.aws_endpoint_url)

    def api_key(self) -> str:
        """The value of the stack's API key, read as in AWS (get_api_key includeValue)."""
        key = self.client("apigateway").get_api_key(apiKey=self.outputs["PredictApiKeyId"], includeValue=True)
        return str(key["value"])

    def logs(self) -> str:
        """Everything the emulator printed so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def local_stack_config_path(pipeline_config: PipelineConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pipeline.yaml with a tiny model search (one candidate, one setting, the smallest budget): fast e2e runs."""
    data = pipeline_config.model_dump(mode="json")
    data["training"]["time_budget_seconds"] = 5
    data["models"] = [{"name": "linear", "params": {"C": [1.0]}}]
    path = tmp_path_factory.mktemp("e2e-config") / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def local_stack(local_stack_config_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """`loopline local up` on free ports, CREATE_COMPLETE, torn down after the session."""
    workdir = tmp_path_factory.mktemp("local-stack")
    ready_file, log_path = workdir / "ready.json", workdir / "local-up.log"
    aws_port, api_port = _free_port(), _free_port()
    command = [
        sys.executable, "-m", "loopline.cli", "local", "up",
        "--aws-port", str(aws_port), "--api-port", str(api_port),
        "--template", str(REPO_ROOT / "template.yaml"), "--config", str(local_stack_config_path),
        "--ready-file", str(ready_file), "--alarm-tick", "1", "--verbose",
    ]  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=environment)
    try:
        deadline = time.time() + STARTUP_TIMEOUT_SECONDS
        while not ready_file.exists():
            if process.poll() is not None or time.time() > deadline:
                tail = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
                pytest.fail(f"loopline local up did not get ready (exit code {process.poll()}):\n{tail}")
            time.sleep(0.2)
        ready = json.loads(ready_file.read_text(encoding="utf-8"))
        session = boto3.Session(
            region_name=ready["region"], aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        stack = LocalStack(
            aws_endpoint_url=ready["aws_endpoint_url"],
            api_url=ready["api_url"],
            region=ready["region"],
            stack_name=ready["stack_name"],
            outputs=ready["outputs"],
            resources=ready["resources"],
            log_path=log_path,
            _session=session,
        )
        status = stack.client("cloudformation").describe_stacks(StackName=stack.stack_name)["Stacks"][0]
        assert status["StackStatus"] == "CREATE_COMPLETE"
        yield stack
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def start_stack(local_stack_config_path: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[Callable[..., StackClient]]:
    """A factory of fresh stacks (own emulator, ports and in-memory state), seen through the public StackClient;
    all are stopped at the end of the session."""
    workdir = tmp_path_factory.mktemp("stacks")
    with ExitStack() as stacks:

        def start(config: Path | None = None) -> StackClient:
            name = f"e2e-{uuid.uuid4().hex[:6]}"
            aws_port = _free_port()
            stacks.enter_context(run_local_stack(name, config=config or local_stack_config_path, workdir=workdir,
                                                 aws_port=aws_port, api_port=_free_port()))
            return StackClient(name, endpoint_url=f"http://127.0.0.1:{aws_port}")

        yield start
