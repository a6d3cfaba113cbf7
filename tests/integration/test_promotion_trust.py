"""Only gated versions ever serve: the promote action pins what the gate recorded (a rollback: what the version's
own earlier promotion pinned), whatever its event says, and a rollback returns only to a version that served."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
import pytest

from loopline_runtime.errors import ArtifactIntegrityError, InvalidRequest, PromotionRefused, RollbackRefused
from loopline_runtime.registry import COMPILED_ARTIFACT, ModelRegistry
from tests.support.asl import resolve
from tests.support.stack import Stack


def _gated(registry: ModelRegistry, version: str, **evaluation: Any) -> dict[str, Any]:
    """Record a gate decision on `version` as the gate writes it (pins and the champion ETag it compared to)."""
    pointer, etag = registry.champion_pointer_and_etag()
    record = {"model_version": version, "metric": "f1", "challenger_score": 0.97, "promote": True,
              "passes_gate": True, "beats_champion": True, "reasons": ["ok"], "pins": registry.pins(version),
              "champion_version": pointer and pointer["version"], "champion_etag": etag, **evaluation}
    registry.store.put_json(registry.prefix(version) + "evaluation.json", record)
    return record


def _promote_event(stack: Stack, evaluation: dict[str, Any], version: str) -> dict[str, Any]:
    """The event the training state machine's "Promote challenger" state sends for `evaluation`."""
    definition = json.loads(stack.state_machine_definition("TrainingStateMachine"))
    state = {"training": {"model_version": version, "reason": "new_data"}, "evaluation": evaluation,
             "approval": {"approved_by": "gate"}}
    context = {"State": {"EnteredTime": datetime.now(UTC).isoformat()}, "Execution": {"Id": "arn:execution"}}
    return resolve(definition["States"]["Promote challenger"]["Parameters"], state, context)


def _rollback(stack: Stack, evaluate: ModuleType, context: Any, to_version: str) -> dict[str, Any]:
    """Run the rollback state machine's two tasks, with the events its ASL builds."""
    definition = json.loads(stack.state_machine_definition("RollbackStateMachine"))
    request = {"to_version": to_version, "requested_by": "someone", "note": "test"}
    machine = {"State": {"EnteredTime": datetime.now(UTC).isoformat()}, "Execution": {"Id": "arn:rollback"}}
    verify = resolve(definition["States"]["Verify rollback target"]["Parameters"], request, machine)
    state = {**request, "rollback": evaluate.lambda_handler(verify, context)}
    promote = resolve(definition["States"]["Promote rollback target"]["Parameters"], state, machine)
    return evaluate.lambda_handler(promote, context)


def test_a_promotion_whose_event_pins_other_objects_than_the_gate_recorded_is_refused(
    aws_stack: Stack, registry: ModelRegistry, register_model: Callable[..., str], promote: Callable[[str], Any],
    load_handler: Callable[[str], ModuleType], lambda_context: Any,
) -> None:
    # given a champion, a challenger the gate passed, and a promote event whose pins name another registered model
    champion = register_model()
    promote(champion)
    challenger, other = register_model(), register_model()
    event = {**_promote_event(aws_stack, _gated(registry, challenger), challenger), "pins": registry.pins(other)}
    evaluate = load_handler("evaluate")

    # when the promote action runs on it
    with pytest.raises(PromotionRefused, match="pins other objects than its gate recorded"):
        evaluate.lambda_handler(event, lambda_context)

    # then the champion is unchanged
    assert registry.champion_version() == champion


def test_a_promotion_of_a_version_the_gate_did_not_pass_is_refused(
    aws_stack: Stack, registry: ModelRegistry, register_model: Callable[..., str], promote: Callable[[str], Any],
    load_handler: Callable[[str], ModuleType], lambda_context: Any,
) -> None:
    # given a champion and a challenger the gate rejected, and a promote event with the challenger's true pins
    champion = register_model()
    promote(champion)
    challenger = register_model()
    evaluation = _gated(registry, challenger, promote=False, passes_gate=False, reasons=["f1 below the gate"])
    event = {**_promote_event(aws_stack, evaluation, challenger), "pins": registry.pins(challenger)}

    # when the promote action runs on it
    with pytest.raises(PromotionRefused, match="the gate did not pass"):
        load_handler("evaluate").lambda_handler(event, lambda_context)

    # then the champion is unchanged
    assert registry.champion_version() == champion


def test_the_gates_own_promotion_moves_the_pointer_with_the_gates_pins(
    aws_stack: Stack, registry: ModelRegistry, register_model: Callable[..., str], promote: Callable[[str], Any],
    load_handler: Callable[[str], ModuleType], lambda_context: Any,
) -> None:
    # given a champion and a challenger the gate passed
    promote(register_model())
    challenger = register_model()
    evaluation = _gated(registry, challenger)

    # when the state machine's promote event runs
    load_handler("evaluate").lambda_handler(_promote_event(aws_stack, evaluation, challenger), lambda_context)

    # then the challenger serves with exactly the gate's pins
    pointer = registry.champion_pointer() or {}
    assert pointer["version"] == challenger and pointer["pins"] == evaluation["pins"]


