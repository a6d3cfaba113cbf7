"""The stack's notifications as a subscriber sees them: an SQS queue subscribed to the notification topic."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from loopline.client import StackClient


class Inbox:
    """An SQS queue subscribed to the stack's notification topic."""

    def __init__(self, stack: StackClient) -> None:
        self.sqs = stack.client("sqs")
        self.url = self.sqs.create_queue(QueueName=f"{stack.stack_name}-inbox")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        stack.client("sns").subscribe(TopicArn=stack.outputs["NotificationTopicArn"], Protocol="sqs", Endpoint=arn)
        self.received: list[dict[str, Any]] = []

    def wait_for(self, event: str, *, timeout: float = 180,
                 where: Callable[[dict[str, Any]], bool] = lambda message: True) -> dict[str, Any]:
        """The first notification whose message's "event" (or CloudWatch's NewStateValue) is `event` (and whose
        message `where` accepts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for found in self.received:
                if _event(found) == event and where(found["message"]):
                    self.received.remove(found)
                    return found
            reply = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for message in reply.get("Messages", []):
                envelope = json.loads(message["Body"])  # SNS -> SQS: the SNS envelope
                self.received.append({"subject": envelope.get("Subject"), "message": json.loads(envelope["Message"])})
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        raise TimeoutError(f"no {event!r} notification within {timeout:.0f}s; received {self.received}")


def _event(notification: dict[str, Any]) -> str:
    message = notification["message"]
    return str(message.get("event") or f"alarm_{message.get('NewStateValue', '').lower()}")
