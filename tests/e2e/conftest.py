"""End-to-end fixtures: each stack is `loopline local up` in its own process on free ports, and tests see it only
as a client would, through `loopline.client.StackClient` (boto3 + HTTP).

    def test_something(start_stack):
        stack = start_stack()                      # pipeline.yaml with a tiny model search
        stack.upload_csv(frame, "data.csv")
        stack.predict([{...}])

`start_stack(config_path)` runs another pipeline config, `start_stack(template=path)` another template (next to
template.yaml: its CodeUri paths are relative); every stack is stopped at the end of the test module.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from loopline.client import StackClient
from loopline.demo import local_stack as run_local_stack
from loopline.emulator.local_access import free_port
from loopline_runtime.config import PipelineConfig
from tests.support.configs import write_fast_config
from tests.support.markers import mark_tests_under


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is an e2e test (`-m "not e2e"` skips them)."""
    mark_tests_under(Path(__file__).parent, pytest.mark.e2e, items)


@pytest.fixture(scope="session")
def local_stack_config_path(pipeline_config: PipelineConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pipeline.yaml with a tiny model search (one candidate, one setting, the smallest budget): fast e2e runs."""
    return write_fast_config(pipeline_config, tmp_path_factory.mktemp("e2e-config") / "pipeline.yaml")


# module scope: a module's stacks (an emulator and its Lambda workers each, a few hundred MB) stop when the module
# ends instead of all staying up until the end of the session
@pytest.fixture(scope="module")
def start_stack(local_stack_config_path: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[Callable[..., StackClient]]:
    """A factory of fresh stacks (own emulator, ports and in-memory state), seen through the public StackClient;
    all are stopped at the end of the test module."""
    workdir = tmp_path_factory.mktemp("stacks")
    with ExitStack() as stacks:

        def start(config: Path | None = None, template: Path | None = None) -> StackClient:
            name = f"e2e-{uuid.uuid4().hex[:6]}"
            aws_port = free_port()
            stacks.enter_context(run_local_stack(name, config=config or local_stack_config_path, workdir=workdir,
                                                 aws_port=aws_port, api_port=free_port(), template=template))
            return StackClient(name, endpoint_url=f"http://127.0.0.1:{aws_port}")

        yield start
