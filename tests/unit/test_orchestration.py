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


def test_execution_names_are_unique_for_the_same_trigger() -> None:
    # given the same trigger twice (a retried or repeated upload)

    # when
    names = {execution_name("new_data", "ds-0123456789abcdef0123") for _ in range(50)}

    # then no two collide (moto and AWS reject a reused name)
    assert len(names) == 50


def test_execution_name_says_why_it_ran() -> None:
    # given

    # when
    name = execution_name("alarm", "run")

    # then
    assert name.startswith("alarm-run-")


def test_long_subjects_keep_the_unique_suffix() -> None:
    # given a subject longer than the name limit

    # when
    first, second = execution_name("new_data", "y" * 200), execution_name("new_data", "y" * 200)

    # then the names still differ
    assert first != second
    assert len(first) == 80
