"""Notifications: one small JSON message with a readable subject per event, on the stack's SNS topic.

The evaluate function publishes what it decides (promoted, with who approved, rejected with reasons) and the approval
requests (what to run; never the task token, which stays in the execution's history), the training state machine
publishes when a step fails, the quality alarm's own actions
publish its state changes, and code finishing work elsewhere (batch scoring) calls `Notifier.publish` too.
A notification that cannot be sent is logged and never changes the outcome it reports.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

NOTIFICATION_TOPIC_ENV = "NOTIFICATION_TOPIC_ARN"
SUBJECT_LIMIT = 100  # SNS refuses longer subjects

PROMOTED = "promoted"
APPROVAL_REQUESTED = "approval_requested"
REJECTED = "rejected"
BATCH_SCORING_FINISHED = "batch_scoring_finished"
QUARANTINED = "quarantined"

logger = logging.getLogger(__name__)


def notification(event: str, pipeline: str, summary: str, **details: Any) -> tuple[str, str]:
    """(subject, message): subject `Loopline <pipeline>: <summary>`, message {"event", "pipeline", **details}."""
    subject = f"Loopline {pipeline}: {summary}"
    if len(subject) > SUBJECT_LIMIT:
        subject = subject[: SUBJECT_LIMIT - 1] + "…"
    return subject, json.dumps({"event": event, "pipeline": pipeline, **details}, sort_keys=True, default=str)


class Notifier:
    """Publishes notifications for one pipeline to one topic (none configured: nothing is sent)."""

    def __init__(self, pipeline: str, topic_arn: str | None, client: Any = None) -> None:
        self.pipeline = pipeline
        self.topic_arn = topic_arn
        self._client = client

    @classmethod
    def from_env(cls, pipeline: str) -> Notifier:
        """The topic named by the function's environment (NOTIFICATION_TOPIC_ARN)."""
        return cls(os.environ.get("PIPELINE_NAME", pipeline), os.environ.get(NOTIFICATION_TOPIC_ENV))

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # only when something is published

            self._client = boto3.client("sns")
        return self._client

    def publish(self, event: str, summary: str, **details: Any) -> str | None:
        """Send one notification; returns its message id, or None (no topic, or it could not be sent)."""
        if not self.topic_arn:
            return None
        subject, message = notification(event, self.pipeline, summary, **details)
        try:
            return str(self.client.publish(TopicArn=self.topic_arn, Subject=subject, Message=message)["MessageId"])
        except Exception as exc:  # a notification never changes the outcome it reports
            logger.warning("notification %s not sent: %s", event, exc)
            return None

    def promoted(self, record: dict[str, Any]) -> str | None:
        return self.publish(PROMOTED, f"{record['version']} promoted ({record.get('reason')})",
                            **{k: v for k, v in record.items() if k != "version"}, model_version=record["version"])

    def approval_requested(self, request: dict[str, Any]) -> str | None:
        """What a person must decide and the commands to run (the caller leaves the task token out)."""
        if "task_token" in request:
            raise ValueError("an approval request is published without its task token")
        return self.publish(APPROVAL_REQUESTED, f"approve or reject {request.get('model_version')}", **request)

    def rejected(self, model_version: str, reasons: list[str], **details: Any) -> str | None:
        return self.publish(REJECTED, f"challenger {model_version} rejected", model_version=model_version,
                            reasons=reasons, **details)

    def quarantined(self, reason: dict[str, Any]) -> str | None:
        """For a rejected upload: `Loopline <pipeline>: incoming/x.csv quarantined (missing_target)` + reason.json."""
        return self.publish(QUARANTINED, f"{reason['source_key']} quarantined ({reason['reason_code']})", **reason)

    def batch_scoring_finished(self, *, status: str, rows: int, output: str, model_version: str,
                               execution_arn: str | None = None) -> str | None:
        """For batch scoring: `Loopline <pipeline>: batch scoring SUCCEEDED, 1,000,000 rows`."""
        return self.publish(BATCH_SCORING_FINISHED, f"batch scoring {status}, {rows:,} rows", status=status,
                            rows=rows, output=output, model_version=model_version, execution_arn=execution_arn)

    def batch_scoring_stopped(self, *, status: str, error: str, reason: str, output: str,
                              execution_arn: str | None = None) -> str | None:
        """For a batch run that ended before its predictions: `Loopline <pipeline>: batch scoring rejected`."""
        return self.publish(BATCH_SCORING_FINISHED, f"batch scoring {status}: {error}", status=status, error=error,
                            reason=reason, output=output, execution_arn=execution_arn)
