"""Where things live in the artifact bucket: the one home of its key layout.

Keys that sort by time carry a UTC timestamp in `KEY_TIME_FORMAT` (sortable as text, microseconds kept so two
writes in one second stay distinct).
"""

from __future__ import annotations

from datetime import UTC, datetime

KEY_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"


def key_time(moment: datetime) -> str:
    """`moment` as it appears in a key (UTC)."""
    return moment.astimezone(UTC).strftime(KEY_TIME_FORMAT)


def parse_key_time(stamp: str) -> datetime:
    """The UTC moment of a `key_time` stamp."""
    return datetime.strptime(stamp, KEY_TIME_FORMAT).replace(tzinfo=UTC)
