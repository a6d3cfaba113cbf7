"""Serving the champion: its compiled (ONNX) form, loaded once per execution environment and reloaded when the
pointer moves. numpy + onnxruntime only: no scikit-learn, pandas or pickle on this path (the predict function's
slim layer has none of them)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from loopline_runtime.bucket_layout import CHAMPION_KEY, SHADOW_KEY
from loopline_runtime.canary import canary_active, routing_share
from loopline_runtime.compiled_model import CompiledModel
from loopline_runtime.errors import NoChampion
from loopline_runtime.feature_schema import Task
from loopline_runtime.model_inputs import records_to_inputs
from loopline_runtime.registry import ModelRegistry

LoadFailureHandler = Callable[[dict[str, Any], Exception], None]


class ChampionCache:
    """Holds the champion in memory; checks the pointer's ETag (a HEAD request) at most every `check_interval`s:
    requests in between make no S3 call, and a promotion is served at most `check_interval` seconds after the
    pointer moved (the documented staleness; 0 checks on every request).

    When a newly promoted champion cannot be loaded (it fails verification, its artifact is gone or unreadable),
    the last champion that did load keeps serving and `on_load_failure` is told once per pointer move; a new
    pointer move (a fix, a rollback) is tried again. With nothing loaded yet the error reaches the caller.
    """

    def __init__(self, registry: ModelRegistry, *, check_interval: float = 0.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_load_failure: LoadFailureHandler | None = None) -> None:
        self.registry = registry
        self.check_interval = check_interval
        self.clock = clock
        self.on_load_failure = on_load_failure
        self._model: CompiledModel | None = None
        self._previous: CompiledModel | None = None  # during a canary window: the champion it replaced
        self.pointer: dict[str, Any] | None = None  # the champion pointer the cached model was loaded from
        self._etag: str | None = None
        self._failed_etag: str | None = None  # a pointer whose model could not be loaded: not retried per request
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def get(self) -> CompiledModel:
        with self._lock:
            now = self.clock()
            if self._model is None or now - self._checked_at >= self.check_interval:
                self._checked_at = now
                etag = self.registry.store.etag(CHAMPION_KEY)
                if etag is None:
                    self._model, self.pointer, self._etag = None, None, None
                elif self._model is None or etag not in (self._etag, self._failed_etag):
                    self._load(etag)
            if self._model is None:
                raise NoChampion(
                    "no model has been promoted yet; upload a labeled CSV to incoming/ and wait for the training "
                    "state machine to promote a champion"
                )
            return self._model

    def _load(self, etag: str) -> None:
        pointer = self.registry.champion_pointer()
        if pointer is None:
            raise NoChampion("no model has been promoted yet")
        try:
            model = self.registry.load_champion(pointer)  # by the pins the pointer names, checked
        except Exception as exc:  # any failure: serving the last good model beats answering 503 to everyone
            if self._model is None:
                raise
            self._failed_etag = etag
            if self.on_load_failure is not None:
                self.on_load_failure(pointer, exc)
            return
        previous = None
        canary = pointer.get("canary")
        if canary is not None and canary_active(canary):
            try:  # by the pins it served with, checked as any champion
                previous = self.registry.load_pinned(str(canary["previous"]["version"]), canary["previous"]["pins"])
            except Exception as exc:  # the new champion answers everything rather than nobody the canary's rest
                if self.on_load_failure is not None:
                    self.on_load_failure(canary["previous"], exc)
        self._model, self.pointer, self._etag, self._failed_etag = model, pointer, etag, None
        self._previous = previous

    def for_caller(self, key: str) -> CompiledModel:
        """The model that answers the caller `key`: during a canary window (gate.canary) the new champion for the
        keys that fall in its share (sticky), the previous champion for the rest; otherwise the champion."""
        model = self.get()
        previous, canary = self._previous, (self.pointer or {}).get("canary")
        if previous is None or canary is None or not canary_active(canary):
            return model
        return model if routing_share(key) < float(canary["share"]) else previous


class ShadowCache:
    """The challenger in shadow (registry/shadow.json while its status is `active`), loaded by its pins like the
    champion and re-checked on the same schedule (one HEAD per `check_interval`). A shadow never fails a request:
    with no shadow, an ended one, or one that cannot be loaded, `get` returns None (a load failure is reported once
    per pointer move through `on_load_failure`)."""

    def __init__(self, registry: ModelRegistry, *, check_interval: float = 0.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_load_failure: LoadFailureHandler | None = None) -> None:
        self.registry = registry
        self.check_interval = check_interval
        self.clock = clock
        self.on_load_failure = on_load_failure
        self._model: CompiledModel | None = None
        self._deadline: datetime | None = None
        self._etag: str | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def get(self) -> CompiledModel | None:
        with self._lock:
            now = self.clock()
            if now - self._checked_at >= self.check_interval:
                self._checked_at = now
                etag = self.registry.store.etag(SHADOW_KEY)
                if etag != self._etag:
                    self._etag, self._model, self._deadline = etag, None, None
                    if etag is not None:
                        self._load()
            if self._deadline is not None and datetime.now(UTC) >= self._deadline:
                return None  # past gate.shadow.max_days: scored no longer, even if its execution never decided
            return self._model

    def _load(self) -> None:
        try:
            pointer = self.registry.store.get_json(SHADOW_KEY)
        except Exception:  # gone between the HEAD and the GET: no shadow until the next check
            self._etag = None
            return
        if pointer.get("status") != "active":
            return
        try:
            self._deadline = datetime.fromisoformat(str(pointer["deadline"]))
            self._model = self.registry.load_champion(pointer)  # by its pins, checked like the champion
        except Exception as exc:  # a shadow that cannot be loaded is not scored; the champion still answers
            if self.on_load_failure is not None:
                self.on_load_failure(pointer, exc)


def predict_records(model: CompiledModel, records: Any, *, max_records: int) -> dict[str, Any]:
    """Validate records against the model's schema and predict; classifiers also return class probabilities."""
    prediction = model.predict(records_to_inputs(records, model.input_spec, max_records=max_records))
    response: dict[str, Any] = {"model_version": model.version,
                                "predictions": [_plain(v) for v in prediction.predictions]}
    if prediction.probabilities is not None and prediction.classes is not None \
            and model.schema.task is Task.CLASSIFICATION:
        plain = [_plain(c) for c in prediction.classes]
        response["classes"] = plain
        response["probabilities"] = [
            {str(c): round(float(p), 6) for c, p in zip(plain, row, strict=True)} for row in prediction.probabilities
        ]
    return response


