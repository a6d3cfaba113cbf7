"""Step Functions execution names: always accepted by StartExecution, unique per trigger."""

from __future__ import annotations

import re

import pytest

from loopline_runtime.orchestration import execution_name

# StartExecution: 1-80 characters; letters, digits, '-' and '_' are the ones safe everywhere (CloudWatch Logs too)
VALID_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")


@pytest.mark.parametrize(
    ("reason", "subject"),
    [
        ("new_data", "ds-0123456789abcdef0123"),
        ("alarm", "run"),
        ("new data", "incoming/2024 batch (final).csv"),
        ("manual", "caf\u00e9 \u2013 \u6570\u636e"),
        ("new_data", "x" * 300),
    ],
)
def test_execution_name_is_valid(reason: str, subject: str) -> None:
    # given a reason and a subject with any characters and length

    # when
    name = execution_name(reason, subject)

    # then
    assert VALID_NAME.fullmatch(name), name


def test_the_same_trigger_gets_the_same_execution_name() -> None:
    # given the same trigger twice (a redelivered upload: StartExecution must find the first execution)

    # when
    names = {execution_name("new_data", "ds-0123456789abcdef0123") for _ in range(50)}

    # then one name
    assert names == {"new_data-ds-0123456789abcdef0123"}


def test_different_triggers_get_different_names() -> None:
    # given subjects that differ only past the length limit, or only in characters a name cannot hold

    # when
    long = {execution_name("new_data", "y" * 200 + tail) for tail in ("a", "b")}
    rewritten = {execution_name("manual", subject) for subject in ("a b", "a/b", "a-b")}

    # then
    assert len(long) == 2 and all(len(name) <= 80 for name in long)
    assert len(rewritten) == 3


def test_execution_name_says_why_it_ran() -> None:
    # given

    # when
    name = execution_name("alarm", "run")

    # then
    assert name == "alarm-run"
