"""The emulator's Firehose rules: which log events a subscription filter sends, and the partitioned object prefix."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loopline.emulator.firehose_capture_delivery import UnsupportedFilterPattern, log_event_matches, object_prefix

PATTERN = '{ $.capture = "prediction/1" }'


@pytest.mark.parametrize(("message", "matches"), [
    ('{"capture": "prediction/1", "inputs": {}}', True),
    ('{"capture": "prediction/2"}', False),
    ('{"level": "INFO", "message": "capture"}', False),
    ("START RequestId: 1 Version: $LATEST", False),
    ('{"capture": {"nested": 1}}', False),
])
def test_a_json_equality_pattern_sends_only_the_events_whose_field_is_that_value(message: str, matches: bool) -> None:
    assert log_event_matches(PATTERN, message) is matches


def test_the_empty_pattern_sends_every_event_and_numbers_compare_as_numbers() -> None:
    assert log_event_matches("", "anything")
    assert log_event_matches("{ $.status.code = 200 }", '{"status": {"code": 200}}')
    assert not log_event_matches("{ $.status.code = 200 }", '{"status": {"code": "200"}}')


def test_a_pattern_the_emulator_cannot_evaluate_is_refused_not_guessed() -> None:
    with pytest.raises(UnsupportedFilterPattern, match="evaluates only"):
        log_event_matches("[ip, user, status=5*]", "1.2.3.4 bob 500")


def test_timestamp_expressions_of_the_prefix_are_the_arrival_time_in_utc() -> None:
    # given
    prefix = ("capture/predictions/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/"
              "hour=!{timestamp:HH}/")

    # when
    evaluated = object_prefix(prefix, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))

    # then
    assert evaluated == "capture/predictions/year=2026/month=01/day=02/hour=03/"
