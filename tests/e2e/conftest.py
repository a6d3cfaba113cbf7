"""End-to-end fixtures: `loopline local up` runs as a separate process; tests are pure clients (boto3 + HTTP)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from loopline.client import StackClient
from loopline.demo import free_port, local_stack

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def emulator_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emulator")


@pytest.fixture(scope="session")
def start_stack(emulator_workdir: Path) -> Iterator[Callable[..., StackClient]]:
    """Start a fresh local stack (own ports, own in-memory state) for a pipeline config; stopped at session end."""
    with ExitStack() as stacks:

        def start(config: Path = REPO_ROOT / "pipeline.yaml") -> StackClient:
            name = f"e2e-{uuid.uuid4().hex[:6]}"
            aws_port = free_port()
            stacks.enter_context(local_stack(name, config=config, workdir=emulator_workdir, aws_port=aws_port,
                                             api_port=free_port()))
            return StackClient(name, endpoint_url=f"http://127.0.0.1:{aws_port}")

        yield start
