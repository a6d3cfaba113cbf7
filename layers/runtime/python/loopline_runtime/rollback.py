"""Rollback: decide whether a registered model may serve again and build its promotion record.

The state machine then hands that record to the evaluate function's `promote` action, exactly as after a gate:
the champion pointer moves only if it still has the ETag read here (If-Match), then the history record is
appended. A rollback goes through the same controlled path and leaves the same trail, with who and why.
"""

from __future__ import annotations

from typing import Any

from loopline_runtime.errors import NoChampion, PromotionRefused, RollbackRefused, UnknownModelVersion
from loopline_runtime.promotion import ROLLBACK_REASON, promoted_before
from loopline_runtime.registry import ModelRegistry, serves_scikit_learn
from loopline_runtime.schema import FeatureSchema

__all__ = ["ROLLBACK_REASON", "rollback_record"]


def rollback_record(registry: ModelRegistry, *, to_version: str | None, requested_by: str | None,
                    note: str | None, from_version: str | None = None) -> dict[str, Any]:
    """The promotion that makes `to_version` (default: the champion's previous version) the champion, with the
    pointer's ETag as read here (`expected_etag`: the move fails if the champion changes meanwhile).

    Raises:
        RollbackRefused: no champion, no previous version, the target already serves, or its schema differs.
        UnknownModelVersion: the target is not in the registry.
        ModelNotCompiled: the target has no compiled form, so it cannot serve.
        ArtifactIntegrityError: the target's artifact fails verification (it is never loaded).
    """
    pointer, etag = registry.champion_pointer_and_etag()
    if pointer is None:
        raise RollbackRefused("there is no champion yet, so nothing to roll back from")
    current = str(pointer["version"])
    if from_version is not None and current != from_version:  # a canary's rollback: only from that champion
        raise RollbackRefused(f"the champion is now {current}, not {from_version}; it is not rolled back")
    target = to_version or pointer.get("previous_version")
    if not target:
        raise RollbackRefused(
            f"the champion {current} has no previous champion; name a version with --to VERSION "
            "(`loopline models` lists them)"
        )
    if target == current:
        raise RollbackRefused(f"{target} is already the champion")
    try:
        registry.manifest(target)
    except NoChampion:
        raise UnknownModelVersion(
            f"model version {target!r} is not in the registry; `loopline models` lists the versions"
        ) from None
    try:
        # only a version that served before, with exactly the objects pinned then (a gate passed it, its compiled
        # form passed parity); never one the gate rejected or one still waiting for approval
        earlier = promoted_before(registry, target)
    except PromotionRefused as exc:
        raise RollbackRefused(str(exc)) from None
    pins = earlier["pins"]
    # both pinned objects read by their S3 versions and checked against the pinned sha256; nothing is loaded
    manifest = registry.champion_manifest({"version": target, "pins": pins})
    if not serves_scikit_learn(manifest) and not (manifest.get("compiled") or {}).get("parity", {}).get("passed"):
        raise RollbackRefused(f"{target}'s compiled model did not pass its parity check; it cannot serve")
    _check_same_schema(target, manifest, current, registry.manifest(current))
    return {
        "version": target,
        "previous_version": current,
        "metric": earlier.get("metric", manifest["metric"]),
        "score": earlier.get("score"),
        "expected_etag": etag,
        "pins": pins,
        "reason": ROLLBACK_REASON,
        "requested_by": requested_by or "unknown",
        "note": note or "",
    }


def _check_same_schema(target: str, target_manifest: dict[str, Any], current: str,
                       current_manifest: dict[str, Any]) -> None:
    wanted = FeatureSchema.from_dict(current_manifest["schema"])
    offered = FeatureSchema.from_dict(target_manifest["schema"])
    # levels seen in training may grow between versions; fields, their types, target and task may not
    if (offered.target, offered.task, offered.features) == (wanted.target, wanted.task, wanted.features):
        return
    differences = []
    if offered.target != wanted.target or offered.task != wanted.task:
        differences.append(f"target {offered.target!r} ({offered.task.value}) instead of {wanted.target!r} "
                           f"({wanted.task.value})")
    if missing := sorted(set(wanted.features) - set(offered.features)):
        differences.append(f"lacks {', '.join(missing)}")
    if extra := sorted(set(offered.features) - set(wanted.features)):
        differences.append(f"also needs {', '.join(extra)}")
    if changed := sorted(n for n in set(offered.features) & set(wanted.features)
                         if offered.features[n] != wanted.features[n]):
        differences.append(f"reads {', '.join(changed)} with another type")
    raise RollbackRefused(
        f"{target} was trained with another feature schema than the champion {current} "
        f"({'; '.join(differences)}): callers of the API send the champion's fields"
    )
