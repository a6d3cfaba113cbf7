"""A training job's dataset versions read from its input channels instead of S3.

SageMaker puts each channel's objects under /opt/ml/input/data/<channel>/ (the plan step names one channel per
dataset version: datasets/<version>/ becomes <data>/<version>/). `ChannelStore` answers the dataset keys
`DatasetCatalog` asks for (the index, manifests, data.csv) from those files, read-only, and sends every other key
(models/ writes, registry/ reads) to S3, so `train_challenger` runs unchanged on the channels.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from loopline_runtime.bucket_layout import DATASET_INDEX_PREFIX, DATASETS_PREFIX, key_time
from loopline_runtime.storage import ObjectNotFound, ObjectStore


class ChannelStore(ObjectStore):
    """The artifact bucket, with `datasets/` served from the job's channel folders (and only from them)."""

    def __init__(self, store: ObjectStore, data_dir: Path) -> None:
        super().__init__(store.bucket, store.client)
        self.data_dir = data_dir
        self.channels = sorted(p.name for p in data_dir.iterdir() if p.is_dir()) if data_dir.is_dir() else []
        self.bytes_read: dict[str, int] = {}  # path -> bytes handed out (what the job read, for its result)

    def _path(self, key: str) -> Path | None:
        """The channel file of a dataset key, or None for a key outside datasets/."""
        if not key.startswith(DATASETS_PREFIX):
            return None
        version, _, rest = key[len(DATASETS_PREFIX):].partition("/")
        path = self.data_dir / version / rest
        if version not in self.channels or not rest or not path.is_file():
            raise ObjectNotFound(key)  # the job trains on its channels: a version outside them is not there
        return path

    def _read(self, path: Path) -> BinaryIO:
        self.bytes_read[str(path)] = self.bytes_read.get(str(path), 0) + path.stat().st_size
        return path.open("rb")

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if path is None:
            return super().get_bytes(key)
        with self._read(path) as body:
            return body.read()

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        path = self._path(key)
        return super().open(key, version_id) if path is None else self._read(path)

    def size(self, key: str) -> int:
        path = self._path(key)
        return super().size(key) if path is None else path.stat().st_size

    def etag(self, key: str) -> str | None:
        try:
            path = self._path(key)
        except ObjectNotFound:
            return None
        if path is None:
            return super().etag(key)
        stat = path.stat()
        return '"' + hashlib.md5(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode(), usedforsecurity=False
                                 ).hexdigest() + '"'

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Under datasets/: the channels' files, and the index entries their manifests' arrival times make."""
        if not prefix.startswith(DATASETS_PREFIX):
            yield from super().list_keys(prefix)
            return
        keys = []
        for version in self.channels:
            manifest = self.data_dir / version / "manifest.json"
            if manifest.is_file():
                received = datetime.fromisoformat(json.loads(manifest.read_text())["received_at"])
                keys.append(f"{DATASET_INDEX_PREFIX}{key_time(received)}_{version}")
            for root, _, files in os.walk(self.data_dir / version):
                for name in files:
                    relative = (Path(root) / name).relative_to(self.data_dir / version).as_posix()
                    keys.append(f"{DATASETS_PREFIX}{version}/{relative}")
        yield from sorted(k for k in keys if k.startswith(prefix))

    def _refuse(self, key: str) -> None:
        if key.startswith(DATASETS_PREFIX):
            raise PermissionError(f"{key}: a training job's input channels are read-only")

    def put_bytes(self, key: str, body: bytes, **kwargs: Any) -> str:
        self._refuse(key)
        return super().put_bytes(key, body, **kwargs)

    def put_version(self, key: str, body: bytes, **kwargs: Any) -> str | None:
        self._refuse(key)
        return super().put_version(key, body, **kwargs)

    def put_file(self, key: str, path: str | os.PathLike[str], **kwargs: Any) -> None:
        self._refuse(key)
        super().put_file(key, path, **kwargs)
