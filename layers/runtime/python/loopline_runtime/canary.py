"""Canary: a promotion serves a share of the requests first, and rolls itself back on an alarm (gate.canary).

    promote    the champion pointer records `canary`: the share, the window (started_at, until) and the previous
               champion with the pins it served by (from the pointer it replaces, itself written only by a verified
               promotion); the promoting execution gives up the training lease
    serving    the predict function loads both by their pins and routes each request by its caller key (sticky:
               the same key always lands on the same side; `routing_share`): the new champion answers `share`, the
               previous one the rest; after `until` the new champion answers everything
    watching   every gate.canary.check_seconds of the window the promoting execution asks `check_canary`: the quality
               alarm's condition met by a measurement of the new champion (models/<version>/measured/), or the
               quality, predict error-rate or predict latency alarm entering ALARM since the canary started, means
               roll back: through the rollback path (the `rollback` action verifies the previous champion served
               before, then `promote` moves the pointer with If-Match), and a notification says why
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the predict function imports this module on its slim layer: no pydantic, no scikit-learn
    from loopline_runtime.config import PipelineConfig
    from loopline_runtime.registry import ModelRegistry

CANARY_REQUESTER = "canary"


def canary_record(registry: ModelRegistry, config: PipelineConfig, record: dict[str, Any],
                  now: datetime | None = None) -> dict[str, Any] | None:
    """The `canary` a gate's promotion of `record` carries (None without gate.canary or a champion to keep)."""
    settings = config.gate.canary
    if settings is None:
        return None
    pointer = registry.champion_pointer()
    if pointer is None or pointer.get("version") == record["version"] \
            or pointer.get("version") != record.get("previous_version"):
        return None  # the first champion (nothing to keep serving), or the pointer moved (the promotion fails)
    started = now or datetime.now(UTC)
    return {
        "share": settings.share, "started_at": started.isoformat(),
        "until": (started + timedelta(minutes=settings.window_minutes)).isoformat(),
        "check_seconds": settings.check_seconds,
        "previous": {"version": pointer["version"], "pins": pointer["pins"]},
    }


def routing_share(key: str) -> float:
    """Where a caller key falls in [0, 1): the same key, the same place (sha256, so keys spread evenly)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64


def canary_active(canary: dict[str, Any] | None, now: datetime | None = None) -> bool:
    if not canary:
        return False
    return (now or datetime.now(UTC)) < datetime.fromisoformat(str(canary["until"]))


def check_canary(registry: ModelRegistry, version: str, alarms: Iterable[dict[str, Any]],
                 now: datetime | None = None) -> dict[str, Any]:
    """During `version`'s canary window: {"rollback": True, "why": ...} when an alarm says so, {"done": True} when
    the window is over (or the pointer moved on), else {"done": False}. `alarms`: DescribeAlarms' MetricAlarms."""
    now = now or datetime.now(UTC)
    pointer = registry.champion_pointer()
    if pointer is None or pointer.get("version") != version or not pointer.get("canary"):
        return {"done": True, "rollback": False, "version": version,
                "note": f"the champion is now {pointer and pointer.get('version')}; the canary of {version} is over"}
    canary = pointer["canary"]
    previous = str(canary["previous"]["version"])
    started = datetime.fromisoformat(str(canary["started_at"]))
    reasons = []
    breached = registry.breached_versions(version)
    if breached:
        reasons.append(f"the quality alarm's condition was met by {version} on {', '.join(breached)}")
    for alarm in alarms:
        updated = alarm.get("StateUpdatedTimestamp")
        if alarm.get("StateValue") == "ALARM" and isinstance(updated, datetime) and updated >= started:
            reasons.append(f"alarm {alarm.get('AlarmName')} went to ALARM at {updated.astimezone(UTC):%H:%M:%S} UTC: "
                           f"{alarm.get('StateReason', '')}"[:500])
    if reasons:
        why = (f"canary of {version} rolled back to {previous} within its window: " + "; ".join(reasons))[:1000]
        return {"done": True, "rollback": True, "version": version, "previous_version": previous, "why": why}
    if now >= datetime.fromisoformat(str(canary["until"])):
        return {"done": True, "rollback": False, "version": version, "previous_version": previous,
                "note": f"{version} passed its canary window with no alarm; it serves every request"}
    return {"done": False, "rollback": False, "version": version}
