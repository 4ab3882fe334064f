"""The real servers a benchmark run talks to, all on loopback, all stopped by the run.

Dovecot and PostgreSQL come from the test suite's helpers (tests/servers). The SMTP sink is the
bench's own: aiosmtpd that only notes when each message arrived and which report it answers, so
that the sink's own work (the test sink parses every message) is not what gets measured.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from bench.settings import HOST, Imap
from tests.servers import free_port
from tests.servers.dovecot import DovecotServer, doveadm_binary, dovecot_binary
from tests.servers.postgres import PostgresServer, find_pg_bin

_IN_REPLY_TO = re.compile(rb"^In-Reply-To:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


class Unavailable(RuntimeError):
    """A server binary is missing: the part that needs it is skipped, with this reason."""


# ---------------------------------------------------------------------------------------------
# IMAP


class Mailboxes:
    """A Dovecot of the bench's own; each mailbox is a fresh account on it."""

    def __init__(self) -> None:
        if dovecot_binary() is None or doveadm_binary() is None:
            raise Unavailable("Dovecot is not installed (apt install dovecot-imapd dovecot-lmtpd)")
        self.server = DovecotServer(tls=False).start()
        self._loads = 0

    def new(self) -> Imap:
        account = self.server.add_user()
        return Imap(account.imap_port, account.username, account.password)

    def load(self, imap: Imap, messages: list[bytes] | Any) -> int:
        """Put messages into the INBOX at once (``doveadm import`` of a maildir written aside).

        The bulk twin of ``doveadm save``: the messages wait in the mailbox as delivered mail
        does, byte for byte, with today's INTERNALDATE. Returns how many were written.
        """
        self._loads += 1
        source = self.server.dir / f"import-{self._loads}"
        for sub in ("cur", "new", "tmp"):
            (source / sub).mkdir(parents=True)
        count = 0
        for count, raw in enumerate(messages, 1):
            (
                source / "cur" / f"{1_700_000_000 + count}.M{count}P{self._loads}.bench:2,"
            ).write_bytes(raw)
        if os.geteuid() == 0:  # the import runs as the mail user, which must read the files
            subprocess.run(["chown", "-R", "65534:65534", str(source)], check=True)
        self.server.doveadm("import", "-u", imap.username, f"maildir:{source}:LAYOUT=fs", "", "all")
        shutil.rmtree(source, ignore_errors=True)
        return count

    def deliver(self, imap: Imap, raw: bytes, sender: str = "reporter@reporter.example") -> None:
        """One message over LMTP, as an MTA delivers it."""
        import smtplib

        with smtplib.LMTP(HOST, self.server.lmtp_port, timeout=60) as lmtp:
            refused = lmtp.sendmail(sender, [imap.username], raw)
        if refused:
            raise RuntimeError(f"LMTP refused {refused}")

    def count(self, imap: Imap) -> int:
        from imapclient import IMAPClient

        with IMAPClient(HOST, port=imap.port, ssl=False, timeout=60) as client:
            client.login(imap.username, imap.password)
            return int(client.select_folder("INBOX", readonly=True)[b"EXISTS"])

    @property
    def version(self) -> str:
        done = subprocess.run([self.server.binary, "--version"], capture_output=True, text=True)
        return done.stdout.strip()

    def stop(self) -> None:
        self.server.stop()


# ---------------------------------------------------------------------------------------------
# SMTP


@dataclass(frozen=True)
class Arrival:
    at: float  # time.monotonic() when the sink accepted the message
    in_reply_to: str
    size: int


@dataclass
class Sink:
    """An SMTP server that keeps, per message, its arrival time and its In-Reply-To."""

    port: int = field(default_factory=free_port)
    arrivals: list[Arrival] = field(default_factory=list)
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _controller: Controller | None = None

    def start(self) -> Sink:
        self._controller = Controller(self, hostname=HOST, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        at = time.monotonic()
        data = bytes(envelope.original_content or envelope.content or b"")
        head = data[: data.find(b"\r\n\r\n") + 2] if b"\r\n\r\n" in data else data[:65536]
        found = _IN_REPLY_TO.search(head)
        arrival = Arrival(at, found.group(1).decode("ascii", "replace") if found else "", len(data))
        with self._lock:
            self.arrivals.append(arrival)
            self._lock.notify_all()
        return "250 OK"

    @property
    def received(self) -> int:
        with self._lock:
            return len(self.arrivals)

    def clear(self) -> None:
        with self._lock:
            self.arrivals.clear()

    def wait_for(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.arrivals) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True

    def arrival_of(self, message_id: str) -> Arrival | None:
        with self._lock:
            return next((a for a in self.arrivals if a.in_reply_to == message_id), None)


# ---------------------------------------------------------------------------------------------
# PostgreSQL


class Postgres:
    """A throwaway cluster (fsync off, as in the tests), one fresh database per ``new()``."""

    def __init__(self) -> None:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise Unavailable("PostgreSQL is not installed (no initdb)")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise Unavailable("psycopg is not installed") from None
        owner = None
        if os.geteuid() == 0:  # initdb refuses to run as root
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable("running as root without a 'postgres' user") from None
            owner = "postgres"
        directory = Path(tempfile.mkdtemp(prefix="mailbot-bench-pg-"))
        if owner:
            shutil.chown(directory, user=owner, group=owner)
        self.server = PostgresServer(
            bin_dir=bin_dir, directory=directory, port=free_port(), run_as=owner
        )
        try:
            self.server.start()
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise

    def new(self) -> str:
        return self.server.url(self.server.create_database())

    @property
    def version(self) -> str:
        done = subprocess.run(
            [str(self.server.bin_dir / "postgres"), "--version"], capture_output=True, text=True
        )
        return done.stdout.strip()

    def stop(self) -> None:
        try:
            self.server.stop()
        finally:
            shutil.rmtree(self.server.directory, ignore_errors=True)
