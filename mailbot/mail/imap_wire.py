"""Small pieces of the IMAP edge that need no session: reading imaplib's errors and answers,
taming its debug trace, and waiting on a socket or a stop event."""

from __future__ import annotations

import logging
import re
import select
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

_BYTES_REPR = re.compile(r"""b(['"])(.*)\1""", re.DOTALL)


def reason_of(exc: BaseException) -> str:
    """The error's text; imaplib wraps server replies as bytes, shown here without b'...'."""
    text = str(exc) or type(exc).__name__
    quoted = _BYTES_REPR.fullmatch(text)
    return quoted.group(2) if quoted else text


# RFC 5530 codes that say "later", not "wrong credentials".
TEMPORARY_CODES = ("[UNAVAILABLE]", "[INUSE]", "[SERVERBUG]", "[LIMIT]")


def temporary_refusal(exc: BaseException) -> bool:
    return any(code in str(exc).upper() for code in TEMPORARY_CODES)


def quiet_imaplib(client: Any) -> None:
    """Undo imapclient's imaplib debug level unless its protocol trace is actually logged.

    imapclient sets imaplib's debug level to 5 to send imaplib's trace to the
    ``imapclient.imaplib`` logger; at that level imaplib formats every response with %r,
    message bytes included, whether or not the logger wants it: most of a FETCH's CPU time and
    three times a large message's size in memory (the benchmark's 25 MB message).
    """
    if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
        client._imap.debug = 0


def as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:  # only if normalise_times was left on; RFC 3501 dates carry a zone
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def announces_new_mail(responses: Sequence[Any]) -> bool:
    # Only "* n EXISTS": Dovecot's "* OK Still here" keepalive and flag changes are no news.
    return any(isinstance(r, tuple) and len(r) > 1 and r[1] == b"EXISTS" for r in responses)


def readable(sock: Any, timeout: float) -> bool:
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
    return bool(poller.poll(timeout * 1000))


def stopped(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


def wait(stop: threading.Event | None, seconds: float) -> None:
    """Sleep; with a stop event, wake as soon as it is set."""
    if seconds <= 0:
        return
    if stop is not None:
        stop.wait(seconds)
    else:
        time.sleep(seconds)
