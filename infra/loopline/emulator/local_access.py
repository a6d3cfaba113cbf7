"""What a client of the local emulator needs: its credentials (moto accepts any, botocore insists on some), a
free port to serve on, and which Host headers name this machine."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import boto3

DUMMY_SECRET = "testing"
# as environment variables (a worker process, a handler imported in this process)
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": DUMMY_SECRET,
    "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET,
    "AWS_SESSION_TOKEN": DUMMY_SECRET,
}


def local_session(region: str) -> boto3.Session:
    """A boto3 session with the emulator's credentials (never the user's profile)."""
    import boto3  # here: the benchmarks' children import this module and time boto3's import themselves

    return boto3.Session(region_name=region, aws_access_key_id=DUMMY_SECRET, aws_secret_access_key=DUMMY_SECRET)


def is_local_host(host: str | None) -> bool:
    """Whether a request's Host header names this machine: 127.0.0.1, localhost, [::1] or a *.localhost name, with
    any port. A page on another site that rebinds its DNS name to 127.0.0.1 sends its own name: refused."""
    if not host:
        return False
    name = host.strip().lower()
    if name.startswith("["):  # [::1]:port
        return name.split("]", 1)[0] == "[::1"
    name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    return name in ("127.0.0.1", "localhost") or name.endswith(".localhost")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a local AWS endpoint or API)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
