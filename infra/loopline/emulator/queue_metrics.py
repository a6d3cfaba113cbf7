"""Gap: moto's SQS publishes no CloudWatch metrics, so an alarm on a queue's depth (the template's on-failure queue
alarms) never leaves INSUFFICIENT_DATA and an event that failed after its retries is seen by nobody.

SQS publishes `AWS/SQS` metrics per queue (dimension `QueueName`) every minute; here every `interval_seconds`
(`loopline local up --alarm-tick`, the same local acceleration as alarm evaluation): the visible, in-flight and
delayed message counts and the age of the oldest message. They go through CloudWatch's PutMetricData, so the alarms
on them are evaluated as any other.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends
from moto.sqs.models import sqs_backends

from loopline.emulator.background import ticking

NAMESPACE = "AWS/SQS"


def queue_datapoints(queue: Any) -> list[dict[str, Any]]:
    """The metric data SQS publishes for one queue now (PutMetricData's MetricData shape; no Timestamp: moto stamps
    the datum with its own clock, as it does a request without one)."""
    dimensions = [{"Name": "QueueName", "Value": queue.name}]
    sent = [m.sent_timestamp for m in queue._messages if getattr(m, "sent_timestamp", None)]
    oldest_seconds = max(0.0, time.time() - min(sent) / 1000) if sent else 0.0
    values = {
        "ApproximateNumberOfMessagesVisible": (float(queue.approximate_number_of_messages), "Count"),
        "ApproximateNumberOfMessagesNotVisible": (float(queue.approximate_number_of_messages_not_visible), "Count"),
        "ApproximateNumberOfMessagesDelayed": (float(queue.approximate_number_of_messages_delayed), "Count"),
        "ApproximateAgeOfOldestMessage": (round(oldest_seconds), "Seconds"),
    }
    return [{"MetricName": name, "Dimensions": dimensions, "Value": value, "Unit": unit}
            for name, (value, unit) in values.items()]


def publish_queue_metrics() -> None:
    """Publish every queue's metrics into its account and region's CloudWatch."""
    for account_id, regions in list(sqs_backends.items()):
        for region, backend in list(regions.items()):
            data = [d for queue in list(backend.queues.values()) for d in queue_datapoints(queue)]
            if data:
                cloudwatch_backends[account_id][region].put_metric_data(NAMESPACE, data)


@contextmanager
def queue_metrics_published(interval_seconds: float) -> Iterator[None]:
    """Publish the queues' metrics every `interval_seconds` until the context exits."""
    with ticking("queue metrics", interval_seconds, publish_queue_metrics):
        yield
