"""What a report shows, read from the artifact bucket as the functions recorded it.

`ObjectStore(stack.bucket, stack.s3)` reads a deployed stack's bucket; tests pass the bucket of a moto stack."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loopline_runtime.bucket_layout import (
    CHAMPION_KEY,
    HISTORY_PREFIX,
    MODELS_PREFIX,
    MONITORING_PREFIX,
    key_time,
    model_prefix,
)
from loopline_runtime.errors import NoChampion, UnknownModelVersion
from loopline_runtime.orchestration import REGIME_REASONS
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
    # the training run the alarm started after this measurement, and what came of it (None: none on record yet)
    retraining: dict[str, Any] | None = None


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
    retraining = retraining_after(store, run) if run.get("alarm_breached") else None
    return MonitoringReportInputs(key, run, [*recent, run], manifest, retraining)


def retraining_after(store: ObjectStore, run: dict[str, Any]) -> dict[str, Any] | None:
    """The first challenger trained by the alarm after this measurement (its manifest's trigger says so), and its
    outcome: promoted (a promotion record names it), awaiting approval, rejected (with the gate's reasons), or
    not yet gated."""
    measured = str(run.get("measured_at", ""))
    if not measured:
        return None
    stamp = "m-" + key_time(datetime.fromisoformat(measured))[:15]  # model versions are m-<UTC second>-<hash>
    versions = sorted({key[len(MODELS_PREFIX):].split("/", 1)[0] for key in store.list_keys(MODELS_PREFIX)
                       if key.endswith("/manifest.json")})
    for version in (v for v in versions if v.startswith("m-") and v >= stamp):
        manifest = _json_or_none(store, model_prefix(version) + "manifest.json") or {}
        reason = (manifest.get("trigger") or {}).get("reason")
        if reason not in REGIME_REASONS:
            continue
        evaluation = _json_or_none(store, model_prefix(version) + "evaluation.json")
        promoted = any(record.get("version") == version
                       for record in (store.get_json(k) for k in store.list_keys(HISTORY_PREFIX)))
        if evaluation is None:
            outcome = "trained, not gated yet"
        elif promoted:
            outcome = "promoted"
        elif evaluation.get("promote") and evaluation.get("approval_required"):
            outcome = "passed the gate, awaiting approval"
        else:
            outcome = "rejected"
        return {"version": version, "reason": reason, "execution_arn": (manifest.get("trigger") or {}).get(
            "execution_arn"), "outcome": outcome, "reasons": (evaluation or {}).get("reasons", []),
            "regime": (evaluation or {}).get("regime")}
    return None


def alarm_distance_text(run: dict[str, Any]) -> str:
    """The measurement's distance to the alarm line, in words (the report's and `loopline status`'s)."""
    distance = run.get("distance_to_alarm")
    if distance is None:
        return ""
    if distance < 0:
        return f"{-distance:.4f} past the alarm line"
    return f"{distance:.4f} from the alarm line"


def _json_or_none(store: ObjectStore, key: str) -> Any:
    try:
        return store.get_json(key)
    except ObjectNotFound:
        return None
