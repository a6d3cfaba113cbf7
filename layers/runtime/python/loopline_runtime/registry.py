"""The model registry in S3: versioned artifacts with manifests, and a champion pointer with history.

    models/<version>/model.joblib     the fitted Pipeline
    models/<version>/manifest.json    sha256, params, metrics, dataset versions, library versions, timestamps
    models/<version>/holdout.csv      the rows the gate scores challenger and champion on
    models/<version>/evaluation.json  the gate's decision and reasons
    registry/champion.json            {version, previous_version, promoted_at, ...} (moved by the state machine)
    registry/history/<time>-<version>.json   one record per promotion
"""

from __future__ import annotations

import hashlib
import io
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn

import loopline_runtime
from loopline_runtime.errors import ArtifactIntegrityError, NoChampion
from loopline_runtime.schema import FeatureSchema
from loopline_runtime.storage import ObjectNotFound, ObjectStore

CHAMPION_KEY = "registry/champion.json"
HISTORY_PREFIX = "registry/history/"


def new_model_version(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return "m-" + now.strftime("%Y%m%dT%H%M%S") + "-" + hashlib.sha256(now.isoformat().encode()).hexdigest()[:6]


def library_versions() -> dict[str, str]:
    """What a model was trained with; serving must load it with the same scikit-learn."""
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
        "loopline_runtime": loopline_runtime.__version__,
    }


@dataclass(frozen=True)
class LoadedModel:
    version: str
    pipeline: Any
    manifest: dict[str, Any]

    @cached_property
    def schema(self) -> FeatureSchema:
        """The schema the model was trained with (parsed once per loaded model, not per request)."""
        return FeatureSchema.from_dict(self.manifest["schema"])


class ModelRegistry:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @staticmethod
    def prefix(version: str) -> str:
        return f"models/{version}/"

    def register(self, version: str, pipeline: Any, manifest: dict[str, Any]) -> dict[str, Any]:
        """Persist a fitted pipeline and its manifest (artifact first, so a manifest never points at nothing)."""
        buffer = io.BytesIO()
        joblib.dump(pipeline, buffer, compress=3)
        artifact = buffer.getvalue()
        key = self.prefix(version) + "model.joblib"
        self.store.put_bytes(key, artifact)
        manifest = {
            **manifest,
            "version": version,
            "artifact": {"key": key, "sha256": hashlib.sha256(artifact).hexdigest(), "bytes": len(artifact)},
            "libraries": library_versions(),
            "registered_at": datetime.now(UTC).isoformat(),
        }
        self.store.put_json(self.prefix(version) + "manifest.json", manifest, create_only=True)
        return manifest

    def manifest(self, version: str) -> dict[str, Any]:
        try:
            return self.store.get_json(self.prefix(version) + "manifest.json")
        except ObjectNotFound:
            raise NoChampion(f"model version {version!r} is not in the registry") from None

    def load(self, version: str) -> LoadedModel:
        """Load a model after checking its bytes against the manifest's sha256 (never unpickle unverified bytes)."""
        manifest = self.manifest(version)
        artifact = self.store.get_bytes(manifest["artifact"]["key"])
        digest = hashlib.sha256(artifact).hexdigest()
        if digest != manifest["artifact"]["sha256"]:
            raise ArtifactIntegrityError(
                f"model {version} artifact sha256 {digest[:12]}… does not match its manifest "
                f"({manifest['artifact']['sha256'][:12]}…); refusing to load it"
            )
        trained_with = manifest.get("libraries", {}).get("scikit-learn")
        if trained_with and trained_with != sklearn.__version__:
            raise ArtifactIntegrityError(
                f"model {version} was trained with scikit-learn {trained_with} but this runtime has "
                f"{sklearn.__version__}; retrain it or deploy the matching dependency layer"
            )
        return LoadedModel(version, joblib.load(io.BytesIO(artifact)), manifest)

    def champion_pointer(self) -> dict[str, Any] | None:
        try:
            return self.store.get_json(CHAMPION_KEY)
        except ObjectNotFound:
            return None

    def champion_version(self) -> str | None:
        pointer = self.champion_pointer()
        return pointer["version"] if pointer else None

    def history(self) -> list[dict[str, Any]]:
        """Promotions, oldest first."""
        return [self.store.get_json(key) for key in sorted(self.store.list_keys(HISTORY_PREFIX))]
