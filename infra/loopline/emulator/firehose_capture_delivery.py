"""Gap: moto's CloudWatch Logs subscription filter -> Firehose -> S3 path is not what AWS does.

moto 5.2.5 (`FirehoseBackend.send_log_event`) ignores the filter pattern (every log line is sent), checks no role,
writes each batch of log events at once as one gzipped CloudWatch Logs envelope (no buffering, no processors),
under `<prefix>YYYY/MM/DD/HH/` (the `!{timestamp:...}` expressions of a custom prefix are written literally), and
raises KeyError for an ExtendedS3 destination. AWS:

- CloudWatch Logs sends only the events that match the filter pattern, with the filter's role (which must allow
  `firehose:PutRecord` on the stream);
- Firehose runs the processors (Decompression, CloudWatchLogProcessing with DataMessageExtraction: each log
  event's message becomes a record; AppendDelimiterToRecord: each ends with a newline), buffers the records until
  `BufferingHints` (SizeInMBs or IntervalInSeconds) is reached, then writes one object under the prefix with its
  `!{timestamp:...}` expressions evaluated at arrival (UTC), named `<stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<id>`,
  GZIP-compressed (`.gz`) when CompressionFormat says so, with the stream's role (which must allow s3:PutObject on
  the key).

This module does that. Two differences, both said in docs/emulator.md: the buffer interval is capped at
`LOOPLINE_FIREHOSE_MAX_BUFFER_SECONDS` (default 1 s) so a local loop does not wait a minute for its captures, and a
delivery the delivery role may not make is dropped with a message on stderr (AWS retries for up to 24 h, then
writes to the error prefix). Filter patterns: the empty pattern (every event) and JSON equality
`{ $.field = "text" }` / `{ $.field = number }`; any other pattern is refused when the filter is used.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from unittest import mock

from moto.firehose.models import FirehoseBackend, firehose_backends
from moto.logs.models import logs_backends
from moto.s3.models import s3_backends

from loopline.emulator.background import ticking
from loopline.emulator.iam_enforcement import role_may

MAX_BUFFER_SECONDS_VARIABLE = "LOOPLINE_FIREHOSE_MAX_BUFFER_SECONDS"
_JSON_EQUALITY = re.compile(r'^\{\s*\$\.([A-Za-z0-9_.]+)\s*=\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?)\s*\}$')
_TIMESTAMP = re.compile(r"!\{timestamp:([^}]+)\}")
_JAVA_TO_STRFTIME = (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S"))


class UnsupportedFilterPattern(ValueError):
    """A subscription filter pattern this emulator cannot evaluate."""


def log_event_matches(pattern: str, message: str) -> bool:
    """Whether a log event's message matches a subscription filter pattern (see the module docstring)."""
    if not pattern.strip():
        return True
    match = _JSON_EQUALITY.match(pattern.strip())
    if match is None:
        raise UnsupportedFilterPattern(f"filter pattern {pattern!r}: the emulator evaluates only '' and "
                                       '{ $.field = "text" } / { $.field = number }')
    try:
        document: Any = json.loads(message)
    except ValueError:
        return False  # a JSON pattern never matches a line that is not JSON
    for part in match.group(1).split("."):
        if not isinstance(document, dict) or part not in document:
            return False
        document = document[part]
    expected = json.loads(match.group(2))
    return bool(document == expected and type(document) is not bool)


def object_prefix(prefix: str, moment: datetime) -> str:
    """A custom prefix with its `!{timestamp:...}` expressions evaluated at `moment` (UTC)."""

    def evaluate(found: re.Match[str]) -> str:
        pattern = found.group(1)
        for java, python in _JAVA_TO_STRFTIME:
            pattern = pattern.replace(java, python)
        return moment.astimezone(UTC).strftime(pattern)

    return _TIMESTAMP.sub(evaluate, prefix)


@dataclass
class _Buffer:
    records: list[bytes] = field(default_factory=list)
    size: int = 0
    opened: float = 0.0


