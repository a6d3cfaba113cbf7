"""Unit tests cannot reach the network: a test that silently called AWS would not be a unit test."""

from __future__ import annotations

import socket

import pytest
from pytest_socket import SocketBlockedError


def test_unit_tests_run_with_sockets_disabled() -> None:
    # given the unit-test configuration (tests/unit/conftest.py)

    # when / then opening a network socket fails at once
    with pytest.raises(SocketBlockedError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
