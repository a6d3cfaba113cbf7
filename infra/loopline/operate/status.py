"""`loopline status` and `loopline models`: the state of the loop in one screen, read from the stack's public APIs.

Gathering (boto3 calls through `StackClient`) and rendering (plain text) are apart, so the tables are tested on
recorded values and the README quotes real output.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loopline.client import StackClient
from loopline.operate.report.sources import alarm_distance_text
from loopline_runtime import bucket_layout
from loopline_runtime.bucket_layout import (
    CHAMPION_KEY,
    HISTORY_PREFIX,
    LABELS_REPORTS_PREFIX,
    LIVE_MONITORING_PREFIX,
    MODELS_PREFIX,
    MONITORING_PREFIX,
    QUARANTINE_PREFIX,
    SHADOW_KEY,
    model_prefix,
)

RECENT_MEASUREMENTS = 3
RECENT_EXECUTIONS = 5
RECENT_QUARANTINES = 5
SHOWN_STRAYS = 5


@dataclass
class StackStatus:
    stack_name: str
    pointer: dict[str, Any] | None
    champion: dict[str, Any] | None
    alarm: dict[str, Any] | None
    measurements: list[dict[str, Any]]
    executions: list[dict[str, Any]]
    queues: dict[str, int]
    pending_approvals: list[dict[str, Any]] = field(default_factory=list)
    quarantines: list[dict[str, Any]] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)
    # production watching beyond labeled uploads (live drift, capture volume, labels joined): (label, text) rows
    live: list[tuple[str, str]] = field(default_factory=list)
    shadow: dict[str, Any] | None = None  # registry/shadow.json: the shadow running, or the last one's decision
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


def gather_status(stack: StackClient) -> StackStatus:
    """Everything `loopline status` shows, in a handful of API calls."""
    pointer = _read_json_or_none(stack, CHAMPION_KEY)
    champion = None
    if pointer:
        champion = _read_json_or_none(stack, model_prefix(pointer["version"]) + "manifest.json")
    try:
        alarm: dict[str, Any] | None = stack.alarm()
    except (KeyError, IndexError):
        alarm = None
    labeled = labeled_measurement_keys(stack.keys(MONITORING_PREFIX))
    measurements = [stack.read_json(key) for key in labeled[-RECENT_MEASUREMENTS:]]
    executions = sorted(stack.executions(), key=lambda e: e["startDate"], reverse=True)
    shown = [e for e in executions if e["status"] == "RUNNING"]
    shown += [e for e in executions if e["status"] != "RUNNING"][: max(0, RECENT_EXECUTIONS - len(shown))]
    for execution in shown:
        states = stack.entered_states(execution["executionArn"])
        execution["last_state"] = states[-1] if states else ""
    from loopline.operate.approval import pending_approvals

    approvals = [{"model_version": a.model_version, "requested_at": a.requested_at}
                 for a in pending_approvals(stack)]
    live_keys = sorted(stack.keys(LIVE_MONITORING_PREFIX))
    label_keys = sorted(k for k in stack.keys(LABELS_REPORTS_PREFIX) if k.endswith("/report.json"))
    live = production_lines(stack.read_json(live_keys[-1]) if live_keys else None,
                            stack.read_json(label_keys[-1]) if label_keys else None, datetime.now(UTC))
    shadow = _read_json_or_none(stack, SHADOW_KEY)
    if shadow and shadow.get("status") == "active":
        shadow["live_rows"] = _shadow_rows(stack, str(shadow["version"]))
    return StackStatus(stack.stack_name, pointer, champion, alarm, measurements, shown, queue_depths(stack),
                       approvals, recent_quarantines(stack), objects_outside_known_prefixes(stack), live=live,
                       shadow=shadow)


def _shadow_rows(stack: StackClient, version: str) -> int:
    """Live labeled rows joined for the shadow so far (before de-duplication and the champion check)."""
    total = 0
    for key in stack.keys(f"{bucket_layout.LABELS_SHADOW_PREFIX}{version}/"):
        body = stack.s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()
        total += sum(1 for line in body.splitlines() if line.strip())
    return total


def canary_lines(canary: dict[str, Any] | None, now: datetime) -> list[str]:
    """The champion's canary window (gate.canary): running, with its split, or over."""
    if not canary:
        return []
    until = datetime.fromisoformat(str(canary["until"]))
    previous = (canary.get("previous") or {}).get("version") or canary.get("previous_version")
    if now < until:
        return [f"canary: answers {float(canary['share']):.0%} of callers until {until:%H:%M:%S} UTC "
                f"({(until - now).total_seconds():.0f} s left), {previous} the rest; an alarm rolls it back"]
    return [f"canary window ended {_when(until.isoformat(), now)} with no rollback: answers every caller"]


