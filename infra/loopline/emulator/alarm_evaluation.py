"""Gap: moto's CloudWatch never evaluates metric alarms. Evaluate them as CloudWatch does.

`evaluate_alarm` is the pure rule (datapoints + definition + now + current state -> new state and reason);
`AlarmEvaluator` is the moto plumbing: it reads moto's metric data, sets the alarm state in moto (so
describe_alarms shows it) and emits the "CloudWatch Alarm State Change" event on every change. It runs after
each PutMetricData and on a timer, because missing data also changes state as time passes.
"""

from __future__ import annotations

import json
import math
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

from moto.cloudwatch.models import Alarm, CloudWatchBackend, MetricAggregatedDatum, MetricDatum, cloudwatch_backends

from loopline.emulator.alarm_state_change_events import AlarmState, emit_alarm_state_change
from loopline.emulator.background import ticking

OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"

_COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}


@dataclass(frozen=True)
class Datapoint:
    """One published value, or a published statistic set (sum/min/max over sample_count values)."""

    timestamp: datetime
    total: float
    sample_count: float = 1.0
    minimum: float | None = None
    maximum: float | None = None
    values: tuple[float, ...] = ()  # the raw values, for percentiles

    @classmethod
    def single(cls, timestamp: datetime, value: float) -> Datapoint:
        return cls(timestamp, value, 1.0, value, value, (value,))


@dataclass(frozen=True)
class AlarmDefinition:
    """The parts of a metric alarm that decide its state."""

    statistic: str  # Average | Sum | Minimum | Maximum | SampleCount | pNN(.N)
    period_seconds: int
    evaluation_periods: int
    threshold: float
    comparison_operator: str
    datapoints_to_alarm: int | None = None  # M of N; None means N
    treat_missing_data: str = "missing"  # missing | notBreaching | breaching | ignore


@dataclass(frozen=True)
class Evaluation:
    """The outcome: the state the alarm should be in, and why (CloudWatch's StateReason/StateReasonData)."""

    state: str
    reason: str
    reason_data: dict[str, Any] = field(default_factory=dict)


def evaluate_alarm(
    datapoints: Iterable[Datapoint], alarm: AlarmDefinition, now: datetime, current_state: str
) -> Evaluation:
    """Decide a metric alarm's state at `now` like CloudWatch.

    The evaluation range is the `evaluation_periods` (N) most recent periods, aligned to multiples of the period
    since the epoch; the newest is the one containing `now`. Each period's value is the statistic over the
    datapoints in it. The alarm is ALARM when at least M (`datapoints_to_alarm`, default N) periods breach the
    threshold, where missing periods count as breaching with `breaching`, as good with `notBreaching`, and are
    left out with `missing`/`ignore`. When every period is missing: `missing` -> INSUFFICIENT_DATA,
    `ignore` -> `current_state` is kept, `breaching` -> ALARM, `notBreaching` -> OK. Otherwise OK.

    Raises:
        ValueError: an unknown statistic or comparison operator (e.g. anomaly-detection bands).
    """
    if alarm.comparison_operator not in _COMPARISONS:
        raise ValueError(f"unsupported ComparisonOperator {alarm.comparison_operator}")
    breaches, operator_text = _COMPARISONS[alarm.comparison_operator]
    periods = _period_starts(now, alarm.period_seconds, alarm.evaluation_periods)
    buckets: dict[datetime, list[Datapoint]] = {start: [] for start in periods}
    for point in datapoints:
        start = _period_start(point.timestamp, alarm.period_seconds)
        if start in buckets:
            buckets[start].append(point)
    values = {start: statistic(alarm.statistic, points) for start, points in buckets.items() if points}
    required = alarm.datapoints_to_alarm or alarm.evaluation_periods
    reason_data = _reason_data(alarm, now, periods, buckets, values)

    if not values:
        state = {"missing": INSUFFICIENT_DATA, "ignore": current_state, "breaching": ALARM}.get(
            alarm.treat_missing_data, OK
        )
        return Evaluation(state, f"Insufficient Data: {alarm.evaluation_periods} datapoints were unknown.", reason_data)

    missing = alarm.evaluation_periods - len(values)
    breaching = sum(1 for v in values.values() if breaches(v, alarm.threshold))
    if alarm.treat_missing_data == "breaching":
        breaching += missing
    state = ALARM if breaching >= required else OK
    recent = [values[start] for start in reversed(periods) if start in values]
    shown = ", ".join(f"{v:g} ({start:%d/%m/%y %H:%M:%S})" for start, v in reversed(values.items()))
    counted = breaching if state == ALARM else len(values) - breaching
    verb = "was" if counted == 1 else "were"
    negation = "" if state == ALARM else "not "
    reason = (
        f"Threshold Crossed: {counted} out of the last {alarm.evaluation_periods} datapoints [{shown}] {verb} "
        f"{negation}{operator_text} the threshold ({alarm.threshold:g}) (minimum {required} datapoint"
        f"{'s' if required != 1 else ''} for {OK if state == ALARM else ALARM} -> {state} transition)."
    )
    reason_data["recentDatapoints"] = recent
    return Evaluation(state, reason, reason_data)