class CaptureDelivery:
    """Per delivery stream: the records received and not yet written (see the module docstring)."""

    def __init__(self, max_buffer_seconds: float | None = None) -> None:
        env = os.environ.get(MAX_BUFFER_SECONDS_VARIABLE)
        self.max_buffer_seconds = max_buffer_seconds if max_buffer_seconds is not None else float(env or 1.0)
        self._buffers: dict[tuple[str, str, str], _Buffer] = {}  # (account, region, stream name)
        self._lock = threading.Lock()

    def receive(self, backend: FirehoseBackend, stream_arn: str, filter_name: str, log_group_name: str,
                log_events: list[dict[str, Any]], now: float | None = None) -> int:
        """CloudWatch Logs delivers a batch of log events of one subscription filter; returns records buffered."""
        group = logs_backends[backend.account_id][backend.region_name].groups[log_group_name]
        subscription = group.subscription_filters[filter_name]
        matching = [e for e in log_events if log_event_matches(subscription.filter_pattern, e["message"])]
        if not matching:
            return 0
        if not role_may(subscription.role_arn, "firehose:PutRecord", stream_arn):
            print(f"loopline: CloudWatch Logs may not put to {stream_arn} with {subscription.role_arn}; "
                  f"{len(matching)} log events of {log_group_name} not delivered", file=sys.stderr)
            return 0
        stream = backend.lookup_name_from_arn(stream_arn)
        if stream is None:
            return 0
        destination = _s3_destination(stream)
        records = _processed(destination, matching)
        moment = now if now is not None else datetime.now(UTC).timestamp()
        key = (backend.account_id, backend.region_name, stream.delivery_stream_name)
        with self._lock:
            buffer = self._buffers.setdefault(key, _Buffer(opened=moment))
            if not buffer.records:
                buffer.opened = moment
            buffer.records.extend(records)
            buffer.size += sum(len(r) for r in records)
            size_mb = int(destination.get("BufferingHints", {}).get("SizeInMBs", 5))
            full = buffer.size >= size_mb * 1024 * 1024
        if full:
            self.flush(key, moment)
        return len(records)

    def flush_due(self, now: float | None = None) -> int:
        """Write every buffer whose interval has passed; the number of objects written."""
        moment = now if now is not None else datetime.now(UTC).timestamp()
        with self._lock:
            keys = list(self._buffers)
        return sum(self.flush(key, moment, only_if_due=True) for key in keys)

    def flush(self, key: tuple[str, str, str], moment: float, *, only_if_due: bool = False) -> int:
        """Write the buffer of one stream as one S3 object (1), or nothing (0)."""
        account_id, region, name = key
        backend = firehose_backends[account_id][region]
        stream = backend.delivery_streams.get(name)
        with self._lock:
            buffer = self._buffers.get(key)
            if stream is None or buffer is None or not buffer.records:
                return 0
            destination = _s3_destination(stream)
            interval = min(float(destination.get("BufferingHints", {}).get("IntervalInSeconds", 300)),
                           self.max_buffer_seconds)
            if only_if_due and moment - buffer.opened < interval:
                return 0
            records, self._buffers[key] = buffer.records, _Buffer()
        self._write(account_id, stream, destination, records, moment)
        return 1

    def _write(self, account_id: str, stream: Any, destination: dict[str, Any], records: list[bytes],
               moment: float) -> None:
        arrival = datetime.fromtimestamp(moment, UTC)
        body = b"".join(records)
        suffix = ""
        if str(destination.get("CompressionFormat", "UNCOMPRESSED")).upper() == "GZIP":
            body, suffix = gzip.compress(body), ".gz"
        bucket = str(destination["BucketARN"]).split(":")[-1]
        key = (f"{object_prefix(str(destination.get('Prefix', '')), arrival)}{stream.delivery_stream_name}-"
               f"{stream.version_id}-{arrival:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}{suffix}")
        role_arn = str(destination.get("RoleARN", ""))
        if not role_may(role_arn, "s3:PutObject", f"arn:aws:s3:::{bucket}/{key}"):
            print(f"loopline: Firehose {stream.delivery_stream_name} may not write s3://{bucket}/{key} with "
                  f"{role_arn}; {len(records)} records dropped", file=sys.stderr)
            return
        s3_backends[account_id]["aws"].put_object(bucket, key, body)

    @contextmanager
    def installed(self) -> Iterator[None]:
        """CloudWatch Logs -> Firehose deliveries go through this object; buffers are written on a 0.2 s tick."""
        delivery = self

        def send_log_event(self: FirehoseBackend, delivery_stream_arn: str, filter_name: str, log_group_name: str,
                           log_stream_name: str, log_events: list[dict[str, Any]]) -> None:
            delivery.receive(self, delivery_stream_arn, filter_name, log_group_name, log_events)

        with mock.patch.object(FirehoseBackend, "send_log_event", send_log_event), \
                ticking("Firehose delivery", 0.2, delivery.flush_due):
            yield


def _s3_destination(stream: Any) -> dict[str, Any]:
    destination = stream.destinations[0]
    return dict(destination.get("ExtendedS3") or destination.get("S3") or {})


def _processed(destination: dict[str, Any], log_events: list[dict[str, Any]]) -> list[bytes]:
    """The records Firehose makes of one CloudWatch Logs delivery, after the destination's processors."""
    processors = {p["Type"]: {q["ParameterName"]: q["ParameterValue"] for q in p.get("Parameters", [])}
                  for p in (destination.get("ProcessingConfiguration") or {}).get("Processors", [])}
    extract = str(processors.get("CloudWatchLogProcessing", {}).get("DataMessageExtraction", "false")) == "true"
    if not extract:  # the record is the gzipped envelope, as CloudWatch Logs sends it
        envelope = {"messageType": "DATA_MESSAGE", "logEvents": log_events}
        return [gzip.compress(json.dumps(envelope, separators=(",", ":")).encode())]
    delimiter = b""
    if "AppendDelimiterToRecord" in processors:
        delimiter = processors["AppendDelimiterToRecord"].get("Delimiter", "\\n").encode().decode("unicode_escape")
        delimiter = delimiter.encode()
    return [event["message"].encode() + delimiter for event in log_events]
