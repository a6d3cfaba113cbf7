"""The model registry in S3: versioned artifacts with manifests, and a champion pointer with history.

    models/<version>/model.joblib     the fitted Pipeline (training; the gate scores it only if it did not compile)
    models/<version>/model.onnx       the same Pipeline compiled (what serves, and what the gate and monitoring score)
                                      (a model whose candidate chose `serving: scikit-learn` serves model.joblib:
                                      its pins' "compiled" entry then names that artifact, see sklearn_serving)
    models/<version>/manifest.json    sha256, params, metrics, dataset versions, library versions, timestamps
    models/<version>/holdout.csv      the rows the gate scores challenger and champion on
    models/<version>/evaluation.json  the gate's decision and reasons
    registry/champion.json            {version, previous_version, promoted_at, pins, ...} (moved by
                                      `ModelRegistry.promote` only if it still has the ETag the gate compared against;
                                      `pins`: the manifest's and the compiled artifact's S3 VersionId and sha256 as
                                      the gate saw them; every champion loader reads exactly those and checks them)
    registry/history/<time>-<version>.json   one record per promotion
    models/_trained/<fingerprint>     a challenger registered for that training data (train step)
    models/_fingerprints/<fingerprint>  the gate decided on it: "already trained on this data" (gate step)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from typing import TYPE_CHECKING, Any

import loopline_runtime
from loopline_runtime.bucket_layout import CHAMPION_KEY, HISTORY_PREFIX, MEASURED_FOLDER, model_prefix
from loopline_runtime.errors import ArtifactIntegrityError, ChampionChanged, ModelNotCompiled, NoChampion
from loopline_runtime.feature_schema import FeatureSchema
from loopline_runtime.storage import ObjectChanged, ObjectExists, ObjectNotFound, ObjectStore

if TYPE_CHECKING:
    from loopline_runtime.compiled_model import CompiledModel

MODEL_ARTIFACT = "model.joblib"  # next to the model's manifest, under bucket_layout.model_prefix(version)
COMPILED_ARTIFACT = "model.onnx"
SCIKIT_LEARN_FORM = "scikit-learn"


def serves_scikit_learn(manifest: dict[str, Any]) -> bool:
    """The config chose the scikit-learn serving form for this model's candidate (`serving: scikit-learn`): what
    serves, and what the pins name as the served artifact, is the joblib artifact, not an ONNX graph."""
    return manifest.get("serving_form") == SCIKIT_LEARN_FORM


def _served_artifact(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest's record of the artifact that serves (key, sha256, bytes, version_id), if there is one."""
    if serves_scikit_learn(manifest):
        return manifest.get("artifact")
    return (manifest.get("compiled") or {}).get("artifact")


def _graph(version: str, manifest: dict[str, Any], served: bytes) -> Any:
    from loopline_runtime.compiled_model import CompiledGraph

    if serves_scikit_learn(manifest):
        from loopline_runtime.sklearn_serving import load_scikit_learn_graph

        return load_scikit_learn_graph(version, manifest, served)
    return CompiledGraph(served)

