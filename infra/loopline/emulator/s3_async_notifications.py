"""Gap: moto invokes the Lambda of an S3 notification inside the PutObject request; S3 delivers it
asynchronously. Deliver on a background thread so `put_object` returns at once (keys stay URL-encoded in the
event, as S3 sends them)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any
from unittest import mock

import moto.s3.notifications as s3_notifications

from loopline.emulator.background import run_in_background

_synchronous_invoke = s3_notifications._invoke_awslambda


def deliver_s3_notifications_asynchronously() -> AbstractContextManager[object]:
    """Patch moto's S3 -> Lambda notification delivery to run in the background."""

    def _invoke_awslambda(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        run_in_background("s3-notification", _synchronous_invoke, account_id, event_body, fn_arn, region_name)

    return mock.patch.object(s3_notifications, "_invoke_awslambda", _invoke_awslambda)
