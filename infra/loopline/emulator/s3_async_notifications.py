"""Gap: moto invokes the Lambda of an S3 notification inside the PutObject request; S3 delivers it
asynchronously. Deliver on a background thread so `put_object` returns at once (keys stay URL-encoded in the
event, as S3 sends them), and only when the function's resource policy lets S3 invoke it from this bucket (a
Lambda permission for `s3.amazonaws.com` with the bucket as SourceArn), as S3 does."""

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
