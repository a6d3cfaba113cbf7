"""Which stack a command talks to: --stack-name, LOOPLINE_STACK, the stack `loopline local up` recorded, loopline."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loopline.operate.stack_memory import (
    forget_stack,
    new_record,
    remember_stack,
    resolve_target,
    running_stacks,
)


def _dead_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_command_without_flags_finds_the_stack_local_up_runs(stack_state_dir):
    # given
    remember_stack(new_record("wine", "eu-west-1", "http://127.0.0.1:5123", "http://127.0.0.1:3123/Prod/"))

    # when
    target = resolve_target(None, None, None)

    # then
    assert (target.stack_name, target.endpoint_url, target.region) == ("wine", "http://127.0.0.1:5123", "eu-west-1")
    assert target.flags() == []  # a printed follow-up command needs no flag to find it again


def test_the_stack_name_flag_and_the_environment_variable_override_the_recorded_stack(
        stack_state_dir, monkeypatch: pytest.MonkeyPatch):
    # given
    remember_stack(new_record("wine", "us-east-1", "http://127.0.0.1:5123", "http://127.0.0.1:3123/Prod/"))
    monkeypatch.setenv("LOOPLINE_STACK", "churn")

    # when
    from_env = resolve_target(None, None, None)
    from_flag = resolve_target("iris", None, None)

    # then: neither is the recorded local stack, so neither is sent to its endpoint (AWS is the default)
    assert (from_env.stack_name, from_env.endpoint_url) == ("churn", None)
    assert (from_flag.stack_name, from_flag.endpoint_url) == ("iris", None)
    assert from_flag.flags() == ["--stack-name", "iris"]


def test_a_named_stack_that_local_up_runs_gets_its_endpoint(stack_state_dir):
    # given: two local stacks
    remember_stack(new_record("wine", "us-east-1", "http://127.0.0.1:5123", "http://127.0.0.1:3123/Prod/"))
    remember_stack(new_record("iris", "us-east-1", "http://127.0.0.1:5200", "http://127.0.0.1:3200/Prod/"))

    # when
    target = resolve_target("wine", None, None)

    # then
    assert target.endpoint_url == "http://127.0.0.1:5123"


def test_a_record_whose_emulator_was_killed_is_ignored(stack_state_dir):
    # given: a record left by a `local up` that did not stop cleanly
    record = new_record("gone", "us-east-1", "http://127.0.0.1:5999", "http://127.0.0.1:3999/Prod/")
    remember_stack(record.__class__(**{**record.__dict__, "pid": _dead_pid()}))

    # when
    target = resolve_target(None, None, None)

    # then
    assert running_stacks() == []
    assert (target.stack_name, target.endpoint_url, target.name_from) == ("loopline", None, "default")


def test_a_stopping_stack_removes_only_its_own_record(stack_state_dir):
    # given
    record = remember_stack(new_record("wine", "us-east-1", "http://127.0.0.1:5123", "http://127.0.0.1:3123/Prod/"))

    # when: another process of the same name stops, then this one
    forget_stack("wine", pid=_dead_pid())
    kept = record.exists()
    forget_stack("wine", pid=__import__("os").getpid())

    # then
    assert kept and not record.exists()


def test_a_stack_name_that_is_not_the_running_local_one_names_the_running_one_without_aws_credentials(
        stack_state_dir, tmp_path, monkeypatch: pytest.MonkeyPatch):
    # given: `local up --stack-name wine` runs; no AWS credentials anywhere
    from loopline.operate.connection import NoCredentials, connect

    remember_stack(new_record("wine", "us-east-1", "http://127.0.0.1:5123", "http://127.0.0.1:3123/Prod/"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    # when: a command asks for another stack by name
    with pytest.raises(NoCredentials) as raised:
        connect(resolve_target("nosuch", None, None))

    # then: the message does not claim nothing runs; it names the running stack and the flag that reaches it
    message = str(raised.value)
    assert "the local emulator runs wine" in message
    assert "--stack-name wine" in message
    assert "no local stack is running" not in message


def test_after_local_up_stops_a_command_names_the_stack_to_start_again(
        stack_state_dir, tmp_path, monkeypatch: pytest.MonkeyPatch):
    # given: `local up --stack-name wine` ran and stopped; no AWS credentials anywhere
    from loopline.operate.connection import NoCredentials, connect

    remember_stack(new_record("wine", "us-east-1", "http://127.0.0.1:5123", "http://127.0.0.1:3123/Prod/"))
    forget_stack("wine", pid=__import__("os").getpid())
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL", "LOOPLINE_STACK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    # when a command runs without flags
    with pytest.raises(NoCredentials) as raised:
        connect(resolve_target(None, None, None))

    # then it says which stack stopped and how to start that one, not the default name
    message = str(raised.value)
    assert "the last one, 'wine', has stopped" in message
    assert "local up --stack-name wine" in message
