"""S3 conditional writes on the emulator: of concurrent writers with the same precondition, exactly one wins."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

WRITERS = 16


def _race(aws: Callable[[str], Any], bucket: str, **condition: str) -> list[str]:
    s3 = aws("s3")

    def write(index: int) -> str:
        try:
            s3.put_object(Bucket=bucket, Key="lease.json", Body=f"writer {index}".encode(), **condition)
            return "won"
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])

    with ThreadPoolExecutor(WRITERS) as pool:
        return list(pool.map(write, range(WRITERS)))


def test_one_of_many_concurrent_create_only_writes_succeeds(aws: Callable[[str], Any]) -> None:
    # given a bucket without the key
    bucket = f"race-{uuid.uuid4().hex[:8]}"
    aws("s3").create_bucket(Bucket=bucket)

    # when 16 writers create it at once with If-None-Match: *
    outcomes = _race(aws, bucket, IfNoneMatch="*")

    # then one succeeds and every other gets 412 PreconditionFailed
    assert outcomes.count("won") == 1
    assert set(outcomes) == {"won", "PreconditionFailed"}


def test_one_of_many_concurrent_if_match_writes_succeeds(aws: Callable[[str], Any]) -> None:
    # given an object and its ETag as all writers read it
    bucket = f"race-{uuid.uuid4().hex[:8]}"
    aws("s3").create_bucket(Bucket=bucket)
    etag = aws("s3").put_object(Bucket=bucket, Key="lease.json", Body=b"first")["ETag"]

    # when 16 writers replace it at once with If-Match on that ETag
    outcomes = _race(aws, bucket, IfMatch=etag)

    # then one succeeds: the others find the object changed
    assert outcomes.count("won") == 1
    assert set(outcomes) == {"won", "PreconditionFailed"}
