"""Builders for the fault tests: ``mailbot`` as a real subprocess, a config file that reaches the
test servers, a backlog delivered over one LMTP session, and the tallies the tests assert on.

A daemon under test is what an operator runs (``python -m mailbot --config FILE run``), so a
SIGKILL really kills everything: the process, its threads, its open transactions and its locks.
"""

from __future__ import annotations

import collections
import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.pool import NullPool

from mailbot.cases.models import Case
from mailbot.config import MailboxSettings, SmtpSettings
from tests import factories
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import ReceivedMail

REPO = Path(__file__).resolve().parents[1]
ONCALL = "oncall@team.example.test"


def reporter(i: int) -> str:
    return f"r{i}@reporter.example"


def report(i: int) -> bytes:
    """Report number ``i``: its own sender, so every case and every receipt can be told apart."""
    return factories.message(
        sender=f"Reporter {i} <{reporter(i)}>",
        subject=f"Report {i}: XSS in form {i}",
        message_id=f"<report-{i}@reporter.example>",
        body=f"Form {i} reflects its input.\n",
    )


def deliver_backlog(account: ImapAccount, raws: Iterable[bytes]) -> int:
    """Deliver over LMTP as an MTA would, on one connection (a session per message is slow)."""
    delivered = 0
    if account.lmtp_port is None:  # pymap: no LMTP, its deliver() appends
        assert account.server is not None
        for raw in raws:
            account.server.deliver(account, raw)
            delivered += 1
        return delivered
    with smtplib.LMTP(account.host, account.lmtp_port, timeout=30) as lmtp:
        for raw in raws:
            refused = lmtp.sendmail("reporter@example.net", [account.username], raw)
            if refused:
                raise RuntimeError(f"LMTP refused {refused}")
            delivered += 1
    return delivered


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(
    directory: Path,
    mailbox: MailboxSettings,
    smtp: SmtpSettings,
    database_url: str,
    *,
    name: str = "mailbot.toml",
    extra: dict[str, dict[str, object]] | None = None,
) -> Path:
    """A config file as an operator writes it; secrets in files beside it, never inline.

    ``extra`` adds keys to sections (``{"mailbox": {"login_retry_seconds": 1}}``); an SMTP
    password in ``smtp`` goes to a file beside the config as well.
    """
    (directory / "imap-password").write_text(mailbox.password + "\n")
    (directory / "token-key").write_text("test-token-key\n")
    sections: dict[str, dict[str, object]] = {
        "mailbox": {
            "host": mailbox.host,
            "port": mailbox.port,
            "security": mailbox.security,
            "username": mailbox.username,
            "password_file": "imap-password",
            "folder": mailbox.folder,
            "sent_folder": mailbox.sent_folder,
            "idle": mailbox.idle,
            "poll_seconds": mailbox.poll_seconds,
            "batch_size": mailbox.batch_size,
            "timeout_seconds": mailbox.timeout_seconds,
            "answer_existing": mailbox.answer_existing,
        },
        "smtp": {
            "host": smtp.host,
            "port": smtp.port,
            "security": smtp.security,
            "from": smtp.from_address,
            "timeout_seconds": smtp.timeout_seconds,
        },
        "database": {"url": database_url},
        "team": {
            "addresses": ["alice@team.example.test"],
            "domains": [factories.TEAM_DOMAIN],
            "authserv_id": factories.AUTHSERV_ID,
        },
        # Fault runs deliver hundreds of reports at once and count their receipts; the hourly
        # limit on receipts has tests of its own.
        "policy": {"timezone": "Europe/Amsterdam", "receipts_per_hour": 1_000_000},
        "oncall": {"addresses": [ONCALL]},
        "secrets": {"token_key_file": "token-key"},
        # One key for every instance of the session: two instances share a PostgreSQL database.
        "storage": {"key_file": factories.shared_storage().key_file},
    }
    if smtp.password:
        (directory / "smtp-password").write_text(smtp.password + "\n")
        sections["smtp"].update(username=smtp.username, password_file="smtp-password")
    for section, values in (extra or {}).items():
        sections.setdefault(section, {}).update(values)
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml(value)}" for key, value in values.items())
        lines.append("")
    path = directory / name
    path.write_text("\n".join(lines))
    return path


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("MAILBOT_CONFIG", None)
    return env


def mailbot_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mailbot", "--config", str(config), *args]


def run_mailbot(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``mailbot ARGS`` to the end (``run --once``, ``cases list``, ...)."""
    return subprocess.run(
        mailbot_command(config, *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=config.parent,
        env=_environment(),
    )


class DaemonProcess:
    """One ``mailbot run``; its stderr (the log) goes to a file so that a test can read it."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        handle: IO[bytes] = open(log, "ab")  # noqa: SIM115 - closed once the child has it
        try:
            self.proc = subprocess.Popen(
                mailbot_command(config, "run"),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=handle,
                cwd=config.parent,
                env=_environment(),
            )
        finally:
            handle.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed, every lock dies with the process."""
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as an operator or a service manager stops it; the exit status."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    every: float = 0.05,
    alive: Sequence[DaemonProcess] = (),
) -> None:
    """Poll ``condition``; fail naming ``what`` (and a dead daemon's log) if it never holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        for daemon in alive:
            if not daemon.running():
                raise AssertionError(
                    f"mailbot exited ({daemon.proc.returncode}) while waiting for {what}:\n"
                    + daemon.log_text()[-3000:]
                )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


class Progress:
    """Reads how far the daemons got, from the database they write (a separate connection)."""

    def __init__(self, database_url: str) -> None:
        self.engine = create_engine(database_url, poolclass=NullPool)

    def cases(self) -> int:
        with self.engine.connect() as conn:
            try:
                return int(conn.scalar(select(func.count()).select_from(Case)) or 0)
            except Exception:  # the schema is not there until the first daemon migrated it
                return 0

    def reporters(self) -> collections.Counter[str]:
        with self.engine.connect() as conn:
            return collections.Counter(conn.scalars(select(Case.reporter)))

    def outbox_states(self) -> collections.Counter[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT kind || ':' || state FROM outbox"))
            return collections.Counter(r[0] for r in rows)

    def dispose(self) -> None:
        self.engine.dispose()


@dataclass(frozen=True)
class Tally:
    """What reached the sink, by Message-ID: one entry per distinct message."""

    copies: collections.Counter[str]
    recipients: dict[str, set[str]]

    @classmethod
    def of(cls, received: Sequence[ReceivedMail], kind: str = "receipt") -> Tally:
        copies: collections.Counter[str] = collections.Counter()
        recipients: dict[str, set[str]] = collections.defaultdict(set)
        for mail in received:
            if kind == "receipt" and mail.message["Auto-Submitted"] != "auto-replied":
                continue
            mid = str(mail.message["Message-ID"])
            copies[mid] += 1
            for rcpt in mail.rcpt_tos:
                recipients[rcpt].add(mid)
        return cls(copies=copies, recipients=dict(recipients))

    @property
    def duplicates(self) -> int:
        """Extra copies: a message that arrived three times counts two."""
        return sum(n - 1 for n in self.copies.values())

    def answered(self) -> set[str]:
        return set(self.recipients)