def shadow_lines(shadow: dict[str, Any] | None, now: datetime, follow_up: Callable[..., str]
                 ) -> list[tuple[str, str]]:
    """The shadow running (live labeled rows so far, its deadline, how to end it by hand), or the last decision."""
    if not shadow:
        return []
    version = str(shadow.get("version"))
    if shadow.get("status") == "active":
        return [("Shadow", f"{version} in shadow next to {shadow.get('champion_version')} since "
                           f"{_when(shadow.get('started_at'), now)}: {shadow.get('live_rows', 0)} of "
                           f"{shadow.get('min_rows')} live labeled rows, decided by "
                           f"{str(shadow.get('deadline', '?'))[:19]}"),
                ("", f"end it now: {follow_up('promote-now', version)}  |  "
                     f"{follow_up('reject', version, '--reason', 'TEXT')}")]
    scores = ""
    if shadow.get("shadow_live_score") is not None:
        scores = (f"  live {shadow.get('metric')} {_num(shadow['shadow_live_score'])} vs champion "
                  f"{_num(shadow.get('champion_live_score'))} on {shadow.get('rows')} rows")
    return [("Shadow", f"last: {version} {shadow.get('status')} {_when(shadow.get('ended_at'), now)} by "
                       f"{shadow.get('decided_by')}{scores}")]


def labeled_measurement_keys(keys: list[str]) -> list[str]:
    """The reports of labeled batches among `monitoring/` keys, oldest first (the live drift runs have a folder of
    their own, monitoring/live/)."""
    return sorted(key for key in keys if key.startswith(MONITORING_PREFIX) and "/" not in key[len(MONITORING_PREFIX):])


def production_lines(live: dict[str, Any] | None, labels: dict[str, Any] | None, now: datetime
                     ) -> list[tuple[str, str]]:
    """The rows of what production shows without labeled uploads: the last live drift run (capture volume, drifted
    share against the drift alarm's line, the label-free estimate) and the last labels file joined."""
    rows: list[tuple[str, str]] = []
    if live is None:
        rows.append(("Live", "no live drift run yet (the schedule measures the captured predictions)"))
    else:
        text = f"{_when(live.get('measured_at'), now)}  {live.get('captured_rows', 0)} predictions captured"
        if live.get("status") == "measured":
            share, line = float(live.get("drifted_share", 0.0)), float(live.get("max_drifted_share", 0.0))
            side = "above: the drift alarm fires" if share > line else f"{line - share:.2f} below"
            text += f"  drifted share {share:.2f} (alarm line {line:.2f}, {side})"
            if live.get("estimated_value") is not None:
                text += (f"  estimated {live.get('metric')} {_num(live['estimated_value'])}"
                         f" (holdout {_num(live.get('holdout_score'))})")
        else:
            text += f"  not measured: {live.get('note', live.get('status'))}"
        rows.append(("Live", text))
    if labels is not None:
        rows.append(("Labels", f"{_when((labels.get('window') or {}).get('end'), now)}  "
                               f"{labels.get('matched', 0)} joined, {labels.get('unmatched', 0)} unmatched"
                               + (f" ({labels['unmatched_key']})" if labels.get("unmatched") else "")))
    return rows