def new_model_version(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return "m-" + now.strftime("%Y%m%dT%H%M%S") + "-" + hashlib.sha256(now.isoformat().encode()).hexdigest()[:6]


def library_versions() -> dict[str, str]:
    """What a model was trained with; serving must load it with the same scikit-learn."""
    versions = {"python": platform.python_version()}
    for name in ("scikit-learn", "pandas", "numpy", "joblib"):
        try:
            versions[name] = installed_version(name)
        except PackageNotFoundError:  # not in this function's layers
            continue
    versions["loopline_runtime"] = loopline_runtime.__version__
    return versions


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
        return model_prefix(version)

    def register(self, version: str, pipeline: Any, manifest: dict[str, Any], *,
                 compiled: bytes | None = None) -> dict[str, Any]:
        """Persist a fitted pipeline, its compiled form when there is one, and its manifest (artifacts first, so
        a manifest never points at nothing). `manifest["compiled"]` (the compilation record) gets the artifact."""
        import joblib  # training side only (see the note at the top)

        buffer = io.BytesIO()
        joblib.dump(pipeline, buffer, compress=3)
        artifact = buffer.getvalue()
        key = self.prefix(version) + MODEL_ARTIFACT
        artifact_version = self.store.put_version(key, artifact)
        if compiled is not None:
            compiled_key = self.prefix(version) + COMPILED_ARTIFACT
            compiled_version = self.store.put_version(compiled_key, compiled)
            manifest = {**manifest, "compiled": {**manifest.get("compiled", {}), "artifact": {
                "key": compiled_key, "sha256": hashlib.sha256(compiled).hexdigest(), "bytes": len(compiled),
                "version_id": compiled_version}}}
        manifest = {
            **manifest,
            "version": version,
            "artifact": {"key": key, "sha256": hashlib.sha256(artifact).hexdigest(), "bytes": len(artifact),
                         "version_id": artifact_version},
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
        """Load the scikit-learn model after checking its bytes against the manifest's sha256 (never unpickle
        unverified bytes). Training side only: serving, the gate's scores and monitoring use `load_compiled`."""
        import joblib
        import sklearn

        manifest = self.manifest(version)
        artifact = self._verified_bytes(version, manifest["artifact"])
        trained_with = manifest.get("libraries", {}).get("scikit-learn")
        if trained_with and trained_with != sklearn.__version__:
            raise ArtifactIntegrityError(
                f"model {version} was trained with scikit-learn {trained_with} but this runtime has "
                f"{sklearn.__version__}; retrain it or deploy the matching dependency layer"
            )
        from loopline_runtime.model_code import load_recorded_code

        load_recorded_code(version, manifest.get("code"))  # the classes the pickle names, as trained
        return LoadedModel(version, joblib.load(io.BytesIO(artifact)), manifest)

    def load_compiled(self, version: str) -> CompiledModel:
        """Load the compiled (ONNX) model after checking its bytes against the manifest's sha256. No pickle."""
        from loopline_runtime.compiled_model import CompiledModel

        manifest = self.manifest(version)
        served = _served_artifact(manifest)
        if served is None:
            reason = (manifest.get("compiled") or {}).get("error") or "it was registered before models were compiled"
            raise ModelNotCompiled(f"model {version} has no compiled (ONNX) form: {reason}")
        return CompiledModel(version, manifest, _graph(version, manifest, self._verified_bytes(version, served)))

    def verify(self, version: str) -> dict[str, Any]:
        """Check every artifact of a model against its manifest's sha256 without loading any; the manifest."""
        manifest = self.manifest(version)
        self._verified_bytes(version, manifest["artifact"])
        compiled = manifest.get("compiled") or {}
        if "artifact" in compiled:
            self._verified_bytes(version, compiled["artifact"])
        return manifest

    def pins(self, version: str) -> dict[str, dict[str, Any]]:
        """What a promotion pins: the manifest and the compiled artifact exactly as stored now (S3 VersionId and
        sha256), the artifact checked against the manifest. A rollback's verification calls this; the promotion
        writes it into the champion pointer.

        Raises:
            NoChampion: the version is not registered.
            ModelNotCompiled: it has no compiled form, so it cannot serve.
            ArtifactIntegrityError: the compiled artifact does not match the manifest.
        """
        return self._read_for_promotion(version)[0]

    def load_for_promotion(self, version: str) -> tuple[CompiledModel, dict[str, dict[str, Any]]]:
        """The compiled model as stored now and its pins, each object read once: what the gate scores is exactly
        what its promotion pins. Raises as `pins`."""
        from loopline_runtime.compiled_model import CompiledModel

        pins, manifest, graph_bytes = self._read_for_promotion(version)
        return CompiledModel(version, manifest, _graph(version, manifest, graph_bytes)), pins

    def _read_for_promotion(self, version: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any], bytes]:
        key = self.prefix(version) + "manifest.json"
        try:
            body, manifest_version = self.store.get_version(key)
        except ObjectNotFound:
            raise NoChampion(f"model version {version!r} is not in the registry") from None
        manifest = json.loads(body)
        compiled = _served_artifact(manifest)
        if not compiled:
            reason = (manifest.get("compiled") or {}).get("error") or "it was registered before models were compiled"
            raise ModelNotCompiled(f"model {version} has no compiled (ONNX) form: {reason}")
        graph_bytes, found = self._checked_bytes(version, compiled, "its manifest")
        pins = {
            "manifest": {"key": key, "version_id": manifest_version, "sha256": hashlib.sha256(body).hexdigest()},
            "compiled": {"key": compiled["key"], "version_id": found, "sha256": compiled["sha256"]},
        }
        return pins, manifest, graph_bytes

    def load_pinned(self, version: str, pins: dict[str, dict[str, Any]]) -> CompiledModel:
        """The compiled model exactly as `pins` name it: the pinned S3 versions of manifest and artifact, each
        checked against the pinned sha256, never against a file that sits next to the artifact. No pickle."""
        from loopline_runtime.compiled_model import CompiledModel

        manifest, graph_bytes = self._pinned(version, pins)
        return CompiledModel(version, manifest, _graph(version, manifest, graph_bytes))

    def load_champion(self, pointer: dict[str, Any]) -> CompiledModel:
        """The model the champion pointer names, by its pins. A pointer without pins is refused."""
        return self.load_pinned(str(pointer["version"]), _pins_of(pointer))

    def champion_manifest(self, pointer: dict[str, Any]) -> dict[str, Any]:
        """The champion's manifest, with both pinned objects checked as `load_champion` checks them, without
        building an onnxruntime session (for a caller that needs the schema, not the model)."""
        return self._pinned(str(pointer["version"]), _pins_of(pointer))[0]

    def _pinned(self, version: str, pins: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], bytes]:
        """Both pinned objects, checked; the pins must name exactly models/<version>/manifest.json and the
        compiled artifact that manifest records (key and sha256): a pin elsewhere is refused before any read."""
        manifest_key = self.prefix(version) + "manifest.json"
        if pins["manifest"].get("key") != manifest_key:
            raise ArtifactIntegrityError(
                f"the pins of model {version} name manifest {pins['manifest'].get('key')!r}, not {manifest_key}; "
                "refusing to load it")
        manifest_bytes, _ = self._checked_bytes(version, pins["manifest"], "the pinned")
        manifest = json.loads(manifest_bytes)
        recorded = _served_artifact(manifest) or {}
        compiled_key = self.prefix(version) + (MODEL_ARTIFACT if serves_scikit_learn(manifest) else COMPILED_ARTIFACT)
        pinned = pins["compiled"]
        if (manifest.get("version") != version or recorded.get("key") != compiled_key
                or pinned.get("key") != compiled_key or pinned.get("sha256") != recorded.get("sha256")):
            raise ArtifactIntegrityError(
                f"the pins of model {version} name artifact {pins['compiled'].get('key')!r}, not the {compiled_key} "
                "its pinned manifest records; refusing to load it")
        graph_bytes, _ = self._checked_bytes(version, pins["compiled"], "the pinned")
        return manifest, graph_bytes

    def _checked_bytes(self, version: str, expected: dict[str, Any], against: str) -> tuple[bytes, str | None]:
        """The bytes of the S3 version `expected` names (the current object when it names none, or the bucket is
        not versioned) and that version's id, checked against `expected["sha256"]`; `against` says whose hash
        that is in the error ("its manifest", "the pinned")."""
        name = expected["key"].rsplit("/", 1)[-1]
        try:
            data, found = self.store.get_version(expected["key"], expected.get("version_id"))
        except ObjectNotFound:
            raise ArtifactIntegrityError(
                f"model {version} artifact {name} does not match {against}: the registered S3 version is not "
                "there; refusing to load it"
            ) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected["sha256"]:
            raise ArtifactIntegrityError(
                f"model {version} artifact sha256 {digest[:12]}… does not match {against} "
                f"({expected['sha256'][:12]}…) for {name}; refusing to load it"
            )
        return data, found

    def _verified_bytes(self, version: str, artifact: dict[str, Any]) -> bytes:
        return self._checked_bytes(version, artifact, "its manifest")[0]

    def champion_pointer(self) -> dict[str, Any] | None:
        try:
            return self.store.get_json(CHAMPION_KEY)
        except ObjectNotFound:
            return None

    def breached_versions(self, champion_version: str) -> list[str]:
        """The dataset versions measured on `champion_version` (so since its promotion) that breached the alarm,
        oldest marker first (models/<champion>/measured/<batch>.json, written by monitoring)."""
        versions = []
        for key in sorted(self.store.list_keys(self.prefix(champion_version) + MEASURED_FOLDER)):
            marker = self.store.get_json(key)
            if marker.get("alarm_breached"):
                versions.append(str(marker["dataset_version"]))
        return versions

    def champion_pointer_and_etag(self) -> tuple[dict[str, Any] | None, str | None]:
        """The pointer and the ETag of exactly that content (None, None without a champion)."""
        try:
            return self.store.get_json_with_etag(CHAMPION_KEY)
        except ObjectNotFound:
            return None, None

    def promote(self, record: dict[str, Any], *, expected_etag: str | None) -> dict[str, Any]:
        """Move the champion pointer to `record["version"]`, then append the promotion to the history.

        The pointer is written only if it still has `expected_etag`, the ETag the gate compared the challenger
        against (If-Match; If-None-Match: * when there was no champion). A retry after the pointer moved to this
        very version finishes the history record. Raises ChampionChanged when another promotion got there first.
        """
        version = record["version"]
        pins = record.get("pins")
        if not isinstance(pins, dict) or not {"manifest", "compiled"} <= pins.keys():
            raise ArtifactIntegrityError(f"the promotion of {version} pins no verified artifacts; it is not written")
        try:
            if expected_etag is None:
                self.store.put_json(CHAMPION_KEY, record, create_only=True)
            else:
                self.store.put_json(CHAMPION_KEY, record, if_match=expected_etag)
        except (ObjectExists, ObjectChanged):
            current = self.champion_pointer()
            if current is None or current.get("version") != version:
                raise ChampionChanged(
                    f"the champion changed during evaluation (now {current and current.get('version')}, compared "
                    f"against {record.get('previous_version')}); challenger {version} is not promoted"
                ) from None
        with contextlib.suppress(ObjectExists):  # a retry already wrote it
            self.store.put_json(f"{HISTORY_PREFIX}{record['promoted_at']}-{version}.json", record, create_only=True)
        return record

    def champion_version(self) -> str | None:
        pointer = self.champion_pointer()
        return pointer["version"] if pointer else None

    def history(self) -> list[dict[str, Any]]:
        """Promotions, oldest first."""
        return [self.store.get_json(key) for key in sorted(self.store.list_keys(HISTORY_PREFIX))]


def _pins_of(pointer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The pins a champion pointer records; a pointer without them is refused."""
    pins = pointer.get("pins")
    if not isinstance(pins, dict) or not {"manifest", "compiled"} <= pins.keys():
        raise ArtifactIntegrityError(
            f"the champion pointer names {pointer.get('version')} without pinned artifacts; promote it again "
            "(loopline rollback --to VERSION) so the pointer records what was verified"
        )
    return pins
