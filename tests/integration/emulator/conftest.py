"""A real moto server (in this process, on a free port) with the emulator's gap fillers installed.

The patches to moto (`patched_moto`, their only list) are undone after each emulator test module, so other
integration tests see plain moto.
"""

from __future__ import annotations

import io
import json
import textwrap
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loopline.emulator.lambda_invocation import LambdaRuntime
from loopline.emulator.local_access import CREDENTIALS, free_port, local_session
from loopline.emulator.local_up import enable_state_machine_execution
from loopline.emulator.moto_patches import patched_moto
from loopline.emulator.same_origin_server import SameOriginMotoServer
from tests.support.markers import mark_tests_under

REGION = "us-east-1"
LAMBDA_TRUST_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration/emulator is an emulator test (`-m "not emulator"` skips them)."""
    mark_tests_under(Path(__file__).parent, pytest.mark.emulator, items)


# module scope: the patches are undone after each emulator test module, so the other integration tests (which
# pytest may run in between, before a package- or session-scoped teardown) always see plain moto
@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """{"endpoint": url, "runtime": LambdaRuntime} of a patched moto server shared by the emulator tests."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    runtime = LambdaRuntime(endpoint, tmp_path_factory.mktemp("emulator"))
    with pytest.MonkeyPatch.context() as patch, patched_moto(runtime, alarm_tick_seconds=1.0):
        patch.setenv("MOTO_PORT", str(port))
        for variable, value in CREDENTIALS.items():
            patch.setenv(variable, value)
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        server = SameOriginMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        enable_state_machine_execution(endpoint)
        try:
            yield {"endpoint": endpoint, "runtime": runtime}
        finally:
            runtime.close()
            server.stop()


@pytest.fixture
def aws(emulator: dict[str, Any]) -> Callable[[str], Any]:
    """A boto3 client factory for the emulator's endpoint."""
    session = local_session(REGION)
    return lambda service: session.client(service, endpoint_url=emulator["endpoint"])


@pytest.fixture
def create_function(aws: Callable[[str], Any], tmp_path: Path) -> Callable[..., str]:
    """Create a Lambda function from handler source text; returns its name."""

    def create(source: str, timeout: int = 10, environment: dict[str, str] | None = None,
               policy: dict[str, Any] | None = None, memory: int = 256, **extra: Any) -> str:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("app.py", textwrap.dedent(source))
        name = f"fn-{uuid.uuid4().hex[:8]}"
        # the function runs as this role (the emulator assumes it, as the Lambda service does)
        aws("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY))
        if policy is not None:
            document = {"Version": "2012-10-17", **policy}
            aws("iam").put_role_policy(RoleName=name, PolicyName="grants", PolicyDocument=json.dumps(document))
        aws("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=f"arn:aws:iam::123456789012:role/{name}",
            Handler="app.lambda_handler",
            Code={"ZipFile": buffer.getvalue()},
            Timeout=timeout,
            MemorySize=memory,
            Environment={"Variables": environment or {}},
            **extra,
        )
        return name

    return create


@pytest.fixture
def make_role(aws: Callable[[str], Any]) -> Callable[..., str]:
    """A role that `service` may assume (e.g. "states.amazonaws.com"), allowed `statements`; returns its ARN."""

    def make(service: str, statements: list[dict[str, Any]]) -> str:
        name = f"role-{uuid.uuid4().hex[:8]}"
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}
        arn = aws("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        aws("iam").put_role_policy(RoleName=name, PolicyName="grants",
                                   PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))
        return str(arn)

    return make


@pytest.fixture
def unused_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    return free_port()


@pytest.fixture
def aws_session() -> Any:
    """A boto3 session with the emulator's dummy credentials."""
    return local_session(REGION)
