"""Late labels: ground truth that arrives after the prediction, joined to the captured predictions by id.

A labels file is a CSV `request_id,<target>` uploaded under incoming/labels/ (S3 notifies the ingest function).
`request_id` holds the id the prediction API returned: the request id for a request of one record, else the
prediction id `<request id>/<n>` from `prediction_ids`. The captures of the window (labels.window_days back from
now) are streamed one gzipped file at a time and matched against the labels, which are the only thing held in
memory (an id and a label per row, at most `MAX_LABELS` per file); each match is written at once as a row of
captured inputs + label to a local CSV. That CSV is then ingested like any labeled upload (same checks, a dataset
version, the same monitoring run: metrics, alarm, retraining on ALARM; training uses it like any other version).

Duplicates: the last row of a file for an id wins (a correction is appended); a prediction captured twice
(Firehose delivers at least once) is joined once. Ids with no capture in the window are never dropped silently:
they are counted in the outcome and the notification, and listed in labels/reports/<run>/unmatched.csv.

Standard library only (no pandas): the join runs in bounded memory whatever the size of the window.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Any

from loopline_runtime.bucket_layout import capture_hour_prefix
from loopline_runtime.capture import is_capture_record
from loopline_runtime.errors import MissingTarget, TooLarge
from loopline_runtime.storage import ObjectStore

ID_COLUMN = "request_id"
MAX_LABELS = 1_000_000  # ids per labels file (about 100 MB of index); split larger files


@dataclass
class Labels:
    """The labels of one file: id -> label (the last row of an id wins), and what was left out."""

    by_id: dict[str, str] = field(default_factory=dict)
    rows: int = 0
    duplicates: int = 0
    without_label: int = 0


def read_labels(text: IO[str], target: str, *, source: str, max_labels: int = MAX_LABELS) -> Labels:
    """Parse a labels CSV (`request_id,<target>`, other columns ignored).

    Raises:
        MissingTarget: the header lacks `request_id` or the target column (the message says which).
        TooLarge: more than `max_labels` distinct ids.
    """
    reader = csv.reader(text)
    header = [name.strip().lstrip("\ufeff") for name in next(reader, [])]
    missing = [name for name in (ID_COLUMN, target) if name not in header]
    if missing:
        raise MissingTarget(f"{source}: a labels file needs the columns {ID_COLUMN!r} and {target!r} (the "
                            f"pipeline's target); missing {', '.join(repr(m) for m in missing)}, found "
                            f"{', '.join(repr(h) for h in header) or 'no header'}")
    id_at, label_at = header.index(ID_COLUMN), header.index(target)
    labels = Labels()
    for row in reader:
        if not row:
            continue
        labels.rows += 1
        prediction_id = row[id_at].strip() if id_at < len(row) else ""
        label = row[label_at].strip() if label_at < len(row) else ""
        if not prediction_id or not label:
            labels.without_label += 1
            continue
        if prediction_id in labels.by_id:
            labels.duplicates += 1
        elif len(labels.by_id) >= max_labels:
            raise TooLarge(f"{source} holds more than {max_labels:,} ids; split it into files of at most "
                           f"{max_labels:,} rows (each with the header) and upload them one by one")
        labels.by_id[prediction_id] = label
    return labels


def capture_keys(store: ObjectStore, start: datetime, end: datetime) -> Iterator[str]:
    """The capture objects of every hour partition from `start` to `end` (UTC), oldest hour first."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour <= end:
        yield from sorted(store.list_keys(capture_hour_prefix(hour)))
        hour += timedelta(hours=1)


def capture_records(store: ObjectStore, key: str) -> Iterator[dict[str, Any]]:
    """The capture records of one object, streamed (gzipped or not; lines that are not records are skipped)."""
    with contextlib.closing(store.open(key)) as body:
        raw: Any = gzip.GzipFile(fileobj=body) if key.endswith(".gz") else body
        for line in io.TextIOWrapper(raw, encoding="utf-8"):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and is_capture_record(record):
                yield record


@dataclass
class JoinResult:
    matched: int = 0
    unmatched: list[str] = field(default_factory=list)
    capture_files: int = 0
    captured_rows: int = 0


def join_labels(store: ObjectStore, labels: Labels, *, features: list[str], target: str, start: datetime,
                end: datetime, out: IO[str],
                on_match: Callable[[dict[str, Any], str], None] | None = None) -> JoinResult:
    """Write `features + [target]` rows (captured inputs + label) to `out` for each labeled capture in the window;
    `on_match(record, label)` sees each joined capture record (a shadow's rows are kept from there)."""
    writer = csv.writer(out)
    writer.writerow([*features, target])
    joined: set[str] = set()
    result = JoinResult()
    for key in capture_keys(store, start, end):
        result.capture_files += 1
        for record in capture_records(store, key):
            result.captured_rows += 1
            prediction_id = str(record.get("prediction_id", ""))
            label = labels.by_id.get(prediction_id)
            if label is None or prediction_id in joined:
                continue
            joined.add(prediction_id)
            if on_match is not None:
                on_match(record, label)
            inputs = record.get("inputs") or {}
            writer.writerow([_cell(inputs.get(name)) for name in features] + [label])
    result.matched = len(joined)
    result.unmatched = [prediction_id for prediction_id in labels.by_id if prediction_id not in joined]
    return result


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

