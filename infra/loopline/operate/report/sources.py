"""What a report shows, read from the artifact bucket as the functions recorded it.

`ObjectStore(stack.bucket, stack.s3)` reads a deployed stack's bucket; tests pass the bucket of a moto stack."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopline_runtime.bucket_layout import CHAMPION_KEY, HISTORY_PREFIX, MONITORING_PREFIX, model_prefix
from loopline_runtime.errors import NoChampion, UnknownModelVersion
from loopline_runtime.report_numbers import REPORT_FILE
from loopline_runtime.storage import ObjectNotFound, ObjectStore

RECENT_RUNS = 20


@dataclass
class ModelReportInputs:
    version: str
    manifest: dict[str, Any]
    evaluation: dict[str, Any] | None
    numbers: dict[str, Any] | None
    pointer: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)  # promotion records naming this version


@dataclass
class MonitoringReportInputs:
    key: str
    run: dict[str, Any]
    recent_runs: list[dict[str, Any]]  # this champion's runs up to this one, oldest first (this one included)
    champion_manifest: dict[str, Any] | None


def model_inputs(store: ObjectStore, version: str | None) -> ModelReportInputs:
    """The recorded facts of `version` (None: the champion)."""
    pointer = _json_or_none(store, CHAMPION_KEY)
    if version is None:
        if pointer is None:
            raise NoChampion("no champion yet; name a model version (`loopline models` lists them)")
        version = str(pointer["version"])
    prefix = model_prefix(version)
    manifest = _json_or_none(store, prefix + "manifest.json")
    if manifest is None:
        raise UnknownModelVersion(f"model version {version!r} is not in the registry; `loopline models` lists them")
    history = [record for record in (store.get_json(k) for k in sorted(store.list_keys(HISTORY_PREFIX)))
               if version in (record.get("version"), record.get("previous_version"))]
    return ModelReportInputs(version, manifest, _json_or_none(store, prefix + "evaluation.json"),
                             _json_or_none(store, prefix + REPORT_FILE), pointer, history)


def monitoring_inputs(store: ObjectStore, key: str | None) -> MonitoringReportInputs:
    """A monitoring run (None: the latest) with the runs before it that measured the same champion."""
    keys = sorted(store.list_keys(MONITORING_PREFIX))
    if not keys:
        raise NoChampion("no monitoring run yet: a labeled upload while a champion serves is measured")
    key = key or keys[-1]
    if key not in keys:
        raise UnknownModelVersion(f"no monitoring run {key!r}; the latest is {keys[-1]}")
    run = store.get_json(key)
    earlier = [store.get_json(k) for k in keys[max(0, keys.index(key) - 4 * RECENT_RUNS):keys.index(key)]]
    recent = [r for r in earlier if r.get("champion_version") == run["champion_version"]][-(RECENT_RUNS - 1):]
    manifest = _json_or_none(store, model_prefix(run["champion_version"]) + "manifest.json")
    return MonitoringReportInputs(key, run, [*recent, run], manifest)


def _json_or_none(store: ObjectStore, key: str) -> Any:
    try:
        return store.get_json(key)
    except ObjectNotFound:
        return None
