"""Shadow and canary decisions on the stack's bucket (moto), without a running state machine: a newer shadow
supersedes an earlier one, a shadow without enough live labels by its deadline is rejected, the promote step
refuses a challenger still in shadow, and a canary whose champion breached the quality alarm's line rolls back
only from that champion."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from loopline_runtime.bucket_layout import LABELS_SHADOW_PREFIX, MEASURED_FOLDER, TRAINING_LEASE_KEY
from loopline_runtime.canary import canary_record, check_canary
from loopline_runtime.config import PipelineConfig, parse_config
from loopline_runtime.errors import PromotionRefused, RollbackRefused
from loopline_runtime.orchestration import TrainingAlreadyRunning, acquire_training_lease
from loopline_runtime.promotion import promotion_record
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.rollback import rollback_record
from loopline_runtime.shadow import check_shadow, start_shadow
from tests.support.stack import Stack


def _with_gate(config: PipelineConfig, **gate: Any) -> PipelineConfig:
    data = config.model_dump(mode="json")
    data["gate"].update(gate)
    return parse_config(data)


def _gated(registry: ModelRegistry, version: str) -> None:
    """The gate's record of a passed challenger (its pins and the champion ETag it compared against)."""
    pointer, etag = registry.champion_pointer_and_etag()
    registry.store.put_json(registry.prefix(version) + "evaluation.json", {
        "model_version": version, "metric": "f1", "challenger_score": 0.97, "promote": True, "reasons": ["ok"],
        "pins": registry.pins(version), "champion_version": pointer and pointer["version"], "champion_etag": etag})


@pytest.fixture
def shadow_config(config: PipelineConfig) -> PipelineConfig:
    return _with_gate(config, shadow={"min_rows": 10, "max_days": 1})


def test_a_trigger_during_the_shadow_period_trains_because_the_shadowing_execution_released_the_lease(
        aws_stack: Stack, registry: ModelRegistry, shadow_config: PipelineConfig, champion: str,
        register_model: Callable[..., str]) -> None:
    # given a running training execution holding the lease, which a newer trigger's execution cannot take
    sfn = boto3.client("stepfunctions")
    machine = aws_stack.physical_ids["TrainingStateMachine"]
    holder, newer = (sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps({"reason": "new_data"}))
                     ["executionArn"] for name in ("new_data-shadowed", "new_data-newer"))
    acquire_training_lease(registry.store, sfn, holder)
    with pytest.raises(TrainingAlreadyRunning):
        acquire_training_lease(registry.store, sfn, newer)

    # when the holder's challenger goes into shadow (its execution still running, waiting for live labels)
    challenger = register_model()
    _gated(registry, challenger)
    started = start_shadow(registry, shadow_config, challenger, execution_arn=holder)

    # then the newer trigger takes the lease and trains
    assert started["lease_released"] is True
    acquire_training_lease(registry.store, sfn, newer)
    assert registry.store.get_json(TRAINING_LEASE_KEY)["execution_arn"] == newer


def test_a_newer_challenger_in_shadow_supersedes_the_earlier_one(
        aws_stack: Stack, registry: ModelRegistry, shadow_config: PipelineConfig, champion: str,
        register_model: Callable[..., str]) -> None:
    # given a challenger in shadow, and a newer one (a trigger during the shadow period) that passed the gate too
    earlier, newer = register_model(), register_model()
    for version in (earlier, newer):
        _gated(registry, version)
        start_shadow(registry, shadow_config, version, execution_arn=f"arn:execution:{version}")

    # when the earlier one's execution checks its shadow
    decision = check_shadow(registry, shadow_config, earlier)

    # then it is rejected as superseded, and the newer one is still in shadow
    assert (decision["decided"], decision["promote"]) == (True, False)
    assert f"superseded in shadow by {newer}" in decision["reasons"][0]
    assert registry.store.get_json(registry.prefix(earlier) + "evaluation.json")["promote"] is False
    assert check_shadow(registry, shadow_config, newer)["decided"] is False


def test_a_shadow_with_too_few_live_labels_by_its_deadline_is_rejected(
        aws_stack: Stack, registry: ModelRegistry, shadow_config: PipelineConfig, champion: str,
        register_model: Callable[..., str]) -> None:
    # given a challenger in shadow with 3 live labeled rows of the 10 it needs
    challenger = register_model()
    _gated(registry, challenger)
    start_shadow(registry, shadow_config, challenger, execution_arn="arn:execution:x")
    rows = [{"prediction_id": f"r{n}", "label": "benign",
             "champion": {"model_version": champion, "prediction": "benign"},
             "shadow": {"model_version": challenger, "prediction": "benign"}} for n in range(3)]
    registry.store.put_bytes(f"{LABELS_SHADOW_PREFIX}{challenger}/run.jsonl",
                             "\n".join(json.dumps(r) for r in rows).encode())

    # when it is checked before, then after gate.shadow.max_days
    waiting = check_shadow(registry, shadow_config, challenger)
    late = check_shadow(registry, shadow_config, challenger, now=datetime.now(UTC) + timedelta(days=1, seconds=1))

    # then it waits, then is rejected with the count, and the promote step refuses it
    assert (waiting["decided"], waiting["rows"]) == (False, 3)
    assert (late["decided"], late["promote"], late["rows"]) == (True, False, 3)
    assert "only 3 of gate.shadow.min_rows 10" in late["reasons"][0]
    with pytest.raises(PromotionRefused):
        promotion_record(registry, {"version": challenger, "reason": "new_data"})