def statistic(name: str, points: Sequence[Datapoint]) -> float:
    """CloudWatch statistic `name` over the datapoints of one period."""
    count = sum(p.sample_count for p in points)
    if name == "SampleCount":
        return count
    if name == "Sum":
        return sum(p.total for p in points)
    if name == "Average":
        return sum(p.total for p in points) / count
    if name == "Minimum":
        return min(p.minimum if p.minimum is not None else p.total / p.sample_count for p in points)
    if name == "Maximum":
        return max(p.maximum if p.maximum is not None else p.total / p.sample_count for p in points)
    if name.startswith("p"):
        values = sorted(v for p in points for v in p.values)
        if not values:
            raise ValueError(f"percentile {name} needs raw values, not statistic sets")
        rank = max(0, math.ceil(float(name[1:]) / 100 * len(values)) - 1)
        return values[rank]
    raise ValueError(f"unsupported statistic {name}")


def _period_start(timestamp: datetime, period_seconds: int) -> datetime:
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    seconds = int(timestamp.timestamp()) // period_seconds * period_seconds
    return datetime.fromtimestamp(seconds, UTC)


def _period_starts(now: datetime, period_seconds: int, count: int) -> list[datetime]:
    newest = _period_start(now, period_seconds)
    return [newest - timedelta(seconds=period_seconds * i) for i in reversed(range(count))]


def _reason_data(
    alarm: AlarmDefinition,
    now: datetime,
    periods: list[datetime],
    buckets: dict[datetime, list[Datapoint]],
    values: dict[datetime, float],
) -> dict[str, Any]:
    return {
        "version": "1.0",
        "queryDate": _iso(now),
        "startDate": _iso(periods[0]),
        "statistic": alarm.statistic,
        "period": alarm.period_seconds,
        "recentDatapoints": [],
        "threshold": alarm.threshold,
        "evaluatedDatapoints": [
            {"timestamp": _iso(start), "sampleCount": sum(p.sample_count for p in buckets[start]), "value": value}
            for start, value in sorted(values.items(), reverse=True)
        ],
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


# ---------------------------------------------------------------- moto plumbing


def definition_of(alarm: Alarm) -> AlarmDefinition | None:
    """The evaluable definition of a moto alarm; None for metric-math or anomaly alarms (not evaluated)."""
    if alarm.metric_data_queries or alarm.comparison_operator not in _COMPARISONS or not alarm.metric_name:
        return None
    return AlarmDefinition(
        statistic=alarm.statistic or alarm.extended_statistic or "Average",
        period_seconds=int(alarm.period),
        evaluation_periods=int(alarm.evaluation_periods),
        threshold=float(alarm.threshold),
        comparison_operator=alarm.comparison_operator,
        datapoints_to_alarm=int(alarm.datapoints_to_alarm) if alarm.datapoints_to_alarm else None,
        treat_missing_data=alarm.treat_missing_data or "missing",
    )


def datapoints_of(backend: CloudWatchBackend, alarm: Alarm) -> list[Datapoint]:
    """The alarm metric's datapoints in moto (same namespace, name and exactly the same dimensions)."""
    wanted = {(d.name, d.value) for d in alarm.dimensions}
    points = []
    for datum in list(backend.metric_data):
        if datum.namespace != alarm.namespace or datum.name != alarm.metric_name:
            continue
        if {(d.name, d.value) for d in datum.dimensions} != wanted:
            continue
        timestamp = _as_datetime(datum.timestamp)
        if isinstance(datum, MetricDatum):
            points.append(Datapoint.single(timestamp, float(datum.value)))
        elif isinstance(datum, MetricAggregatedDatum):
            points.append(Datapoint(timestamp, datum.sum, datum.sample_count, datum.min, datum.max))
    return points


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class AlarmEvaluator:
    """Evaluates every metric alarm of moto's CloudWatch backends and records state changes."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._lock = threading.Lock()

    def evaluate_all(self, metric_names: set[str] | None = None) -> None:
        """Evaluate all alarms (or only those on `metric_names`) in every account/region backend."""
        with self._lock:
            for account_id, regions in list(cloudwatch_backends.items()):
                for region, backend in list(regions.items()):
                    for alarm in list(backend.alarms.values()):
                        if metric_names is None or alarm.metric_name in metric_names:
                            self._evaluate(account_id, region, backend, alarm)

    def _evaluate(self, account_id: str, region: str, backend: CloudWatchBackend, alarm: Alarm) -> None:
        definition = definition_of(alarm)
        if definition is None:
            return
        outcome = evaluate_alarm(datapoints_of(backend, alarm), definition, self._clock(), alarm.state_value)
        if outcome.state == alarm.state_value:
            return
        previous = AlarmState(
            alarm.state_value, alarm.state_reason, alarm.state_reason_data, alarm.state_updated_timestamp
        )
        alarm.update_state(outcome.reason, json.dumps(outcome.reason_data), outcome.state)
        emit_alarm_state_change(account_id, region, alarm, previous)

    @contextmanager
    def installed(self, tick_seconds: float) -> Iterator[None]:
        """Evaluate after every PutMetricData and every `tick_seconds` until the context exits."""
        original = CloudWatchBackend.put_metric_data
        evaluator = self

        def put_metric_data(self: CloudWatchBackend, namespace: str, metric_data: list[dict[str, Any]]) -> None:
            original(self, namespace, metric_data)
            try:
                evaluator.evaluate_all({m["MetricName"] for m in metric_data})
            except Exception as exc:  # evaluation must never fail the caller's PutMetricData
                print(f"loopline: alarm evaluation failed: {exc!r}", file=sys.stderr)

        with mock.patch.object(CloudWatchBackend, "put_metric_data", put_metric_data), \
                ticking("alarm evaluation", tick_seconds, self.evaluate_all):
            yield
