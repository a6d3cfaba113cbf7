"""Evaluate: `gate` scores challenger and champion on the same holdout; `promote` moves the champion pointer to
what the gate passed if it is still the one the gate compared against; `rollback` verifies a version that served
before and returns the promotion record that `promote` then writes; `reject` records why a person (or the approval
timeout) rejected a challenger. Decisions are notified on the stack's topic: promoted, rejected with reasons.

Only the training and rollback state machines may invoke this function; measuring the champion on new data is the
monitor function's (functions/monitor/), which ingest invokes."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger

from loopline_runtime.canary import canary_record, check_canary
from loopline_runtime.config import runtime_config
from loopline_runtime.errors import ChampionChanged, InvalidRequest
from loopline_runtime.evaluation import gate_challenger, reject_promotion
from loopline_runtime.notifications import Notifier
from loopline_runtime.orchestration import mark_awaiting_approval, release_training_lease
from loopline_runtime.promotion import promotion_record
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.rollback import ROLLBACK_REASON, rollback_record
from loopline_runtime.shadow import check_shadow, end_shadow, start_shadow
from loopline_runtime.storage import ObjectStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
config = runtime_config()
store = ObjectStore.from_env()
notifier = Notifier.from_env(config.name)
# gate.canary: the alarms that roll a canary back (quality, predict error rate, predict latency)
CANARY_ALARM_NAMES = [name for name in os.environ.get("CANARY_ALARM_NAMES", "").split(",") if name]


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    action = event.get("action")
    # never the whole event: an approval request carries the execution's task token, a bearer credential
    logger.info("evaluate", extra={k: v for k, v in event.items() if k != "task_token"})
    registry = ModelRegistry(store)
    if action == "gate":
        decision = gate_challenger(registry, config, event["model_version"], event["holdout_key"],
                                   fingerprint=event.get("fingerprint"), reason=event.get("reason"))
        logger.info("gate decision", extra=decision.to_dict())
        if not decision.promote:
            notifier.rejected(decision.model_version, decision.reasons, metric=decision.metric,
                              score=decision.challenger_score, gate_threshold=decision.gate_threshold,
                              champion_version=decision.champion_version, champion_score=decision.champion_score)
        return decision.to_dict()
    if action == "promote":
        # the pins and the compared-against ETag come from the gate's evaluation (a rollback: the version's own
        # earlier promotion), never from the event; an event that names others is refused
        record, expected_etag = promotion_record(registry, event)
        canary = canary_record(registry, config, record) if record["reason"] != ROLLBACK_REASON else None
        if canary is not None:  # the new champion answers canary.share of the requests until canary.until
            record["canary"] = canary
        try:
            promoted = registry.promote(record, expected_etag=expected_etag)
        except ChampionChanged as exc:
            if record["reason"] != ROLLBACK_REASON:  # a rollback target keeps the evaluation its gate wrote
                reject_promotion(registry, record["version"], str(exc))
                notifier.rejected(record["version"], [str(exc)])
            raise
        notifier.promoted(promoted)
        if canary is not None and event.get("execution_arn"):
            # the execution watches the canary window without holding training back
            release_training_lease(store, str(event["execution_arn"]), why=f"{record['version']} in its canary")
        return {**promoted, "canary": {k: v for k, v in canary.items() if k != "previous"}
                | {"previous_version": canary["previous"]["version"]}} if canary else promoted
    if action == "request_approval":
        # invoked with waitForTaskToken: the token stays in the execution's history, never in the message
        mark_awaiting_approval(store, event["execution_arn"])  # triggers meanwhile queue behind it
        notifier.approval_requested({k: v for k, v in event.items() if k not in ("action", "task_token")})
        return {"requested": event.get("model_version")}
    if action == "reject":
        evaluation = reject_promotion(registry, event["model_version"], event["reason"])
        notifier.rejected(event["model_version"], evaluation["reasons"], metric=evaluation.get("metric"),
                          score=evaluation.get("challenger_score"))
        return evaluation
    if action == "start_shadow":
        started = start_shadow(registry, config, event["model_version"], execution_arn=event["execution_arn"])
        notifier.publish("shadow_started", f"{event['model_version']} runs in shadow next to "
                         f"{started.get('champion_version')}", model_version=event["model_version"],
                         **{k: v for k, v in started.items() if k not in ("version", "pins", "execution_arn")})
        return started
    if action == "shadow_waiting":
        # invoked with waitForTaskToken: the state times out after gate.shadow.check_seconds (then counts the live
        # labels) unless `loopline promote-now` / `loopline reject` answers with the token from the history first
        return {"waiting": event.get("model_version")}
    if action in ("check_shadow", "end_shadow"):
        if action == "check_shadow":
            outcome = check_shadow(registry, config, event["model_version"])
        else:
            answer = event.get("answer") or {}
            outcome = end_shadow(registry, config, event["model_version"], decision=str(answer.get("decision")),
                                 by=str(answer.get("decided_by") or "unknown"), note=str(answer.get("note") or ""))
        if outcome["decided"]:
            logger.info("shadow decided", extra=outcome)
            if not outcome["promote"]:
                notifier.rejected(outcome["version"], outcome["reasons"], metric=outcome.get("metric"),
                                  shadow=outcome)
            # promoted: the promote step's notification carries the shadow record (models/<v>/evaluation.json)
        return outcome
    if action == "check_canary":
        alarms = []
        if CANARY_ALARM_NAMES:
            alarms = boto3.client("cloudwatch").describe_alarms(AlarmNames=CANARY_ALARM_NAMES)["MetricAlarms"]
        outcome = check_canary(registry, event["version"], alarms)
        if outcome["done"]:
            logger.info("canary over", extra=outcome)
        return outcome
    if action == "rollback":
        request = event.get("request") or {}
        record = rollback_record(registry, to_version=request.get("to_version"),
                                 requested_by=request.get("requested_by"), note=request.get("note"),
                                 from_version=request.get("from_version"))
        logger.info("rollback verified", extra=record)
        return record
    raise InvalidRequest(f"unknown action {action!r}; expected 'gate', 'promote', 'request_approval', 'reject', "
                         "'rollback', 'start_shadow', 'shadow_waiting', 'check_shadow', 'end_shadow' or "
                         "'check_canary'")