def recent_quarantines(stack: StackClient) -> list[dict[str, Any]]:
    """The reason.json of the newest quarantined uploads, newest first (folders sort by time)."""
    reasons = sorted(k for k in stack.keys(QUARANTINE_PREFIX) if k.endswith("/reason.json"))
    return [stack.read_json(key) for key in reversed(reasons[-RECENT_QUARANTINES:])]


def known_top_prefixes() -> set[str]:
    """The top-level folders of the bucket layout (every `*_PREFIX` of bucket_layout, cut at its first /)."""
    return {value.split("/", 1)[0] + "/" for name, value in vars(bucket_layout).items()
            if name.endswith("_PREFIX") and isinstance(value, str)}


def objects_outside_known_prefixes(stack: StackClient) -> list[str]:
    """Objects at the bucket root and folders no part of the pipeline reads (`Incoming/`, `uploads/`): an upload
    there does nothing, so status says so."""
    listed = stack.s3.list_objects_v2(Bucket=stack.bucket, Delimiter="/", MaxKeys=1000)
    known = known_top_prefixes()
    folders = [p["Prefix"] for p in listed.get("CommonPrefixes", []) if p["Prefix"] not in known]
    return sorted(folders) + sorted(item["Key"] for item in listed.get("Contents", []))


def queue_depths(stack: StackClient) -> dict[str, int]:
    """Messages waiting in each SQS queue of the stack (on-failure destinations, dead-letter queues)."""
    resources = stack.cloudformation.describe_stack_resources(StackName=stack.stack_name)["StackResources"]
    queues = [r for r in resources if r.get("ResourceType") == "AWS::SQS::Queue" and r.get("PhysicalResourceId")]
    if not queues:
        return {}
    sqs = stack.client("sqs")
    depths: dict[str, int] = {}
    for queue in queues:
        url = queue["PhysicalResourceId"]
        if not url.startswith("http"):
            url = sqs.get_queue_url(QueueName=url)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        depths[queue["LogicalResourceId"]] = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    return depths


def _plain_command(*arguments: str) -> str:
    return shlex.join(["loopline", *arguments])


