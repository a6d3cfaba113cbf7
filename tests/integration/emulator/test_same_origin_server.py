"""The local AWS endpoint refuses browsers: a web page on another origin cannot read or write the local bucket."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest

FOREIGN_ORIGIN = "http://attacker.example"


def _request(url: str, method: str, headers: dict[str, str], data: bytes | None = None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


@pytest.fixture
def bucket(aws: Callable[[str], Any]) -> str:
    name = f"cors-{uuid.uuid4().hex[:8]}"
    aws("s3").create_bucket(Bucket=name)
    return name


def test_a_preflight_from_a_foreign_origin_is_refused_without_cors_headers(
    emulator: dict[str, Any], bucket: str
) -> None:
    # given a page on another origin asking whether it may PUT into the local bucket
    headers = {"Origin": FOREIGN_ORIGIN, "Access-Control-Request-Method": "PUT"}

    # when the browser sends the preflight
    status, answer = _request(f"{emulator['endpoint']}/{bucket}/x.csv", "OPTIONS", headers)

    # then it is refused and nothing tells the browser the write is allowed
    assert status == 403
    assert not [name for name in answer if name.lower().startswith("access-control-")]


def test_a_cross_origin_write_is_refused_and_writes_nothing(
    emulator: dict[str, Any], bucket: str, aws: Callable[[str], Any]
) -> None:
    # given a simple cross-origin request (no preflight) trying to put an object
    url = f"{emulator['endpoint']}/{bucket}/incoming/evil.csv"

    # when it arrives
    status, _ = _request(url, "PUT", {"Origin": FOREIGN_ORIGIN, "Content-Type": "text/plain"}, b"a,b\n1,2\n")

    # then it is refused and the bucket stays empty
    assert status == 403
    assert aws("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_aws_clients_are_unaffected(aws: Callable[[str], Any], bucket: str) -> None:
    # given / when an SDK writes and reads (SDKs send no Origin)
    aws("s3").put_object(Bucket=bucket, Key="incoming/ok.csv", Body=b"a,b\n1,2\n")

    # then it works as before
    assert aws("s3").get_object(Bucket=bucket, Key="incoming/ok.csv")["Body"].read() == b"a,b\n1,2\n"


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:5000", "127.0.0.1.nip.io"])
def test_a_request_naming_a_foreign_host_is_refused_and_writes_nothing(
    emulator: dict[str, Any], bucket: str, aws: Callable[[str], Any], host: str,
) -> None:
    # given a page whose DNS name was rebound to 127.0.0.1: its requests are same-origin, with its own Host
    url = f"{emulator['endpoint']}/{bucket}/incoming/evil.csv"

    # when it tries to put an object
    status, _ = _request(url, "PUT", {"Host": host, "Content-Type": "text/plain"}, b"a,b\n1,2\n")

    # then it is refused and the bucket stays empty
    assert status == 403
    assert aws("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
