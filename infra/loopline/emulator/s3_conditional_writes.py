"""Gap: moto checks a PutObject's If-None-Match / If-Match and then writes, with nothing in between held, so two
concurrent conditional writes to one key can both succeed. S3 makes the check and the write one step (one
succeeds, the other gets 412 PreconditionFailed). Serialise conditional writes so the check and write are atomic.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from typing import Any
from unittest import mock

from moto.s3.responses import S3Response

_unconditional_put_object = S3Response.put_object
_lock = threading.Lock()


def make_conditional_writes_atomic() -> AbstractContextManager[object]:
    """Patch S3Response.put_object: a write carrying If-Match or If-None-Match runs under one lock."""

    def put_object(self: S3Response) -> Any:
        if self.headers.get("If-Match") or self.headers.get("If-None-Match"):
            with _lock:
                return _unconditional_put_object(self)
        return _unconditional_put_object(self)

    return mock.patch.object(S3Response, "put_object", put_object)