def render_status(status: StackStatus, follow_up: Callable[..., str] = _plain_command) -> str:
    """A table a person reads in five seconds; `follow_up(*arguments)` spells the commands it suggests."""
    rows: list[tuple[str, str]] = []
    if status.pointer and status.champion:
        manifest, pointer = status.champion, status.pointer
        rows.append(("Champion", f"{pointer['version']}  {manifest.get('estimator', '?')}  "
                                 f"{manifest['metric']} {_num(manifest.get('holdout_score'))} on its holdout"))
        promoted = f"{_when(pointer.get('promoted_at'), status.now)} ({pointer.get('reason', '?')})"
        if pointer.get("requested_by"):
            promoted += f" by {pointer['requested_by']}"
        if pointer.get("previous_version"):
            promoted += f"; previous {pointer['previous_version']}"
        rows.append(("", f"promoted {promoted}"))
        if pointer.get("reason") == "rollback" and pointer.get("note"):
            rows.append(("", f"why: {str(pointer['note'])[:300]}"))
        rows.extend(("", line) for line in canary_lines(pointer.get("canary"), status.now))
    else:
        rows.append(("Champion", f"none yet (upload a labeled CSV: {follow_up('upload', 'FILE')})"))
    if status.alarm:
        alarm = status.alarm
        operator = _OPERATORS.get(alarm["ComparisonOperator"], "?")
        rows.append(("Alarm", f"{alarm['StateValue']}  ({alarm['MetricName']} {operator} "
                              f"{_num(alarm['Threshold'])}, period {int(alarm['Period'])} s)"))
    if status.measurements:
        for index, report in enumerate(reversed(status.measurements)):
            drift = report.get("drift", {})
            features = drift.get("features", [])
            drifted = len(drift.get("drifted", []))
            rows.append(("Measured" if index == 0 else "",
                         f"{_when(report.get('measured_at'), status.now)}  {report['metric']} {_num(report['value'])}"
                         f"  drift {drifted}/{len(features)} features  {report.get('rows', '?')} rows"
                         f"  on {report.get('dataset_version', '?')} ({report.get('champion_version', '?')})"))
            if index == 0:
                rows.extend(("", line) for line in latest_measurement_lines(report))
    else:
        rows.append(("Measured", "no monitoring run yet"))
    rows.extend(status.live)
    rows.extend(shadow_lines(status.shadow, status.now, follow_up))
    if status.executions:
        for index, execution in enumerate(status.executions):
            started = execution["startDate"]
            ended = execution.get("stopDate")
            took = f"{((ended or status.now) - started).total_seconds():.0f} s"
            rows.append(("Executions" if index == 0 else "",
                         f"{execution['status']:<9}  {_when(started.isoformat(), status.now)}  {took:>6}  "
                         f"{execution.get('last_state', '')}  [{execution['name']}]"))
    else:
        rows.append(("Executions", "none yet"))
    if status.pending_approvals:
        for index, approval in enumerate(status.pending_approvals):
            version = approval["model_version"]
            rows.append(("Approvals" if index == 0 else "",
                         f"{version} waiting since {_when(approval.get('requested_at'), status.now)}: "
                         f"{follow_up('approve', version)}  |  "
                         f"{follow_up('reject', version, '--reason', 'TEXT')}"))
    for index, reason in enumerate(status.quarantines):
        message = reason.get("message", "")
        rows.append(("Quarantined" if index == 0 else "",
                     f"{_when(reason.get('received_at'), status.now)}  {reason.get('source_key', '?')}  "
                     f"{reason.get('reason_code', '?')}: {message[:200] + ('…' if len(message) > 200 else '')}"))
    if status.quarantines:
        rows.append(("", f"(why and how to fix: reason.json next to each copy under {QUARANTINE_PREFIX})"))
    for index, key in enumerate(status.strays[:SHOWN_STRAYS]):
        rows.append(("Ignored" if index == 0 else "", key))
    if status.strays:
        more = len(status.strays) - SHOWN_STRAYS
        rows.append(("", (f"and {more} more; " if more > 0 else "") + "nothing reads these: labeled CSVs go "
                         f"under incoming/ ({follow_up('upload', 'FILE')}), unlabeled ones under batch/incoming/ "
                         f"({follow_up('score', 'FILE')})"))
    for index, (name, depth) in enumerate(sorted(status.queues.items())):
        rows.append(("Queues" if index == 0 else "", f"{name}: {depth} message{'s' if depth != 1 else ''}"))
    width = max(len(label) for label, _ in rows) + 2
    header = f"Loopline stack {status.stack_name} at {status.now.strftime('%Y-%m-%d %H:%M:%S')} UTC"
    return "\n".join([header, *(f"{label:<{width}}{text}" for label, text in rows)])


def latest_measurement_lines(report: dict[str, Any]) -> list[str]:
    """The last measurement against the alarm line, its label-free estimate, and the other metrics it recorded."""
    lines = []
    line = report.get("alarm_line")
    if line is not None:
        verdict = "BREACHED" if report.get("alarm_breached") else "within"
        lines.append(f"alarm line {report['metric']} {_num(line)}: {verdict}, "
                     f"{alarm_distance_text(report) or 'distance unknown'}")
    if report.get("estimated_value") is not None:
        trusted = (report.get("estimate") or {}).get("trusted")
        lines.append(f"estimated without labels {_num(report['estimated_value'])}"
                     f"{'' if trusted else ' (not to be trusted, see the monitoring report)'}")
    others = [f"{name} {_num(entry.get('value'))} (holdout {_num(entry.get('holdout'))})"
              for name, entry in sorted((report.get("metrics") or {}).items()) if name != report.get("metric")]
    if others:
        lines.append("also " + ", ".join(others))
    return lines


