"""Gap: moto invokes the Lambda of an S3 notification inside the PutObject request; S3 delivers it
asynchronously. Deliver on a background thread so `put_object` returns at once (keys stay URL-encoded in the
event, as S3 sends them)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from typing import Any
from unittest import mock

import moto.s3.notifications as s3_notifications

from loopline.emulator.background import run_in_background
from loopline.emulator.on_failure_destinations import invoke_asynchronously


def deliver_s3_notifications_asynchronously() -> AbstractContextManager[object]:
    """Patch moto's S3 -> Lambda notification delivery to run in the background."""

    def _invoke_awslambda(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        from moto.awslambda.utils import get_backend

        function = get_backend(account_id, region_name).get_function(fn_arn)
        run_in_background("s3-notification", invoke_asynchronously, function, json.dumps(event_body))

    return mock.patch.object(s3_notifications, "_invoke_awslambda", _invoke_awslambda)
