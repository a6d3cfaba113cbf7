"""Dataset versions: immutable, content-addressed copies of accepted uploads, with a manifest each.

Layout in the artifact bucket:
    datasets/<version>/data.csv         the accepted rows (normalised UTF-8 CSV)
    datasets/<version>/manifest.json    schema, row count, source key, profile (for drift)
    datasets/_index/<received>_<version>  an empty marker whose key sorts by arrival (newest last)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loopline_runtime.bucket_layout import DATASET_INDEX_PREFIX, dataset_prefix, key_time, parse_key_time
from loopline_runtime.csv_table import csv_columns
from loopline_runtime.errors import NoDatasets
from loopline_runtime.feature_schema import FeatureSchema, FeatureType
from loopline_runtime.storage import ObjectExists, ObjectNotFound, ObjectStore

if TYPE_CHECKING:
    import pandas as pd

LOAD_CHUNK_ROWS = 100_000  # rows parsed at a time by a compact load


def version_for(upload: bytes) -> str:
    """The dataset version of an upload: its content address, so duplicates (and S3 re-deliveries) collide."""
    return "ds-" + hashlib.sha256(upload).hexdigest()[:20]


@dataclass(frozen=True)
class DatasetVersion:
    version: str
    manifest: dict[str, Any]

    @property
    def data_key(self) -> str:
        return f"{dataset_prefix(self.version)}data.csv"


class DatasetCatalog:
    """Reads and writes dataset versions in the artifact store."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def manifest_key(self, version: str) -> str:
        return f"{dataset_prefix(version)}manifest.json"

    def exists(self, version: str) -> bool:
        return self.store.exists(self.manifest_key(version))

    def write(self, version: str, frame: pd.DataFrame, manifest: dict[str, Any]) -> bool:
        """Store a new version; False when it already existed (the manifest write is create-only)."""
        if self.exists(version):
            return False
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        self.store.put_bytes(f"{dataset_prefix(version)}data.csv", buffer.getvalue().encode("utf-8"),
                             content_type="text/csv")
        return self._commit(version, manifest)

    def write_file(self, version: str, data_path: Path, manifest: dict[str, Any]) -> bool:
        """Store a new version whose rows are in a local CSV file (uploaded in parts: bounded memory)."""
        if self.exists(version):
            return False
        self.store.put_file(f"{dataset_prefix(version)}data.csv", data_path, content_type="text/csv")
        return self._commit(version, manifest)

    def _commit(self, version: str, manifest: dict[str, Any]) -> bool:
        received = datetime.now(UTC)
        manifest = {**manifest, "version": version, "received_at": received.isoformat()}
        try:
            self.store.put_json(self.manifest_key(version), manifest, create_only=True)
        except ObjectExists:
            return False  # a concurrent duplicate delivery won the race; it wrote the same rows
        self.store.put_bytes(_index_key(received, version), b"")
        return True

    def ensure_indexed(self, version: str) -> None:
        """Write the index entry of an existing version if it is missing (its key derives from the manifest)."""
        received = datetime.fromisoformat(self.get(version).manifest["received_at"])
        key = _index_key(received, version)
        if not self.store.exists(key):
            self.store.put_bytes(key, b"")

    def newest(self, count: int, *, max_age_days: int | None = None,
               now: datetime | None = None) -> list[DatasetVersion]:
        """The `count` newest versions, oldest first; with max_age_days, only those received since (the newest
        version is always kept, so there is something to train on)."""
        keys = sorted(self.store.list_keys(DATASET_INDEX_PREFIX))
        if not keys:
            raise NoDatasets("no dataset version has been accepted yet; upload a CSV to incoming/ first")
        if max_age_days is not None:
            cutoff = (now or datetime.now(UTC)) - timedelta(days=max_age_days)
            recent = [k for k in keys if _received(k) >= cutoff]
            keys = recent or keys[-1:]
        return [self.get(key.rsplit("_", 1)[-1]) for key in keys[-count:]]

    def get(self, version: str) -> DatasetVersion:
        try:
            return DatasetVersion(version, self.store.get_json(self.manifest_key(version)))
        except ObjectNotFound:
            raise NoDatasets(f"dataset version {version!r} does not exist") from None

    def latest(self) -> DatasetVersion:
        return self.newest(1)[-1]

    def load_columns(self, dataset: DatasetVersion) -> tuple[dict[str, list[str | None]], int]:
        """The version's rows as plain columns of text (missing as None) and their count, read without pandas (the
        monitor function runs on the serving layer); the same cells as `load`."""
        return csv_columns(self.store.get_bytes(dataset.data_key))

    def load(self, dataset: DatasetVersion, *, compact: bool = False) -> pd.DataFrame:
        """The version's rows, every column as text: the pipeline's coercion step owns type conversion, as at
        serving time.

        With compact=True (training on a large table), the CSV is streamed in chunks and held compactly: numeric
        features as float64 (read exactly as the pipeline's coercion reads them, so the model sees the same
        numbers), every other column as a pandas Categorical (one copy of each distinct text, small integer
        codes). A million rows of 30 text columns are about 30 million Python strings otherwise (GBs).
        """
        import pandas as pd  # here: the monitor function reads datasets without pandas (load_columns)
        from pandas.api.types import union_categoricals

        from loopline_runtime.schema import coerce_column

        if not compact:
            return pd.read_csv(io.BytesIO(self.store.get_bytes(dataset.data_key)), dtype=str, keep_default_na=True)
        kinds = FeatureSchema.from_dict(dataset.manifest["schema"]).features
        parts: dict[str, list[Any]] = {}
        with contextlib.closing(self.store.open(dataset.data_key)) as body:
            for chunk in pd.read_csv(body, dtype=str, keep_default_na=True, chunksize=LOAD_CHUNK_ROWS):
                for name in chunk.columns:
                    if kinds.get(name) is FeatureType.NUMERIC:
                        values: Any = coerce_column(chunk[name], FeatureType.NUMERIC).to_numpy()
                    else:
                        values = pd.Categorical(chunk[name].astype(object))
                    parts.setdefault(name, []).append(values)
        columns = {
            name: (np.concatenate(values) if kinds.get(name) is FeatureType.NUMERIC
                   else union_categoricals(values, sort_categories=True))
            for name, values in parts.items()
        }
        return pd.DataFrame(columns)


def _index_key(received: datetime, version: str) -> str:
    return f"{DATASET_INDEX_PREFIX}{key_time(received)}_{version}"


def _received(index_key: str) -> datetime:
    stamp = index_key[len(DATASET_INDEX_PREFIX):].split("_", 1)[0]
    return parse_key_time(stamp)
