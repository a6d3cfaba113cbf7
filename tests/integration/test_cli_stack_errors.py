"""Every command that talks to a stack answers a missing stack or a dead endpoint with one line and the fix."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from loopline.cli import main
from loopline.client import StackClient
from loopline.emulator.local_access import free_port
from loopline.operate.stack_memory import new_record, remember_stack

OTHER_STACK = "loopline-other"
MINIMAL_TEMPLATE = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "t"}}}}


def stack_commands(tmp_path: Path) -> list[list[str]]:
    """Every subcommand that talks to a stack, with the arguments it needs to get that far."""
    csv = tmp_path / "customers.csv"
    csv.write_text("a,b\n1,2\n", encoding="utf-8")
    return [["status"], ["models"], ["rollback", "--reason", "test"], ["report"], ["approve", "m-1"],
            ["reject", "m-1", "--reason", "no"], ["score", str(csv)], ["upload", str(csv)],
            ["events", "--timeout", "1"]]


COMMAND_NAMES = ["status", "models", "rollback", "report", "approve", "reject", "score", "upload", "events"]


@pytest.fixture(scope="module")
def emulator_endpoint() -> Iterator[str]:
    """A moto server holding one stack (not the one the commands ask for)."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        cloudformation = StackClient.cloudformation_client(endpoint, "us-east-1")
        cloudformation.create_stack(StackName=OTHER_STACK, TemplateBody=json.dumps(MINIMAL_TEMPLATE))
        yield endpoint
    finally:
        server.stop()


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "", captured.out
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize("index", range(len(COMMAND_NAMES)), ids=COMMAND_NAMES)
def test_every_command_names_the_stacks_that_exist_when_asked_for_a_missing_one(
        index: int, emulator_endpoint: str, stack_state_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]):
    # given
    command = stack_commands(tmp_path)[index]

    # when
    code = main([*command, "--endpoint-url", emulator_endpoint, "--stack-name", "loopline-wine"])

    # then
    line = _one_line_error(capsys)
    assert code == 1
    assert f"no stack 'loopline-wine' at {emulator_endpoint}; stacks there: {OTHER_STACK}" in line
    assert f"add --stack-name {OTHER_STACK}" in line and f"export LOOPLINE_STACK={OTHER_STACK}" in line


@pytest.mark.parametrize("index", range(len(COMMAND_NAMES)), ids=COMMAND_NAMES)
def test_every_command_names_the_endpoint_and_the_fix_when_nothing_answers(
        index: int, stack_state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # given: a port nobody listens on
    dead = f"http://127.0.0.1:{free_port()}"
    command = stack_commands(tmp_path)[index]

    # when
    code = main([*command, "--endpoint-url", dead])

    # then
    line = _one_line_error(capsys)
    assert code == 1
    assert f"nothing answers at {dead} (--endpoint-url) for stack 'loopline'" in line
    assert f"local up --stack-name loopline --aws-port {dead.rsplit(':', 1)[1]}" in line


def test_a_recorded_stack_that_no_longer_answers_is_named_with_its_endpoint(
        stack_state_dir: Path, capsys: pytest.CaptureFixture[str]):
    # given: `local up` recorded a stack (this process stands in for it) whose endpoint has gone
    dead = f"http://127.0.0.1:{free_port()}"
    remember_stack(new_record("loopline-wine", "us-east-1", dead, "http://127.0.0.1:1/Prod/"))

    # when: no flag at all
    code = main(["status"])

    # then
    line = _one_line_error(capsys)
    assert code == 1
    assert f"nothing answers at {dead} (the running `loopline local up`) for stack 'loopline-wine'" in line


def test_the_command_line_user_sees_one_line_and_no_traceback(emulator_endpoint: str, stack_state_dir: Path):
    # given: the installed entry point in a process of its own, as a user runs it

    # when
    done = subprocess.run([sys.executable, "-m", "loopline.cli", "models", "--stack-name", "nope",
                           "--endpoint-url", emulator_endpoint], capture_output=True, text=True, timeout=120)

    # then
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("loopline models: error: no stack 'nope'")
