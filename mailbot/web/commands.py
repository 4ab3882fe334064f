"""The ``mailbot web`` commands, kept here so that the CLI stays free of the web's imports and
works without the ``web`` extra installed until one of these is asked for."""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING

from mailbot.config import Settings
from mailbot.errors import UsageError
from mailbot.web.settings import parse_listen

if TYPE_CHECKING:
    from mailbot.web.server import WebThread

EXTRA = "the case view needs the 'web' extra: pip install 'mailbot[web]'"


def hash_password_command() -> int:
    """Read a password (twice from a terminal, once from a pipe); print its argon2 hash."""
    try:
        from mailbot.web.access import hash_password
    except ImportError:
        raise UsageError(EXTRA) from None
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise UsageError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        raise UsageError("a password of at least 12 characters, please")
    print(hash_password(password))
    return 0


def web_command(settings: Settings, listen: str | None) -> int:
    try:
        from mailbot.web.server import serve
    except ImportError:
        raise UsageError(EXTRA) from None
    if listen:
        host, port = parse_listen("--listen", listen)
    else:
        host, port = settings.web.host, settings.web.port
    serve(settings, host, port)
    return 0


def web_thread(settings: Settings) -> WebThread:
    try:
        from mailbot.web.server import WebThread
    except ImportError:
        raise UsageError(EXTRA) from None
    thread = WebThread(settings, settings.web.host, settings.web.port)
    thread.start()
    return thread