def model_summary(model: CompiledModel, pointer: dict[str, Any] | None) -> dict[str, Any]:
    """What `GET /model` shows: enough to know what is serving and how good it was at promotion."""
    manifest = model.manifest
    summary = {
        "model_version": model.version,
        "pipeline": manifest.get("pipeline"),
        "task": manifest.get("task"),
        "target": manifest.get("target"),
        "metric": manifest.get("metric"),
        "holdout_score": manifest.get("holdout_score"),
        "cv_score": manifest.get("cv_score"),
        "estimator": manifest.get("estimator"),
        "params": manifest.get("params"),
        "features": manifest.get("schema", {}).get("features"),
        "classes": manifest.get("classes"),
        "dataset_versions": manifest.get("dataset_versions"),
        "trained_at": manifest.get("registered_at"),
        "libraries": manifest.get("libraries"),
        # which form answers POST /predict, and how it was checked against the trained pipeline
        "serving_form": model.form,
        "parity": (manifest.get("compiled") or {}).get("parity"),
    }
    if pointer:
        summary["promoted_at"] = pointer.get("promoted_at")
        summary["previous_version"] = pointer.get("previous_version")
        summary["promotion_reason"] = pointer.get("reason")
        summary["gate_score"] = pointer.get("score")
        canary = pointer.get("canary")
        if canary is not None and canary_active(canary):  # which callers it answers is in each answer's model_version
            summary["canary"] = {"share": canary.get("share"), "until": canary.get("until"),
                                 "previous_version": (canary.get("previous") or {}).get("version")}
    return summary


def _plain(value: Any) -> Any:
    """numpy scalars -> JSON-safe Python values."""
    if isinstance(value, np.generic):
        return value.item()
    return value