@pytest.mark.parametrize(("tolerance", "promoted"), [(0.0, False), (0.05, True)])
def test_a_shadow_that_only_ties_the_champion_on_live_rows_is_promoted_only_within_a_stated_tolerance(
        aws_stack: Stack, registry: ModelRegistry, config: PipelineConfig, champion: str,
        register_model: Callable[..., str], tolerance: float, promoted: bool) -> None:
    # given a challenger in shadow whose live answers score exactly as the champion's (both right on 9 of 10 rows)
    shadow_config = _with_gate(config, shadow={"min_rows": 10, "max_days": 1, "tolerance": tolerance})
    challenger = register_model()
    _gated(registry, challenger)
    start_shadow(registry, shadow_config, challenger, execution_arn="arn:execution:tie")
    labels = ["benign"] * 5 + ["malignant"] * 5
    champion_answers = ["benign"] * 5 + ["malignant"] * 4 + ["benign"]
    shadow_answers = ["malignant"] + ["benign"] * 4 + ["malignant"] * 5
    rows = [{"prediction_id": f"r{n}", "label": label,
             "champion": {"model_version": champion, "prediction": mine},
             "shadow": {"model_version": challenger, "prediction": theirs}}
            for n, (label, mine, theirs) in enumerate(zip(labels, champion_answers, shadow_answers, strict=True))]
    registry.store.put_bytes(f"{LABELS_SHADOW_PREFIX}{challenger}/run.jsonl",
                             "\n".join(json.dumps(r) for r in rows).encode())

    # when its execution checks it
    decision = check_shadow(registry, shadow_config, challenger)

    # then a tie keeps the champion (the shadow must beat it), unless the team stated a tolerance
    assert (decision["decided"], decision["promote"], decision["rows"]) == (True, promoted, 10)
    assert ("at least as good" if promoted else "a tie keeps the champion") in decision["reasons"][0]


def test_the_promote_step_refuses_a_challenger_still_in_shadow(
        aws_stack: Stack, registry: ModelRegistry, shadow_config: PipelineConfig, champion: str,
        register_model: Callable[..., str]) -> None:
    # given a challenger the gate passed, now in shadow
    challenger = register_model()
    _gated(registry, challenger)
    start_shadow(registry, shadow_config, challenger, execution_arn="arn:execution:y")

    # when a promotion of it is asked for before its live labels decided, then it is refused
    with pytest.raises(PromotionRefused, match="runs in shadow"):
        promotion_record(registry, {"version": challenger, "reason": "new_data", "approved_by": "gate"})


def test_a_canary_whose_champion_breached_the_alarm_line_rolls_back_only_from_that_champion(
        aws_stack: Stack, registry: ModelRegistry, config: PipelineConfig, champion: str,
        register_model: Callable[..., str]) -> None:
    # given a challenger promoted with a canary over the champion
    canary_config = _with_gate(config, canary={"share": 0.2, "window_minutes": 30})
    challenger = register_model()
    _gated(registry, challenger)
    record, etag = promotion_record(registry, {"version": challenger, "reason": "new_data",
                                               "promoted_at": datetime.now(UTC).isoformat()})
    record["canary"] = canary_record(registry, canary_config, record)
    registry.promote(record, expected_etag=etag)
    assert record["canary"]["previous"]["version"] == champion
    assert check_canary(registry, challenger, [])["done"] is False

    # when a labeled batch measured on it breaches the quality alarm's line
    registry.store.put_json(registry.prefix(challenger) + MEASURED_FOLDER + "d1.json",
                            {"dataset_version": "d1", "alarm_breached": True})
    decision = check_canary(registry, challenger, [])

    # then the canary rolls back to the previous champion, through the rollback path, and only from it
    assert (decision["rollback"], decision["previous_version"]) == (True, champion)
    assert "quality alarm's condition was met" in decision["why"]
    rollback = rollback_record(registry, to_version=champion, requested_by="canary", note=decision["why"],
                               from_version=challenger)
    assert rollback["version"] == champion
    with pytest.raises(RollbackRefused, match="not rolled back"):
        rollback_record(registry, to_version=champion, requested_by="canary", note="x", from_version="m-other")
