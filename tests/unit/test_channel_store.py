"""ChannelStore: a training job's dataset versions read from its input channel folders, read-only; every other key
goes to S3 (a recording stand-in for the S3 client here)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from loopline_runtime.channel_store import ChannelStore
from loopline_runtime.datasets import DatasetCatalog
from loopline_runtime.errors import NoDatasets
from loopline_runtime.storage import ObjectStore

SCHEMA = {"target": "y", "task": "classification", "features": {"x": "numeric"}}


class RecordingS3:
    """The calls that reach S3, and one object (models/m/manifest.json) to read."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def get_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:  # boto3's names
        self.calls.append(("get_object", Key))
        return {"Body": io.BytesIO(b'{"version": "m"}')}

    def put_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self.calls.append(("put_object", Key))
        return {"ETag": '"e"'}


def _channel(data: Path, version: str, received: str, rows: str) -> None:
    (data / version).mkdir(parents=True)
    (data / version / "data.csv").write_text(rows)
    (data / version / "manifest.json").write_text(json.dumps(
        {"version": version, "received_at": received, "rows": rows.count("\n") - 1, "schema": SCHEMA}))


@pytest.fixture
def channels(tmp_path: Path) -> tuple[ChannelStore, RecordingS3]:
    s3 = RecordingS3()
    _channel(tmp_path, "ds-new", "2026-12-05T10:00:00+00:00", "x,y\n3,1\n")
    _channel(tmp_path, "ds-old", "2026-12-01T10:00:00+00:00", "x,y\n1,0\n2,1\n")
    return ChannelStore(ObjectStore("artifacts", s3), tmp_path), s3  # type: ignore[arg-type]


def test_the_catalog_reads_exactly_the_channels_from_their_files(channels):
    store, s3 = channels
    catalog = DatasetCatalog(store)

    # the window is the channels, oldest first by their manifests' arrival, and the rows are the files'
    datasets = catalog.newest(5)
    assert [d.version for d in datasets] == ["ds-old", "ds-new"]
    assert catalog.load(datasets[0], compact=True)["x"].tolist() == [1.0, 2.0]
    assert store.bytes_read[str(store.data_dir / "ds-old" / "data.csv")] == len("x,y\n1,0\n2,1\n")
    assert s3.calls == []  # nothing under datasets/ came from S3

    # a version that is not a channel is not there, even if S3 holds it
    with pytest.raises(NoDatasets, match="ds-other"):
        catalog.get("ds-other")
    assert s3.calls == []


def test_channels_are_read_only_and_every_other_key_goes_to_s3(channels):
    store, s3 = channels
    with pytest.raises(PermissionError, match="input channels are read-only"):
        store.put_json("datasets/ds-new/manifest.json", {})
    store.put_json("models/m/result.json", {"ok": True})
    assert store.get_json("models/m/manifest.json") == {"version": "m"}
    assert s3.calls == [("put_object", "models/m/result.json"), ("get_object", "models/m/manifest.json")]
