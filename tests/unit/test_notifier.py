"""Notifications: one small JSON message with a readable subject; never a reason for a step to fail."""

from __future__ import annotations

import json
from typing import Any

import boto3
from moto import mock_aws

from loopline_runtime.notifications import SUBJECT_LIMIT, Notifier, notification


def test_a_notification_is_a_small_json_document_under_a_readable_subject() -> None:
    # given / when
    subject, message = notification("promoted", "breast-cancer", "m-1 promoted (alarm)", model_version="m-1")

    # then
    assert subject == "Loopline breast-cancer: m-1 promoted (alarm)"
    assert json.loads(message) == {"event": "promoted", "pipeline": "breast-cancer", "model_version": "m-1"}


def test_a_long_subject_is_cut_to_what_sns_accepts() -> None:
    subject, _ = notification("rejected", "p" * 40, "challenger " + "m" * 100 + " rejected")
    assert len(subject) == SUBJECT_LIMIT and subject.endswith("…")


def test_batch_scoring_finished_arrives_in_a_subscribed_queue() -> None:
    # given a topic with an SQS queue subscribed, as a user's integration would
    with mock_aws():
        sns, sqs = boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="loopline-notifications")["TopicArn"]
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)

        # when batch scoring reports its end
        Notifier("churn", topic, sns).batch_scoring_finished(status="SUCCEEDED", rows=1_000_000,
                                                             output="scores/run-1/", model_version="m-1")

        # then one message arrives, with its subject and a small JSON body
        [received] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
        envelope = json.loads(received["Body"])
        assert envelope["Subject"] == "Loopline churn: batch scoring SUCCEEDED, 1,000,000 rows"
        body = json.loads(envelope["Message"])
        assert body["event"] == "batch_scoring_finished" and body["rows"] == 1_000_000


def test_a_notification_that_cannot_be_sent_does_not_raise() -> None:
    # given a client whose publish fails, and a stack without a topic
    class Failing:
        def publish(self, **_: Any) -> dict[str, Any]:
            raise RuntimeError("throttled")

    # when / then nothing is raised, and nothing is reported as sent
    assert Notifier("p", "arn:aws:sns:us-east-1:1:t", Failing()).rejected("m-1", ["r"]) is None
    assert Notifier("p", None, Failing()).promoted({"version": "m-1", "reason": "alarm"}) is None
