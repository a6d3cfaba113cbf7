"""What the `promote` action writes: a promotion record whose pins come from the registry's own records, never
from its caller.

    a gate's promotion   models/<version>/evaluation.json, written by the gate: it must say `promote`, and its pins
                         and the champion ETag it compared against are what the record carries
    a rollback           the history record of the version's own earlier promotion (registry/history/): only a
                         version that served before serves again, with exactly the objects pinned then

A caller that sends pins (the state machines pass them on) must send exactly these: a mismatch is refused, not
corrected, because it means something between the gate and the promotion changed what would serve.
"""

from __future__ import annotations

from typing import Any

from loopline_runtime.errors import PromotionRefused
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.storage import ObjectNotFound

ROLLBACK_REASON = "rollback"
# what the caller (a state machine) contributes: when, which execution, why; and a rollback's who and why
CALLER_FIELDS = ("promoted_at", "execution_arn", "reason")
OPTIONAL_CALLER_FIELDS = ("requested_by", "note", "approved_by")


def promotion_record(registry: ModelRegistry, request: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The record `ModelRegistry.promote` writes for `request`, and the pointer ETag it must still have.

    Raises:
        PromotionRefused: the gate did not pass the version (or recorded no pins), the request's pins or ETag
            differ from the gate's, or a rollback names a version that was never promoted.
    """
    version = str(request["version"])
    record: dict[str, Any] = {name: request.get(name) for name in CALLER_FIELDS}
    record.update({name: request[name] for name in OPTIONAL_CALLER_FIELDS if name in request})
    record["version"] = version
    if request.get("reason") == ROLLBACK_REASON:
        earlier = promoted_before(registry, version)
        record.update(previous_version=request.get("previous_version"), metric=earlier.get("metric"),
                      score=earlier.get("score"), pins=earlier["pins"])
        expected_etag = request.get("expected_etag")
    else:
        evaluation = _gate_evaluation(registry, version)
        record.update(previous_version=evaluation.get("champion_version"), metric=evaluation.get("metric"),
                      score=evaluation.get("challenger_score"), pins=evaluation["pins"])
        expected_etag = evaluation.get("champion_etag")
        if evaluation.get("shadow"):  # the live comparison that let it through (gate.shadow)
            record["shadow"] = evaluation["shadow"]
            if evaluation["shadow"].get("status") != "promoted":
                raise PromotionRefused(f"{version} runs in shadow (or was rejected there); it is promoted only "
                                       "when its live labels (or `loopline promote-now`) decide so")
        if evaluation.get("approval_required") and request.get("approved_by") in (None, "", "gate"):
            raise PromotionRefused(f"{version} waits for a person's approval (gate.approval: manual); it is not "
                                   "promoted before `loopline approve`")
        if "expected_etag" in request and request["expected_etag"] != expected_etag:
            raise PromotionRefused(
                f"the promotion of {version} names champion ETag {request['expected_etag']!r}, but its gate compared "
                f"against {expected_etag!r}; it is not written")
    if request.get("pins") is not None and request["pins"] != record["pins"]:
        source = "its earlier promotion" if request.get("reason") == ROLLBACK_REASON else "its gate"
        raise PromotionRefused(f"the promotion of {version} pins other objects than {source} recorded; "
                               "it is not written")
    return record, expected_etag


def _gate_evaluation(registry: ModelRegistry, version: str) -> dict[str, Any]:
    try:
        evaluation: dict[str, Any] = registry.store.get_json(registry.prefix(version) + "evaluation.json")
    except ObjectNotFound:
        raise PromotionRefused(f"{version} has no gate evaluation; only a version the gate passed is promoted") \
            from None
    if evaluation.get("promote") is not True:
        raise PromotionRefused(f"the gate did not pass {version} ({'; '.join(evaluation.get('reasons') or [])}); "
                               "it is not promoted")
    if not _has_pins(evaluation.get("pins")):
        raise PromotionRefused(f"the gate recorded no verified artifacts for {version}; it is not promoted")
    return evaluation


def promoted_before(registry: ModelRegistry, version: str) -> dict[str, Any]:
    """The most recent history record of `version`'s own promotion (what it pinned then).

    Raises:
        PromotionRefused: `version` never served (never promoted, or only without pins).
    """
    earlier = [record for record in registry.history() if record.get("version") == version
               and _has_pins(record.get("pins"))]
    if not earlier:
        raise PromotionRefused(
            f"{version} was never promoted (registry/history/ has no promotion of it); a rollback returns only to a "
            "version that served before")
    return earlier[-1]


def _has_pins(pins: Any) -> bool:
    return isinstance(pins, dict) and {"manifest", "compiled"} <= pins.keys()
