"""`loopline local up` starts without third-party warnings that are false on this emulator."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from loopline.emulator.local_up import _MISLEADING_LOGGERS, quiet_third_party_warnings
from tests.conftest import REPO_ROOT

BATCH_ASL = REPO_ROOT / "infra" / "statemachine" / "batch_scoring.asl.json"


@pytest.fixture
def moto_log_levels() -> Iterator[None]:
    """Restore the levels local up changes (they are process-wide)."""
    before = {name: logging.getLogger(name).level for name in _MISLEADING_LOGGERS}
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


def _definition() -> str:
    """The batch scoring ASL with its substitutions filled in (the parser checks Resource ARNs)."""
    substitutions = {"BatchFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:batch",
                     "ArtifactBucket": "bucket", "BatchMapResultsPrefix": "batch/map-results/"}
    text = BATCH_ASL.read_text(encoding="utf-8")
    for name, value in substitutions.items():
        text = text.replace("${" + name + "}", value)
    return text


def _parse_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        AmazonStateLanguageParser.parse(_definition())
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_tolerated_failure_warning_is_not_shown_at_start_up(moto_log_levels: None,
                                                                caplog: pytest.LogCaptureFixture):
    # given: moto warns when it parses the batch scoring state machine's ToleratedFailurePercentage
    logging.getLogger(_MISLEADING_LOGGERS[0]).setLevel(logging.NOTSET)
    assert any("ToleratedFailure" in message for message in _parse_warnings(caplog))

    # when
    quiet_third_party_warnings()

    # then
    assert _parse_warnings(caplog) == []