@pytest.mark.parametrize("never_served", ["rejected by the gate", "waiting for approval", "failed parity"])
def test_a_rollback_to_a_version_that_never_served_is_refused(
    never_served: str, aws_stack: Stack, registry: ModelRegistry, register_model: Callable[..., str],
    promote: Callable[[str], Any], load_handler: Callable[[str], ModuleType], lambda_context: Any,
) -> None:
    # given a champion and a registered version that was never promoted
    champion = register_model()
    promote(champion)
    if never_served == "failed parity":
        target = register_model(compiled={"parity": {"passed": False, "tolerance": 1e-4, "label_mismatches": 3}})
        _gated(registry, target, promote=False, passes_gate=False, pins=None)
    else:
        target = register_model()
        _gated(registry, target, promote=never_served == "waiting for approval",
               approval_required=never_served == "waiting for approval")

    # when a rollback to it runs through the rollback state machine's tasks
    with pytest.raises(RollbackRefused, match="never promoted"):
        _rollback(aws_stack, load_handler("evaluate"), lambda_context, target)

    # then the champion is unchanged
    assert registry.champion_version() == champion


def test_a_rollback_serves_the_objects_pinned_when_the_version_served_not_what_its_keys_hold_now(
    aws_stack: Stack, store: Any, registry: ModelRegistry, register_model: Callable[..., str],
    promote: Callable[[str], Any], load_handler: Callable[[str], ModuleType], lambda_context: Any,
) -> None:
    # given a first champion, replaced by a second, whose manifest and artifact keys were then overwritten
    first = register_model()
    pinned_then = promote(first)["pins"]
    promote(register_model())
    graph = store.get_bytes(registry.prefix(first) + COMPILED_ARTIFACT) + b"\x00"
    store.put_bytes(registry.prefix(first) + COMPILED_ARTIFACT, graph)
    manifest = store.get_json(registry.prefix(first) + "manifest.json")
    manifest["compiled"]["artifact"]["sha256"] = hashlib.sha256(graph).hexdigest()
    store.put_json(registry.prefix(first) + "manifest.json", manifest)

    # when the champion is rolled back to the first
    _rollback(aws_stack, load_handler("evaluate"), lambda_context, first)

    # then the pointer pins exactly what the first promotion pinned
    pointer = registry.champion_pointer() or {}
    assert pointer["version"] == first and pointer["pins"] == pinned_then
    assert registry.load_champion(pointer).version == first


def test_the_monitor_function_ingest_may_invoke_refuses_to_promote(
    aws_stack: Stack, registry: ModelRegistry, register_model: Callable[..., str], promote: Callable[[str], Any],
    load_handler: Callable[[str], ModuleType], lambda_context: Any,
) -> None:
    # given a champion and a challenger the gate passed
    champion = register_model()
    promote(champion)
    challenger = register_model()
    event = _promote_event(aws_stack, _gated(registry, challenger), challenger)

    # when its promote event is sent to the monitor function (the only one ingest may invoke)
    with pytest.raises(InvalidRequest, match="only measures the champion"):
        load_handler("monitor").lambda_handler(event, lambda_context)

    # then the champion is unchanged
    assert registry.champion_version() == champion


def test_a_rollback_to_a_version_that_served_refuses_changed_pinned_bytes_and_another_schema(
    aws_stack: Stack, store: Any, registry: ModelRegistry, register_model: Callable[..., str],
    promote: Callable[[str], Any], load_handler: Callable[[str], ModuleType], lambda_context: Any,
    fitted_champion: tuple[Any, dict[str, Any]],
) -> None:
    # given two versions that served before: one trained on fewer columns, one whose pinned compiled model's S3
    # version was since deleted; and a champion
    _, manifest = fitted_champion
    narrow_schema = {**manifest["schema"], "features": dict(list(manifest["schema"]["features"].items())[:1])}
    narrow = register_model(schema=narrow_schema)
    promote(narrow)
    tampered = register_model()
    pinned = promote(tampered)["pins"]["compiled"]
    boto3.client("s3").delete_object(Bucket=aws_stack.bucket, Key=pinned["key"], VersionId=pinned["version_id"])
    champion = register_model()
    promote(champion)
    evaluate = load_handler("evaluate")

    # when / then a rollback to either is refused with the reason, and the champion stays
    with pytest.raises(RollbackRefused, match="another feature schema"):
        _rollback(aws_stack, evaluate, lambda_context, narrow)
    with pytest.raises(ArtifactIntegrityError, match="does not match the pinned"):
        _rollback(aws_stack, evaluate, lambda_context, tampered)
    assert registry.champion_version() == champion
