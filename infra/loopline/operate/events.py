"""`loopline events`: print the stack's notifications as they arrive.

The notification topic delivers to subscribers only; this command subscribes a queue of its own (created for the
session, with a policy that lets only this topic send to it), long-polls it and prints one line per notification,
then unsubscribes and deletes the queue when it stops (Ctrl+C, --count or --timeout).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from loopline.client import StackClient

LONG_POLL_SECONDS = 2  # short enough to notice --timeout and Ctrl+C promptly


@contextmanager
def subscribed_queue(stack: StackClient) -> Iterator[str]:
    """A fresh SQS queue subscribed to the stack's notification topic (raw delivery); removed afterwards."""
    topic_arn = stack.outputs["NotificationTopicArn"]
    sqs, sns = stack.client("sqs"), stack.client("sns")
    queue_url = sqs.create_queue(QueueName=f"loopline-events-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    subscription = None
    try:
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}}]}
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
        subscription = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn,
                                     Attributes={"RawMessageDelivery": "false"},
                                     ReturnSubscriptionArn=True)["SubscriptionArn"]
        yield queue_url
    finally:
        if subscription:
            sns.unsubscribe(SubscriptionArn=subscription)
        sqs.delete_queue(QueueUrl=queue_url)


def notifications(stack: StackClient, queue_url: str, *, timeout: float | None = None) -> Iterator[dict[str, Any]]:
    """Each SNS envelope ({Subject, Message, Timestamp, ...}) as it arrives, until `timeout` seconds pass."""
    sqs = stack.client("sqs")
    deadline = None if timeout is None else time.monotonic() + timeout
    while deadline is None or time.monotonic() < deadline:
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=LONG_POLL_SECONDS)
        for message in received.get("Messages", []):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            yield json.loads(message["Body"])


def render_notification(envelope: dict[str, Any]) -> str:
    """`14:02:11 CET  Loopline wine: data.csv quarantined (missing_target)` and the message's details, one line."""
    moment = datetime.fromisoformat(str(envelope.get("Timestamp", "")).replace("Z", "+00:00")).astimezone()
    subject = envelope.get("Subject") or "(no subject)"
    try:
        message = json.loads(envelope.get("Message", ""))
    except (TypeError, json.JSONDecodeError):
        message = envelope.get("Message")
    details = ""
    if isinstance(message, dict):
        shown = {k: v for k, v in message.items() if k not in ("pipeline", "task_token") and v not in (None, "")}
        details = "  " + json.dumps(shown, sort_keys=True, default=str)
    elif message:
        details = f"  {message}"
    return f"{moment.strftime('%H:%M:%S %Z')}  {subject}{details}"


def follow_events(stack: StackClient, show: Callable[[str], None], *, count: int | None = None,
                  timeout: float | None = None, on_ready: Callable[[], None] | None = None) -> int:
    """Print notifications until `count` arrived or `timeout` passed; returns how many were printed."""
    printed = 0
    with subscribed_queue(stack) as queue_url:
        if on_ready:
            on_ready()
        for envelope in notifications(stack, queue_url, timeout=timeout):
            show(render_notification(envelope))
            printed += 1
            if count is not None and printed >= count:
                break
    return printed
