"""Real servers for the test suite, started on loopback in temporary directories.

Under ``MAILBOT_TEST_REQUIRE_SERVERS=1`` (CI) a missing server binary fails the test; otherwise the
test is skipped with the reason.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest


def servers_required() -> bool:
    return os.environ.get("MAILBOT_TEST_REQUIRE_SERVERS") == "1"


def server_missing(reason: str) -> NoReturn:
    if servers_required():
        pytest.fail(f"{reason} (MAILBOT_TEST_REQUIRE_SERVERS=1)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
