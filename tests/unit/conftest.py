"""Unit tests are offline: every test under tests/unit runs with sockets disabled (pytest-socket).

A unit test that truly needs a socket says so with `@pytest.mark.enable_socket`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytest_socket


@pytest.fixture(autouse=True)
def _no_network(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("enable_socket"):
        yield
        return
    # unix sockets stay allowed: asyncio's self-pipe and local IPC are not network access
    pytest_socket.disable_socket(allow_unix_socket=True)
    try:
        yield
    finally:
        pytest_socket.enable_socket()
