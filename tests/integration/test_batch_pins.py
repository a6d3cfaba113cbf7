"""Batch scoring's pins travel only through the state machine: a run.json that a bucket writer replaced, naming a
foreign ONNX graph, never scores a chunk, in that run or in a later one of the same warm worker."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import boto3
import pandas as pd
import pytest

from loopline_runtime.batch_layout import chunk_prefix, run_prefix
from loopline_runtime.bucket_layout import BATCH_INCOMING_PREFIX, model_prefix
from loopline_runtime.errors import ArtifactIntegrityError
from loopline_runtime.registry import COMPILED_ARTIFACT, ModelRegistry
from loopline_runtime.serving import predict_records
from loopline_runtime.storage import ObjectStore
from tests.support.asl import resolve
from tests.support.stack import Stack


@pytest.fixture
def flipped_pipeline(fitted_champion: tuple[Any, dict[str, Any]], breast_cancer: pd.DataFrame, config: Any) -> Any:
    """The champion's pipeline refitted on inverted labels: every prediction it makes differs from the champion's."""
    from sklearn.base import clone

    pipeline, manifest = fitted_champion
    rows = breast_cancer.iloc[:200].astype(str)
    features = list(manifest["schema"]["features"])
    labels = sorted(rows[config.target].unique())
    flipped = rows[config.target].map(dict(zip(labels, reversed(labels), strict=True)))
    return clone(pipeline).fit(rows[features], flipped)


def _item_event(definition: dict[str, Any], state: dict[str, Any], chunk_key: str) -> dict[str, Any]:
    """The event a Distributed Map child of the batch state machine gets: its ItemSelector applied to `state`."""
    return resolve(definition["States"]["Score chunks"]["ItemSelector"], state,
                   {"Map": {"Item": {"Value": {"Key": chunk_key}}}})


def _split(app: ModuleType, store: ObjectStore, rows: pd.DataFrame, run_id: str, context: Any) -> dict[str, Any]:
    key = f"{BATCH_INCOMING_PREFIX}{run_id}.csv"
    store.put_bytes(key, rows.to_csv(index=False).encode("utf-8"))
    return app.lambda_handler({"action": "split", "source_key": key, "run_id": run_id}, context)


def _predictions(store: ObjectStore, run_id: str) -> list[str]:
    (key,) = store.list_keys(f"{run_prefix(run_id)}scored/")
    return [str(p) for p in pd.read_csv(io.BytesIO(store.get_bytes(key)), dtype=str)["prediction"]]


def test_a_forged_run_json_naming_a_foreign_onnx_never_scores_this_or_a_later_run(
    aws_stack: Stack, store: ObjectStore, registry: ModelRegistry, register_model: Callable[..., str],
    promote: Callable[[str], Any], load_handler: Callable[[str], ModuleType], lambda_context: Any,
    breast_cancer: pd.DataFrame, flipped_pipeline: Any, config: Any,
) -> None:
    # given a champion, two batch runs split by the batch function, and a foreign ONNX graph (the champion
    # refitted on inverted labels) that a bucket writer put under batch/incoming/ and pinned in run A's run.json
    promote(register_model())
    app = load_handler("batch")
    definition = json.loads(aws_stack.state_machine_definition("BatchScoringStateMachine"))
    rows = breast_cancer.drop(columns=[config.target]).head(20)
    state_a = {"run": _split(app, store, rows, "run-a", lambda_context)}
    state_b = {"run": _split(app, store, rows, "run-b", lambda_context)}
    foreign = store.get_bytes(model_prefix(register_model(flipped_pipeline)) + COMPILED_ARTIFACT)
    foreign_key = f"{BATCH_INCOMING_PREFIX}model.onnx"
    foreign_version = boto3.client("s3").put_object(Bucket=aws_stack.bucket, Key=foreign_key, Body=foreign)
    forged = store.get_json(f"{run_prefix('run-a')}run.json")
    forged["pins"]["compiled"] = {"key": foreign_key, "version_id": foreign_version.get("VersionId"),
                                  "sha256": hashlib.sha256(foreign).hexdigest()}
    store.put_json(f"{run_prefix('run-a')}run.json", forged)

    # when each run's chunk is scored in the same warm worker, with the events the state machine passes on
    for run_id, state in (("run-a", state_a), ("run-b", state_b)):
        (chunk_key,) = store.list_keys(chunk_prefix(run_id))
        app.lambda_handler(_item_event(definition, state, chunk_key), lambda_context)

    # then both runs are scored by the champion: the forged pins were never read
    champion = registry.load_champion(registry.champion_pointer() or {})
    expected = [str(p) for p in predict_records(champion, rows.astype(object).to_dict(orient="records"),
                                                 max_records=len(rows))["predictions"]]
    assert _predictions(store, "run-a") == expected
    assert _predictions(store, "run-b") == expected


def test_pins_that_name_anything_but_the_versions_own_manifest_and_artifact_are_refused(
    aws_stack: Stack, store: ObjectStore, registry: ModelRegistry, register_model: Callable[..., str],
    flipped_pipeline: Any,
) -> None:
    # given a registered version and a foreign graph copied under batch/incoming/, pinned by its true sha256
    version = register_model()
    pins = registry.pins(version)
    foreign = store.get_bytes(model_prefix(register_model(flipped_pipeline)) + COMPILED_ARTIFACT)
    foreign_key = f"{BATCH_INCOMING_PREFIX}model.onnx"
    store.put_bytes(foreign_key, foreign)
    foreign_pin = {"key": foreign_key, "version_id": None, "sha256": hashlib.sha256(foreign).hexdigest()}

    # when / then loading by pins whose artifact or manifest lies outside models/<version>/ is refused
    with pytest.raises(ArtifactIntegrityError, match="pins"):
        registry.load_pinned(version, {**pins, "compiled": foreign_pin})
    with pytest.raises(ArtifactIntegrityError, match="pins"):
        registry.load_pinned(version, {**pins, "manifest": {**pins["manifest"], "key": foreign_key}})
    # and the version's own pins still load
    assert registry.load_pinned(version, pins).version == version
