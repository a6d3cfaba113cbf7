"""The ingest step: an uploaded CSV becomes a dataset version, or is quarantined with a reason a person can act on.

The upload itself is never deleted: a rejected file is copied to quarantine/ next to its reason.json.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopline_runtime.bucket_layout import LABELS_INCOMING_PREFIX, QUARANTINE_PREFIX
from loopline_runtime.config import PipelineConfig
from loopline_runtime.datasets import DatasetCatalog
from loopline_runtime.errors import InvalidUpload, LineTooLong, NoDatasets, NoUsableFeatures, TooLarge, TooManyColumns
from loopline_runtime.feature_schema import FeatureType
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.schema import FeatureSchema, ambiguous_dates, infer_schema
from loopline_runtime.storage import ObjectStore
from loopline_runtime.upload_checks import UploadChecks
from loopline_runtime.upload_stream import CheckedText, HashingReader, open_csv, typed

if TYPE_CHECKING:
    from loopline_runtime.notifications import Notifier
    from loopline_runtime.orchestration import UploadFollowUps


FIXES = {
    "unparseable_csv": "Export the data as a UTF-8 CSV with a header row, then upload it again.",
    "missing_target": "Add the target column named in the pipeline config (or fix `target`), then upload again. "
                      "To get predictions for rows without labels, upload them under batch/incoming/ instead "
                      "(`loopline score FILE`).",
    "schema_mismatch": "Make the columns and their types match the pipeline's features, or update pipeline.yaml.",
    "too_few_rows": "Upload more labeled rows in one file, or lower training.min_rows in pipeline.yaml.",
    "single_class": "Include rows of at least two classes, or check that the target column is the right one.",
    "no_usable_features": "Add at least one feature column besides the target and the ignored or id-like columns "
                          "(or list the feature columns under `features` in pipeline.yaml), then upload again.",
    "too_large": "Split the file into smaller CSVs (each with the header row) and upload them one by one, or raise "
                 "ingest.max_upload_mb in the pipeline config.",
    "too_many_columns": "Upload only the feature columns and the target, or raise ingest.max_columns.",
    "line_too_long": "Check that the file is a CSV with one row per line, or raise ingest.max_line_kb.",
}
MB = 1_000_000


@dataclass(frozen=True)
class IngestOutcome:
    status: str  # accepted | duplicate | quarantined
    source_key: str
    dataset_version: str | None = None
    rows: int | None = None
    quarantine_key: str | None = None
    reason: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # accepted, but a person should know (ambiguous dates)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, {}, [])}


def loggable(outcome: dict[str, Any]) -> dict[str, Any]:
    """What the logs keep of an outcome: a quarantine's reason code and keys, not its message, which quotes values
    of the upload (those stay in the bucket's reason.json, next to the quarantined copy)."""
    reason = outcome.get("reason")
    if not reason:
        return outcome
    kept = {k: v for k, v in reason.items() if k in ("reason_code", "error", "quarantined_copy", "sha256")}
    return {**outcome, "reason": kept}


def prior_schema(catalog: DatasetCatalog, config: PipelineConfig) -> FeatureSchema | None:
    """The newest accepted version's schema while the config agrees with it (same target and features)."""
    try:
        prior = FeatureSchema.from_dict(catalog.latest().manifest["schema"])
    except NoDatasets:
        return None
    # an empty schema is never inherited (it would make every later upload untrainable)
    if prior.features and prior.target == config.target and config.features in (None, prior.features):
        return prior
    return None


def inferred_schema(frame: pd.DataFrame, config: PipelineConfig) -> FeatureSchema:
    """The schema the config and this upload define; NoUsableFeatures when it has no feature to learn from."""
    schema = infer_schema(frame, config)
    if not schema.features:
        others = [c for c in frame.columns if c != schema.target]
        ignored = f"; ignored or id-like: {', '.join(schema.ignored)}" if schema.ignored else ""
        raise NoUsableFeatures(
            f"the upload has no usable feature column: besides the target {schema.target!r} it holds "
            f"{', '.join(map(repr, others)) or 'nothing'}{ignored}; a model needs at least one feature to learn from"
        )
    return schema


def ingest_upload(store: ObjectStore, key: str, config: PipelineConfig, *, size: int | None = None,
                  version_id: str | None = None) -> IngestOutcome:
    """Validate `key` and write a dataset version, or quarantine it. Idempotent for repeated deliveries.

    The upload is streamed in chunks (memory bounded by the chunk, time linear in the size); `size` (from the S3
    event, else a HEAD) is checked against ingest.max_upload_mb before a byte is read. `version_id` is the S3
    version the event names: what is checked, read and quarantined is that version, never a newer upload to the
    same key (which has its own event).
    """
    source = posixpath.basename(key)
    size = store.head(key, version_id)[0] if size is None else size
    limit_mb = config.ingest.max_upload_mb
    if size > limit_mb * MB:
        return quarantine(store, key, TooLarge(
            f"{source} is {size / MB:,.1f} MB; the pipeline ingests at most {limit_mb:,} MB per upload "
            f"(ingest.max_upload_mb). Split it into files of at most {limit_mb:,} MB, each with the header row "
            f"(e.g. `split -C {limit_mb}m` on the rows, then prepend the header), and upload them one by one: "
            "each becomes a dataset version and training uses the newest training.window of them"
        ), version_id=version_id)
    catalog = DatasetCatalog(store)
    with contextlib.closing(store.open(key, version_id)) as body, \
            tempfile.TemporaryDirectory(prefix="ingest-") as scratch:
        raw = HashingReader(body, max_line_bytes=config.ingest.max_line_kb * 1024, source=source)
        data_path = Path(scratch) / "data.csv"
        try:
            checks, columns, schema, warnings = _read(raw, catalog, config, source, data_path)
        except InvalidUpload as exc:
            # the caps stop reading where they trip; otherwise the rest is read (not kept) to name the upload
            sha256 = None if isinstance(exc, LineTooLong | TooManyColumns) else raw.drain()
            return quarantine(store, key, exc, sha256=sha256, version_id=version_id)
        sha256 = raw.drain()
        version = "ds-" + sha256[:20]  # = datasets.version_for(the whole upload)
        if catalog.exists(version):
            catalog.ensure_indexed(version)  # a first delivery may have stopped between the manifest and the index
            return IngestOutcome("duplicate", key, dataset_version=version)
        from loopline_runtime.drift import build_profile  # local: only accepted uploads pay for scipy

        features = {name: kind.value for name, kind in schema.features.items()}
        sample = checks.profile_rows()
        profile = build_profile(sample.reindex(columns=list(features)), features)
        profile["sampled_rows"], profile["rows"] = profile["rows"], checks.labeled
        manifest = {
            "source_key": key,
            "sha256": sha256,
            "bytes": raw.bytes_read,
            "rows": checks.labeled,
            "rows_without_label": checks.rows - checks.labeled,
            "columns": columns,
            "schema": schema.to_dict(),
            "null_ratios": checks.null_ratios(),
            "profile": profile,
            "warnings": warnings,
        }
        created = catalog.write_file(version, data_path, manifest)
    return IngestOutcome("accepted" if created else "duplicate", key, dataset_version=version, rows=checks.labeled,
                         warnings=warnings)


def process_upload(store: ObjectStore, key: str, config: PipelineConfig, follow_ups: UploadFollowUps, *,
                   size: int | None = None, version_id: str | None = None,
                   notifier: Notifier | None = None) -> dict[str, Any]:
    """One uploaded object: a dataset version (or quarantine, announced on `notifier`), then training or
    monitoring (see `follow_up`). A labels file (under incoming/labels/) is joined to the captured predictions
    first (loopline_runtime.late_labels)."""
    if key.startswith(LABELS_INCOMING_PREFIX):
        from loopline_runtime.late_labels import process_labels  # (it builds on this module)

        return process_labels(store, key, config, follow_ups, version_id=version_id, notifier=notifier)
    outcome = ingest_upload(store, key, config, size=size, version_id=version_id)
    if outcome.status == "quarantined" and notifier is not None:
        notifier.quarantined(outcome.reason)
    return follow_up(outcome, ModelRegistry(store),
                     start_training=follow_ups.start_training, request_monitoring=follow_ups.request_monitoring)


def follow_up(outcome: IngestOutcome, registry: ModelRegistry, *, start_training: Callable[[str], str],
              request_monitoring: Callable[[str], None]) -> dict[str, Any]:
    """After a dataset version exists: train when there is no champion yet, else measure the champion on it.

    Runs for first and repeated deliveries alike, so a redelivered event starts what a failed first attempt did
    not; both actions are idempotent (the execution name derives from the dataset version; a batch is measured
    once per champion).
    """
    result = outcome.to_dict()
    if outcome.dataset_version is None:
        return result
    pointer = registry.champion_pointer()
    if pointer is None:
        result["execution_arn"] = start_training(outcome.dataset_version)
        return result
    if outcome.dataset_version in registry.manifest(pointer["version"]).get("dataset_versions", []):
        result["follow_up"] = "in the champion's training data"
        return result
    request_monitoring(outcome.dataset_version)
    result["monitoring"] = "requested"
    return result


def _read(raw: HashingReader, catalog: DatasetCatalog, config: PipelineConfig, source: str,
          data_path: Path) -> tuple[UploadChecks, list[str], FeatureSchema, list[str]]:
    """Parse and check every chunk, writing the labeled rows of the schema's columns to `data_path`; also the
    warnings a person should read (date columns whose values read either way)."""
    text = CheckedText(raw, source=source)
    csv_chunks = open_csv(text, source=source, max_columns=config.ingest.max_columns, delimiter=config.csv.delimiter)
    checks: UploadChecks | None = None
    keep: list[str] = []
    warnings: dict[str, str] = {}
    with data_path.open("w", encoding="utf-8", newline="") as out:
        for chunk in csv_chunks.chunks:
            if checks is None:
                prior = prior_schema(catalog, config)
                schema = prior or inferred_schema(typed(chunk), config)
                checks = UploadChecks(schema, config.training.min_rows, config.training.holdout_fraction,
                                      track_levels=prior is None, seed=config.training.seed)
                checks.check_columns(csv_chunks.columns)
                keep = [c for c in csv_chunks.columns if c in schema.features or c == schema.target]
            dates = [n for n, k in checks.schema.features.items() if k is FeatureType.DATE and n in chunk]
            for name in (n for n in dates if n not in warnings):
                if (warning := ambiguous_dates(name, chunk[name])) is not None:
                    warnings[name] = warning
            labeled = checks.add(chunk)
            labeled[keep].to_csv(out, index=False, header=out.tell() == 0)
    assert checks is not None  # open_csv yields at least the (possibly empty) first chunk
    schema = checks.finish()
    return checks, csv_chunks.columns, schema, list(warnings.values())


def quarantine(store: ObjectStore, key: str, error: InvalidUpload, *, sha256: str | None = None,
               version_id: str | None = None) -> IngestOutcome:
    """Keep a copy of the rejected upload (a server-side copy: its bytes never pass through this function)
    with a machine-readable reason next to it."""
    now = datetime.now(UTC)
    tag = sha256[:8] if sha256 else hashlib.sha256(f"{key}:{store.etag(key)}".encode()).hexdigest()[:8]
    folder = f"{QUARANTINE_PREFIX}{now.strftime('%Y%m%dT%H%M%S')}-{tag}/"
    copy_key = folder + posixpath.basename(key)
    reason = {
        "source_key": key,
        "reason_code": error.reason_code,
        "error": type(error).__name__,
        "message": str(error),
        "how_to_fix": FIXES.get(error.reason_code, "Fix the file and upload it again."),
        "quarantined_copy": copy_key,
        "received_at": now.isoformat(),
    }
    if sha256:
        reason["sha256"] = sha256
    if version_id:
        reason["source_version_id"] = version_id
    store.copy(key, copy_key, version_id=version_id)
    store.put_json(folder + "reason.json", reason)
    return IngestOutcome("quarantined", key, quarantine_key=copy_key, reason=reason)
