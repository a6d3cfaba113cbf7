"""A whole stack (the real template.yaml on the emulator) in this process, with faults injected where they happen.

The emulator runs as `loopline local up` does: moto in server mode with every gap filler, the stack created from
template.yaml, moto's ASL interpreter running the training state machine, the local API server. One difference:
Lambda functions run in this process (`InProcessRuntime`, the emulator's Lambda seam) instead of worker
processes, so a test can make a handler's S3 write or StartExecution call fail, or answer an invocation as a
crash or a timeout exactly as the worker pool does (`Runtime.ExitError`, `Sandbox.Timedout`). Asynchronous
invocations go through the emulator's retries and on-failure destinations; retry pauses are shortened.

One stack per test module (creating it takes seconds); every test works on its own uploads and checks the
invariant over everything the stack ever received (`assert_invariant`).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pandas as pd
import pytest
from faults_support import REGION, REPO_ROOT, InProcessRuntime, Loop

from loopline.client import StackClient
from loopline.emulator import on_failure_destinations
from loopline.emulator.api_server import LocalApi, make_api_server
from loopline.emulator.local_access import free_port
from loopline.emulator.local_stack import StackSettings, deploy_stack
from loopline.emulator.local_up import enable_state_machine_execution
from loopline.emulator.moto_patches import patched_moto
from loopline.emulator.same_origin_server import SameOriginMotoServer
from loopline.emulator.template_loading import load_template
from loopline.examples import breast_cancer
from loopline_runtime.config import load_config
from tests.support.configs import write_fast_config


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/faults runs the emulator's patched moto server (`-m "not emulator"` skips them)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.emulator)


@pytest.fixture(scope="module")
def fault_config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pipeline.yaml with a tiny model search (one candidate, one setting, the smallest budget)."""
    config = load_config(REPO_ROOT / "pipeline.yaml")
    return write_fast_config(config, tmp_path_factory.mktemp("faults-config") / "pipeline.yaml")


@pytest.fixture(scope="module")
def loop(fault_config_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    """A fresh stack for the test module (see the module docstring)."""
    port, api_port = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{port}"
    runtime = InProcessRuntime()
    stack_name = f"faults-{uuid.uuid4().hex[:6]}"
    with pytest.MonkeyPatch.context() as patch, patched_moto(runtime, alarm_tick_seconds=1.0):
        patch.setattr(on_failure_destinations, "RETRY_DELAYS_SECONDS", [0.2, 0.2])
        patch.setattr(boto3.session.Session, "client", InProcessRuntime.client_as_running_role)
        for variable, value in {"MOTO_PORT": str(port), "AWS_ACCESS_KEY_ID": "testing",
                                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
                                "AWS_ENDPOINT_URL": endpoint,
                                "LOOPLINE_PIPELINE_CONFIG": str(fault_config_path)}.items():
            patch.setenv(variable, value)
        patch.delenv("AWS_PROFILE", raising=False)
        server = SameOriginMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        api_server = None
        try:
            enable_state_machine_execution(endpoint)
            session = boto3.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
            settings = StackSettings(stack_name=stack_name, template_path=REPO_ROOT / "template.yaml",
                                     config_path=fault_config_path, region=REGION, aws_endpoint_url=endpoint,
                                     api_base_url=f"http://127.0.0.1:{api_port}/",
                                     workdir=tmp_path_factory.mktemp("faults-stack"))
            stack = deploy_stack(settings, session, runtime, lambda message: None)
            template = load_template(REPO_ROOT / "template.yaml")
            lambda_client = session.client("lambda", endpoint_url=endpoint)
            names = {}
            for logical_id, resource in template["Resources"].items():
                if resource["Type"] == "AWS::Serverless::Function":
                    name = stack.physical_ids[logical_id]
                    names[logical_id] = name
                    runtime.logical_ids[name] = logical_id
                    runtime.code_dirs[logical_id] = REPO_ROOT / resource["Properties"]["CodeUri"]
                    environment = lambda_client.get_function_configuration(FunctionName=name)["Environment"]
                    for variable, value in environment["Variables"].items():  # one process: the union
                        patch.setenv(variable, value)
            api = LocalApi(stack.routes, session, endpoint, stack.rest_api_id)
            api_server = make_api_server(api, "127.0.0.1", api_port)
            threading.Thread(target=api_server.serve_forever, name="faults-api", daemon=True).start()
            client = StackClient(stack_name, endpoint_url=endpoint)
            yield Loop(client, runtime, load_config(fault_config_path), stack.outputs, names)
        finally:
            if api_server is not None:
                api_server.shutdown()
            runtime.close()
            server.stop()


@pytest.fixture(scope="module")
def cancer_batches() -> dict[str, pd.DataFrame]:
    """Breast-cancer rows (the demo's data): a first upload, clean batches, and a batch no model gets right."""
    from loopline.examples import recalibrated_sensors, split_batches

    first, fresh_a, fresh_b, drift_a, drift_b, rest = split_batches(breast_cancer(), [200, 60, 60, 80, 80, 89])
    return {"first": first, "fresh_a": fresh_a, "fresh_b": fresh_b,
            "drift_a": recalibrated_sensors(drift_a, factor=2.5), "drift_b": recalibrated_sensors(drift_b, factor=2.5),
            "rest": rest}
