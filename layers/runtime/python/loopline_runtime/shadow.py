"""Shadow: a challenger that passed the gate proves itself on live labeled traffic before it serves (gate.shadow).

    start      the training execution writes registry/shadow.json (the gate's pins, status `active`) and gives up
               the training lease; the predict function then scores every request with the champion and the
               shadow, returns the champion's answer and captures both
    evidence   when late labels are joined, each joined prediction the shadow also answered is kept with its label
               and both answers (labels/shadow/<version>/<run>.jsonl, written by the ingest function)
    check      every gate.shadow.check_seconds the waiting execution counts those rows: with at least
               gate.shadow.min_rows (answered by the champion the gate compared against), both are scored with the
               gate's metric on exactly those rows, and the shadow is promoted when it beats the champion (with
               gate.shadow.tolerance > 0: when it is not worse by more than that), else rejected; with fewer rows
               at gate.shadow.max_days, rejected
    by hand    `loopline promote-now` / `loopline reject` end it at once, recorded with who did it

Each decision goes to the challenger's evaluation.json (`shadow`: both live scores, the rows, who decided, why) and
to registry/shadow.json (status `promoted` / `rejected`: the predict function stops scoring it). A newer challenger
that passes the gate while a shadow runs replaces it (the earlier one is rejected as superseded at its next check).
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from loopline_runtime.bucket_layout import LABELS_SHADOW_PREFIX, SHADOW_KEY
from loopline_runtime.config import PipelineConfig
from loopline_runtime.errors import InvalidRequest, PromotionRefused
from loopline_runtime.feature_schema import Task
from loopline_runtime.metrics import at_least_as_good, beats, score
from loopline_runtime.orchestration import release_training_lease
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.storage import ObjectNotFound

ACTIVE = "active"
PROMOTE, REJECT = "promote", "reject"


def _evaluation_key(registry: ModelRegistry, version: str) -> str:
    return registry.prefix(version) + "evaluation.json"


def shadow_pointer(registry: ModelRegistry) -> dict[str, Any] | None:
    try:
        pointer: dict[str, Any] = registry.store.get_json(SHADOW_KEY)
    except ObjectNotFound:
        return None
    return pointer


def start_shadow(registry: ModelRegistry, config: PipelineConfig, version: str, *, execution_arn: str,
                 now: datetime | None = None) -> dict[str, Any]:
    """Put `version` in shadow with the pins its gate recorded, and release the training lease.

    Raises:
        PromotionRefused: the gate did not pass `version` (only what could be promoted may shadow), or the config
            has no gate.shadow.
    """
    settings = config.gate.shadow
    if settings is None:
        raise PromotionRefused("gate.shadow is not set in the pipeline config; nothing runs in shadow")
    evaluation: dict[str, Any] = registry.store.get_json(_evaluation_key(registry, version))
    if evaluation.get("promote") is not True or not isinstance(evaluation.get("pins"), dict):
        raise PromotionRefused(f"the gate did not pass {version}; it does not run in shadow")
    now = now or datetime.now(UTC)
    deadline = now + timedelta(days=settings.max_days)
    pointer = {
        "version": version, "status": ACTIVE, "pins": evaluation["pins"], "metric": evaluation.get("metric"),
        "champion_version": evaluation.get("champion_version"), "started_at": now.isoformat(),
        "deadline": deadline.isoformat(), "min_rows": settings.min_rows, "execution_arn": execution_arn,
    }
    registry.store.put_json(SHADOW_KEY, pointer)  # a newer challenger replaces an earlier shadow
    evaluation["shadow"] = {"status": ACTIVE, "started_at": pointer["started_at"], "deadline": pointer["deadline"],
                            "min_rows": settings.min_rows}
    registry.store.put_json(_evaluation_key(registry, version), evaluation)
    released = release_training_lease(registry.store, execution_arn, why=f"{version} runs in shadow")
    return {**pointer, "pins": None, "check_seconds": settings.check_seconds, "lease_released": released}


def live_rows(registry: ModelRegistry, version: str, champion_version: str | None) -> list[dict[str, Any]]:
    """The live labeled rows the shadow and the champion it was gated against both answered (a prediction id
    once: Firehose may deliver a capture twice, and a later labels file may correct a label: the last wins)."""
    rows: dict[str, dict[str, Any]] = {}
    for key in sorted(registry.store.list_keys(f"{LABELS_SHADOW_PREFIX}{version}/")):
        for line in registry.store.get_bytes(key).decode("utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if (row.get("shadow") or {}).get("model_version") != version:
                continue
            if champion_version is not None and (row.get("champion") or {}).get("model_version") != champion_version:
                continue  # answered by another champion (a rollback meanwhile): not the comparison the gate made
            rows[str(row.get("prediction_id"))] = row
    return list(rows.values())


def live_scores(metric: str, task: Task, rows: list[dict[str, Any]]) -> tuple[float, float]:
    """(champion, shadow) scored with `metric` on the same live labeled rows, from their captured answers."""
    if task is Task.REGRESSION:
        y_true: Any = np.array([float(row["label"]) for row in rows])
        return tuple(  # type: ignore[return-value]
            score(metric, y_true, np.array([float(row[who]["prediction"]) for row in rows]))
            for who in ("champion", "shadow"))
    y_true = np.array([str(row["label"]) for row in rows], dtype=object)
    results = []
    for who in ("champion", "shadow"):
        y_pred = np.array([str(row[who]["prediction"]) for row in rows], dtype=object)
        first = rows[0][who].get("probabilities")
        classes = sorted(first) if isinstance(first, dict) else None
        proba = None
        if classes is not None:
            proba = np.array([[float((row[who].get("probabilities") or {}).get(c, 0.0)) for c in classes]
                              for row in rows])
        results.append(score(metric, y_true, y_pred, proba, classes))
    return results[0], results[1]


def check_shadow(registry: ModelRegistry, config: PipelineConfig, version: str,
                 now: datetime | None = None) -> dict[str, Any]:
    """Decide the shadow of `version` when its live labels suffice (or its time is up); else report the count.
    Returns {"decided": bool, "promote": bool, ...}."""
    now = now or datetime.now(UTC)
    pointer = shadow_pointer(registry)
    if pointer is None or pointer.get("version") != version:
        current = pointer.get("version") if pointer else None
        return _decide(registry, config, version, None, promote=False, decided_by="shadow", now=now, reasons=[
            f"superseded in shadow by {current}, a newer challenger that passed the gate" if current else
            "its shadow pointer is gone; it is not promoted"])
    if pointer.get("status") != ACTIVE:  # decided already (a retry of this step after the decision was written)
        return _outcome(registry, version)
    task = Task(registry.manifest(version)["task"])
    rows = live_rows(registry, version, pointer.get("champion_version"))
    min_rows = int(pointer["min_rows"])
    if len(rows) >= min_rows:
        return _judge(registry, config, pointer, rows, task, decided_by="live labels", now=now)
    if now >= datetime.fromisoformat(pointer["deadline"]):
        return _decide(registry, config, version, pointer, promote=False, decided_by="shadow", now=now, rows=rows,
                       task=task, reasons=[f"only {len(rows)} of gate.shadow.min_rows {min_rows} live labeled rows "
                                           f"arrived within gate.shadow.max_days; it is not promoted"])
    return {"decided": False, "promote": False, "version": version, "rows": len(rows), "min_rows": min_rows,
            "deadline": pointer["deadline"]}


def end_shadow(registry: ModelRegistry, config: PipelineConfig, version: str, *, decision: str, by: str,
               note: str = "", now: datetime | None = None) -> dict[str, Any]:
    """A person ends the shadow of `version` at once (`loopline promote-now` / `loopline reject`)."""
    if decision not in (PROMOTE, REJECT):
        raise InvalidRequest(f"a shadow ends with {PROMOTE!r} or {REJECT!r}, not {decision!r}")
    now = now or datetime.now(UTC)
    pointer = shadow_pointer(registry)
    if pointer is None or pointer.get("version") != version or pointer.get("status") != ACTIVE:
        raise InvalidRequest(f"{version} is not in shadow")
    task = Task(registry.manifest(version)["task"])
    rows = live_rows(registry, version, pointer.get("champion_version"))
    verb = "promoted" if decision == PROMOTE else "rejected"
    reason = f"{verb} from shadow by {by}" + (f": {note}" if note else "")
    return _decide(registry, config, version, pointer, promote=decision == PROMOTE, decided_by=by, now=now,
                   rows=rows, task=task, reasons=[reason])


def _judge(registry: ModelRegistry, config: PipelineConfig, pointer: dict[str, Any], rows: list[dict[str, Any]],
           task: Task, *, decided_by: str, now: datetime) -> dict[str, Any]:
    metric = str(pointer["metric"])
    try:
        champion_score, shadow_score = live_scores(metric, task, rows)
    except (ValueError, KeyError, TypeError) as exc:
        return _decide(registry, config, pointer["version"], pointer, promote=False, decided_by=decided_by,
                       now=now, rows=rows, task=task,
                       reasons=[f"{metric} could not be computed on the {len(rows)} live labeled rows: {exc}"])
    tolerance = config.gate.shadow.tolerance if config.gate.shadow else 0.0
    comparison = (f"on {len(rows)} live labeled rows the shadow scores {shadow_score:.4f} {metric}, the champion "
                  f"{pointer.get('champion_version')} {champion_score:.4f}")
    if tolerance > 0:  # the team accepts a shadow that is not worse by more than this
        promote = at_least_as_good(metric, shadow_score, champion_score, tolerance)
        reasons = [f"{comparison}: at least as good (gate.shadow.tolerance {tolerance}), promoted" if promote
                   else f"{comparison}: worse by more than gate.shadow.tolerance {tolerance}, not promoted"]
    else:  # by default it must beat the champion: a tie on live traffic is no reason to change what serves
        promote = beats(metric, shadow_score, champion_score)
        reasons = [f"{comparison}: better, promoted" if promote
                   else f"{comparison}: not better (a tie keeps the champion; gate.shadow.tolerance accepts a "
                        "margin), not promoted"]
    return _decide(registry, config, pointer["version"], pointer, promote=promote, decided_by=decided_by, now=now,
                   rows=rows, task=task, reasons=reasons, scores=(champion_score, shadow_score))


def _decide(registry: ModelRegistry, config: PipelineConfig, version: str, pointer: dict[str, Any] | None, *,
            promote: bool, decided_by: str, now: datetime, reasons: list[str], rows: list[dict[str, Any]] | None = None,
            task: Task | None = None, scores: tuple[float, float] | None = None) -> dict[str, Any]:
    rows = rows or []
    if scores is None and rows and task is not None and pointer is not None:
        with contextlib.suppress(ValueError, KeyError, TypeError):  # for the record only
            scores = live_scores(str(pointer["metric"]), task, rows)
    record = {
        "status": "promoted" if promote else "rejected", "decided_by": decided_by, "ended_at": now.isoformat(),
        "rows": len(rows), "metric": pointer.get("metric") if pointer else None,
        "champion_version": pointer.get("champion_version") if pointer else None,
        "champion_live_score": scores[0] if scores else None, "shadow_live_score": scores[1] if scores else None,
        "reasons": reasons,
    }
    key = _evaluation_key(registry, version)
    evaluation: dict[str, Any] = registry.store.get_json(key)
    evaluation["shadow"] = {**(evaluation.get("shadow") or {}), **record}
    if not promote:
        evaluation.update(promote=False, promotion_rejected_at=now.isoformat(),
                          reasons=[*evaluation.get("reasons", []), *reasons])
    registry.store.put_json(key, evaluation)
    if pointer is not None:
        registry.store.put_json(SHADOW_KEY, {**pointer, **record})  # the predict function stops scoring it
    return {"decided": True, "promote": promote, "version": version, **record}


def _outcome(registry: ModelRegistry, version: str) -> dict[str, Any]:
    shadow = registry.store.get_json(_evaluation_key(registry, version)).get("shadow") or {}
    return {"decided": True, "promote": shadow.get("status") == "promoted", "version": version, **shadow}

