"""Gap: moto invokes the Lambda of an S3 notification inside the PutObject request; S3 delivers it
asynchronously. Deliver on a background thread so `put_object` returns at once (keys stay URL-encoded in the
event, as S3 sends them), and only when the function's resource policy lets S3 invoke it from this bucket (a
Lambda permission for `s3.amazonaws.com` with the bucket as SourceArn), as S3 does. moto's event records also lack
the object's `versionId` (which S3 sends for a versioned bucket: a reader of the event reads exactly that
version, never a newer upload to the same key) and `sequencer`; both are added."""

from __future__ import annotations

import json
import sys
from contextlib import AbstractContextManager
from typing import Any
from unittest import mock

import moto.s3.notifications as s3_notifications

from loopline.emulator.background import run_in_background
from loopline.emulator.iam_enforcement import service_may_invoke
from loopline.emulator.on_failure_destinations import invoke_asynchronously

_moto_s3_event = s3_notifications._get_s3_event


def _s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, list[dict[str, Any]]]:
    event = _moto_s3_event(event_name, bucket, key, notification_id)
    described = event["Records"][0]["s3"]["object"]
    if bucket.is_versioned and key.version_id not in (None, "null"):
        described["versionId"] = key.version_id
    described["sequencer"] = f"{int(key.last_modified.timestamp() * 1_000_000):016X}"
    return event


def add_version_ids_to_s3_events() -> AbstractContextManager[object]:
    """Patch moto's S3 event record to carry versionId (versioned buckets) and sequencer, as S3's does."""
    return mock.patch.object(s3_notifications, "_get_s3_event", _s3_event)


def deliver_s3_notifications_asynchronously() -> AbstractContextManager[object]:
    """Patch moto's S3 -> Lambda notification delivery to run in the background."""

    def _invoke_awslambda(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        from moto.awslambda.utils import get_backend

        function = get_backend(account_id, region_name).get_function(fn_arn)
        bucket_arn = str(event_body["Records"][0]["s3"]["bucket"]["arn"])
        if not service_may_invoke(function, "s3.amazonaws.com", bucket_arn, account_id):
            print(f"loopline: S3 may not invoke {function.function_name} for {bucket_arn} (no Lambda permission); "
                  "the event is dropped, as S3 does", file=sys.stderr)
            return
        run_in_background("s3-notification", invoke_asynchronously, function, json.dumps(event_body))

    return mock.patch.object(s3_notifications, "_invoke_awslambda", _invoke_awslambda)
