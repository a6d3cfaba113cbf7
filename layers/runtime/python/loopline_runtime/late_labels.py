"""A labels file under incoming/labels/ -> joined to the captures -> a labeled batch ingested like an upload.

The joined batch (captured inputs + label, labels/joined/<run>.csv) goes through `ingest_upload` (the same checks
and the same dataset version as an uploaded CSV) and `follow_up` (measured by the monitor function: same metrics,
same alarm, so ALARM starts retraining, which trains on it like any version). Every labels file leaves a report,
labels/reports/<run>/report.json, with unmatched.csv listing the ids no capture of the window had.

A joined prediction that a shadow also answered (gate.shadow) is kept for the shadow's decision too: the label
with both answers, one JSON line per row, in labels/shadow/<shadow version>/<run>.jsonl.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import posixpath
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline_runtime.bucket_layout import LABELS_JOINED_PREFIX, LABELS_REPORTS_PREFIX, LABELS_SHADOW_PREFIX, key_time
from loopline_runtime.config import PipelineConfig
from loopline_runtime.datasets import DatasetCatalog
from loopline_runtime.errors import InvalidUpload
from loopline_runtime.ingest import follow_up, ingest_upload, prior_schema, quarantine
from loopline_runtime.labels import ID_COLUMN, join_labels, read_labels
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.storage import ObjectStore

if TYPE_CHECKING:
    from loopline_runtime.notifications import Notifier
    from loopline_runtime.orchestration import UploadFollowUps

LABELS_JOINED = "labels_joined"


def process_labels(store: ObjectStore, key: str, config: PipelineConfig, follow_ups: UploadFollowUps, *,
                   version_id: str | None = None, notifier: Notifier | None = None,
                   now: datetime | None = None) -> dict[str, Any]:
    """Join one labels file to the captures of the window and ingest the matches; the outcome (also the report)."""
    source = posixpath.basename(key)
    now = now or datetime.now(UTC)
    catalog = DatasetCatalog(store)
    schema = prior_schema(catalog, config)
    if schema is None:
        return _quarantined(store, key, InvalidUpload(
            f"{source}: labels are joined to captured predictions of a trained model, and no dataset has been "
            "accepted yet; upload a labeled CSV to incoming/ first"), version_id, notifier)
    try:
        with contextlib.closing(store.open(key, version_id)) as body:  # streamed: only the index is held
            labels = read_labels(io.TextIOWrapper(body, encoding="utf-8-sig", newline=""), schema.target,
                                 source=source)
    except (InvalidUpload, UnicodeDecodeError) as exc:
        error = exc if isinstance(exc, InvalidUpload) else InvalidUpload(f"{source} is not UTF-8 text: {exc}")
        return _quarantined(store, key, error, version_id, notifier)
    run = f"{key_time(now)}-{hashlib.sha256(f'{key}:{version_id}'.encode()).hexdigest()[:12]}"
    start = now - timedelta(days=config.labels.window_days)
    shadow_rows: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="labels-") as scratch:
        joined_path = Path(scratch) / "joined.csv"
        with joined_path.open("w", encoding="utf-8", newline="") as out:
            result = join_labels(store, labels, features=list(schema.features), target=schema.target,
                                 start=start, end=now, out=out,
                                 on_match=lambda record, label: _keep_shadow_row(shadow_rows, record, label))
        joined_key = f"{LABELS_JOINED_PREFIX}{run}.csv"
        outcome: dict[str, Any] = {"status": "no_match", "source_key": key}
        if result.matched:
            store.put_file(joined_key, joined_path, content_type="text/csv")
            ingested = ingest_upload(store, joined_key, config)
            outcome = follow_up(ingested, ModelRegistry(store), start_training=follow_ups.start_training,
                                request_monitoring=follow_ups.request_monitoring)
            outcome["joined_key"] = joined_key
    for shadow_version, lines in shadow_rows.items():
        store.put_bytes(f"{LABELS_SHADOW_PREFIX}{shadow_version}/{run}.jsonl", ("\n".join(lines) + "\n").encode(),
                        content_type="application/x-ndjson")
    report_prefix = f"{LABELS_REPORTS_PREFIX}{run}/"
    unmatched_key = f"{report_prefix}unmatched.csv"
    store.put_bytes(unmatched_key, ("\n".join([ID_COLUMN, *result.unmatched]) + "\n").encode(),
                    content_type="text/csv")
    report = {
        **outcome,
        "labels_key": key,
        "labels": labels.rows,
        "distinct_ids": len(labels.by_id),
        "duplicate_ids": labels.duplicates,
        "duplicates_rule": "the last row of an id in the file wins",
        "without_id_or_label": labels.without_label,
        "matched": result.matched,
        "unmatched": len(result.unmatched),
        "unmatched_key": unmatched_key,
        "shadow_rows": {version: len(lines) for version, lines in shadow_rows.items()},
        "window": {"start": start.isoformat(), "end": now.isoformat(), "capture_files": result.capture_files,
                   "captured_rows": result.captured_rows},
    }
    report["report_key"] = f"{report_prefix}report.json"
    store.put_json(report["report_key"], report)
    if notifier is not None:
        notifier.publish(LABELS_JOINED, f"{source}: {result.matched:,} labels joined, {len(result.unmatched):,} "
                         "unmatched", **{k: v for k, v in report.items() if k != "reason"})
    return report


def _keep_shadow_row(rows: dict[str, list[str]], record: dict[str, Any], label: str) -> None:
    """A joined capture that a shadow answered too: the label with both answers, for the shadow's decision."""
    shadow = record.get("shadow")
    if not isinstance(shadow, dict) or not shadow.get("model_version"):
        return
    version = str(shadow["model_version"])
    if "/" in version or not version:
        return  # not a version this stack wrote: never a key outside labels/shadow/<version>/
    champion = {"model_version": record.get("model_version"), "prediction": record.get("prediction"),
                "probabilities": record.get("probabilities")}
    rows.setdefault(version, []).append(json.dumps(
        {"prediction_id": record.get("prediction_id"), "label": label, "champion": champion,
         "shadow": {k: shadow.get(k) for k in ("model_version", "prediction", "probabilities")}},
        separators=(",", ":")))


def _quarantined(store: ObjectStore, key: str, error: InvalidUpload, version_id: str | None,
                 notifier: Notifier | None) -> dict[str, Any]:
    outcome = quarantine(store, key, error, version_id=version_id)
    if notifier is not None:
        notifier.quarantined(outcome.reason)
    return outcome.to_dict()