# ---------------------------------------------------------------------------------------------------- models
def gather_models(stack: StackClient) -> tuple[list[dict[str, Any]], dict[str, Any] | None, list[dict[str, Any]]]:
    """(manifest + evaluation per model version, oldest first; the champion pointer; the promotion history)."""
    pointer = _read_json_or_none(stack, CHAMPION_KEY)
    keys = stack.keys(MODELS_PREFIX)
    manifests = sorted(k for k in keys if k.endswith("/manifest.json"))
    evaluations = {k for k in keys if k.endswith("/evaluation.json")}
    models = []
    for key in manifests:
        manifest = dict(stack.read_json(key))
        evaluation_key = key.replace("manifest.json", "evaluation.json")
        manifest["evaluation"] = stack.read_json(evaluation_key) if evaluation_key in evaluations else None
        models.append(manifest)
    history = [stack.read_json(k) for k in sorted(stack.keys(HISTORY_PREFIX))]
    return models, pointer, history


def render_models(models: list[dict[str, Any]], pointer: dict[str, Any] | None,
                  history: list[dict[str, Any]]) -> str:
    """One line per model version; `*` marks the one serving."""
    if not models:
        return "no model versions yet"
    serving = pointer["version"] if pointer else None
    served = {h["version"] for h in history}
    header = ("", "VERSION", "REGISTERED", "ESTIMATOR", "METRIC", "CV", "HOLDOUT", "GATE")
    lines = [header]
    for manifest in reversed(models):  # newest first
        evaluation = manifest.get("evaluation")
        shadow = (evaluation or {}).get("shadow") or {}
        if evaluation is None:
            gate = "not gated yet"
        elif shadow.get("status") == "active":
            gate = (f"passed; in shadow since {str(shadow.get('started_at', ''))[:19]} (until "
                    f"{shadow.get('min_rows')} live labeled rows, at most until "
                    f"{str(shadow.get('deadline', ''))[:19]})")
        elif evaluation.get("promote") and shadow.get("status") == "promoted":
            gate = (f"passed; promoted from shadow by {shadow.get('decided_by')} (live "
                    f"{_num(shadow.get('shadow_live_score'))} vs {_num(shadow.get('champion_live_score'))})")
        elif evaluation.get("promote"):
            gate = "passed"
        else:
            gate = "rejected: " + "; ".join(evaluation.get("reasons", []))
        if manifest["version"] in served and manifest["version"] != serving:
            gate += " (served before)"
        canary = (pointer or {}).get("canary")
        if manifest["version"] == serving and canary:
            gate += " (" + canary_lines(canary, datetime.now(UTC))[0] + ")"
        lines.append((
            "*" if manifest["version"] == serving else "",
            manifest["version"],
            str(manifest.get("registered_at", ""))[:19].replace("T", " "),
            str(manifest.get("estimator", "?")),
            str(manifest.get("metric", "?")),
            _num(manifest.get("cv_score")),
            _num(manifest.get("holdout_score")),
            gate,
        ))
    widths = [max(len(row[i]) for row in lines) for i in range(len(header) - 1)]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
            for row in lines]
    return "\n".join(line.rstrip() for line in text)


_OPERATORS = {"LessThanThreshold": "<", "LessThanOrEqualToThreshold": "<=", "GreaterThanThreshold": ">",
              "GreaterThanOrEqualToThreshold": ">="}


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4f}"


def _when(timestamp: str | None, now: datetime) -> str:
    """'18:40:01 (3 min ago)' in UTC."""
    if not timestamp:
        return "?"
    moment = datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = max(0.0, (now - moment).total_seconds())
    if seconds < 120:
        ago = f"{seconds:.0f} s"
    else:
        ago = f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.0f} h"
    return f"{moment.astimezone(UTC).strftime('%H:%M:%S')} ({ago} ago)"


def _read_json_or_none(stack: StackClient, key: str) -> Any:
    try:
        return stack.read_json(key)
    except stack.s3.exceptions.NoSuchKey:
        return None
