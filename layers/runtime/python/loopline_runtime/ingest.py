"""The ingest step: an uploaded CSV becomes a dataset version, or is quarantined with a reason a person can act on.

The upload itself is never deleted: a rejected file is copied to quarantine/ next to its reason.json.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopline_runtime.bucket_layout import QUARANTINE_PREFIX
from loopline_runtime.config import PipelineConfig
from loopline_runtime.datasets import DatasetCatalog, version_for
from loopline_runtime.errors import InvalidUpload, NoDatasets, NoUsableFeatures
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.schema import FeatureSchema, infer_schema, read_csv, validate_training_frame
from loopline_runtime.storage import ObjectStore

if TYPE_CHECKING:
    from loopline_runtime.orchestration import UploadFollowUps


FIXES = {
    "unparseable_csv": "Export the data as a UTF-8 CSV with a header row, then upload it again.",
    "missing_target": "Add the target column named in the pipeline config (or fix `target`), then upload again.",
    "schema_mismatch": "Make the columns and their types match the pipeline's features, or update pipeline.yaml.",
    "too_few_rows": "Upload more labeled rows in one file, or lower training.min_rows in pipeline.yaml.",
    "single_class": "Include rows of at least two classes, or check that the target column is the right one.",
    "no_usable_features": "Add at least one feature column besides the target and the ignored or id-like columns "
                          "(or list the feature columns under `features` in pipeline.yaml), then upload again.",
}


@dataclass(frozen=True)
class IngestOutcome:
    status: str  # accepted | duplicate | quarantined
    source_key: str
    dataset_version: str | None = None
    rows: int | None = None
    quarantine_key: str | None = None
    reason: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, {})}


def expected_schema(catalog: DatasetCatalog, config: PipelineConfig, frame: pd.DataFrame) -> FeatureSchema:
    """The schema an upload must match: the newest accepted version's while the config agrees with it
    (same target, same configured features), else the one the config and this upload define."""
    try:
        prior = FeatureSchema.from_dict(catalog.latest().manifest["schema"])
    except NoDatasets:
        prior = None
    # an empty schema is never inherited (it would make every later upload untrainable)
    if prior and prior.features and prior.target == config.target and config.features in (None, prior.features):
        return prior
    schema = infer_schema(frame, config)
    if not schema.features:
        others = [c for c in frame.columns if c != schema.target]
        ignored = f"; ignored or id-like: {', '.join(schema.ignored)}" if schema.ignored else ""
        raise NoUsableFeatures(
            f"the upload has no usable feature column: besides the target {schema.target!r} it holds "
            f"{', '.join(map(repr, others)) or 'nothing'}{ignored}; a model needs at least one feature to learn from"
        )
    return schema


def ingest_upload(store: ObjectStore, key: str, config: PipelineConfig) -> IngestOutcome:
    """Validate `key` and write a dataset version, or quarantine it. Idempotent for repeated deliveries."""
    body = store.get_bytes(key)
    version = version_for(body)
    catalog = DatasetCatalog(store)
    if catalog.exists(version):
        catalog.ensure_indexed(version)  # a first delivery may have stopped between the manifest and the index
        return IngestOutcome("duplicate", key, dataset_version=version)
    try:
        frame = read_csv(body, source=posixpath.basename(key))
        schema = expected_schema(catalog, config, frame)
        labeled = validate_training_frame(frame, schema, min_rows=config.training.min_rows,
                                          holdout_fraction=config.training.holdout_fraction)
    except InvalidUpload as exc:
        return quarantine(store, key, body, exc)
    from loopline_runtime.drift import build_profile  # local: only accepted uploads pay for scipy

    features = {name: kind.value for name, kind in schema.features.items()}
    manifest = {
        "source_key": key,
        "sha256": hashlib.sha256(body).hexdigest(),
        "rows": len(labeled),
        "rows_without_label": len(frame) - len(labeled),
        "columns": list(frame.columns),
        "schema": schema.to_dict(),
        "null_ratios": {c: round(float(frame[c].isna().mean()), 6) for c in frame.columns},
        "profile": build_profile(labeled, features),
    }
    columns = [c for c in labeled.columns if c in schema.features or c == schema.target]
    created = catalog.write(version, labeled[columns], manifest)
    return IngestOutcome("accepted" if created else "duplicate", key, dataset_version=version, rows=len(labeled))


def process_upload(store: ObjectStore, key: str, config: PipelineConfig, follow_ups: UploadFollowUps) -> dict[str, Any]:
    """One uploaded object: a dataset version (or quarantine), then training or monitoring (see `follow_up`)."""
    return follow_up(ingest_upload(store, key, config), ModelRegistry(store),
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


def quarantine(store: ObjectStore, key: str, body: bytes, error: InvalidUpload) -> IngestOutcome:
    """Keep a copy of the rejected upload with a machine-readable reason next to it."""
    now = datetime.now(UTC)
    folder = f"{QUARANTINE_PREFIX}{now.strftime('%Y%m%dT%H%M%S')}-{hashlib.sha256(body).hexdigest()[:8]}/"
    copy_key = folder + posixpath.basename(key)
    reason = {
        "source_key": key,
        "reason_code": error.reason_code,
        "error": type(error).__name__,
        "message": str(error),
        "how_to_fix": FIXES.get(error.reason_code, "Fix the file and upload it again."),
        "quarantined_copy": copy_key,
        "received_at": now.isoformat(),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    store.put_bytes(copy_key, body, content_type="text/csv")
    store.put_json(folder + "reason.json", reason)
    return IngestOutcome("quarantined", key, quarantine_key=copy_key, reason=reason)
