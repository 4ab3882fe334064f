"""A refused login is a failure a person must fix, not weather: one ERROR naming the key, a backoff
that grows (and is the wait that really happens), an alert to on-call, a red ``mailbot health``.

Real Dovecot (which refuses the wrong password), the real SMTP sink, ``mailbot run`` as a process.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from datetime import datetime
from pathlib import Path

import pytest

from tests import daemons
from tests.daemons import DaemonProcess
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SinkFactory, SmtpSink

# "2026-12-02 01:40:00,123 INFO mailbot.health: IMAP login refused again (try 2); next try in 2 s"
_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) ([\w.]+): (.*)$")
_NEXT_TRY = re.compile(r"login refused.*[Nn]ext try in (\d+) s")


@dataclasses.dataclass(frozen=True)
class LogLine:
    at: datetime
    level: str
    logger: str
    text: str


def log_lines(daemon: DaemonProcess) -> list[LogLine]:
    out = []
    for line in daemon.log_text().splitlines():
        m = _LINE.match(line)
        if m:
            at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
            out.append(LogLine(at, m.group(2), m.group(3), m.group(4)))
    return out


def refusals(daemon: DaemonProcess) -> list[tuple[LogLine, int]]:
    """Each refused login the daemon reported, with the wait it announced after it."""
    found = []
    for line in log_lines(daemon):
        m = _NEXT_TRY.search(line.text)
        if m and "IMAP" in line.text:
            found.append((line, int(m.group(1))))
    return found


def _config(tmp_path: Path, account: ImapAccount, sink: SmtpSink, **mailbox: object) -> Path:
    return daemons.write_config(
        tmp_path,
        account.mailbox_settings(),
        sink.smtp_settings(),
        f"sqlite:///{tmp_path / 'mailbot.db'}",
        # A poll interval far longer than the backoff: the retry must come when the log says,
        # not at the next poll.
        extra={"mailbox": {"poll_seconds": 60, "login_retry_seconds": 1, **mailbox}},
    )


@pytest.mark.slow
def test_a_wrong_imap_password_is_one_error_a_growing_backoff_an_alert_and_a_red_health(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = _config(tmp_path, imap_account, smtp_sink)
    (tmp_path / "imap-password").write_text("not-the-password\n")
    # The server's log from here on: a new account's first logins may have failed before the
    # server read its users file (the fixture retries until it does).
    server_log = getattr(imap_account.server, "log_file", None)
    log_start = Path(server_log).stat().st_size if server_log is not None else 0
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemons.wait_until(lambda: len(refusals(daemon)) >= 4, 60, "four refused logins",
                           alive=[daemon])
        health = daemons.run_mailbot(config, "health")
        alerts = smtp_sink.wait_for(1, timeout=30)
    finally:
        assert daemon.stop() == 0
    lines = log_lines(daemon)
    tries = refusals(daemon)

    errors = [line for line in lines if line.level == "ERROR"]
    assert len(errors) == 1, [e.text for e in errors]
    assert "IMAP login refused" in errors[0].text
    assert "mailbox.password_file" in errors[0].text
    assert not [line for line in lines if "connection lost" in line.text.lower()]

    # No lockouts: every login the server refused is one the log reported, no more (the IDLE
    # watchers wait for the mailbox job's login instead of trying their own).
    if server_log is not None:  # Dovecot (pymap keeps no log)
        with Path(server_log).open("rb") as read:
            read.seek(log_start)
            since = read.read().decode(errors="replace")
        failed = [line for line in since.splitlines()
                  if "auth failed" in line and f"user=<{imap_account.username}>" in line]
        assert len(failed) == len(tries), failed

    waits = [wait for _, wait in tries]
    assert waits[:4] == [1, 2, 4, 8]
    for (said, wait), (then, _) in itertools.pairwise(tries):
        took = (then.at - said.at).total_seconds()
        # The next refusal comes after the announced wait, plus one login's round trip; the poll
        # interval (60 s) would be far later.
        assert wait <= took < wait + 5, (wait, took)

    assert health.returncode == 1, health.stdout
    assert "IMAP login refused" in health.stdout
    assert "mailbox.password_file" in health.stdout
    assert "nobody has read it" in health.stdout

    assert len(alerts) == 1
    alert = alerts[0].message
    assert list(alerts[0].rcpt_tos) == [daemons.ONCALL]
    assert "cannot read the mailbox" in str(alert["Subject"])
    body = alert.get_body().get_content()  # type: ignore[union-attr]
    assert "mailbox.password_file" in body
    assert "new reports wait in the mailbox" in body
    assert "raw bytes are kept" not in body  # the usual closing is about a kept message
    assert len(smtp_sink.received) == 1, "one alert however many refusals"


@pytest.mark.slow
def test_once_the_password_is_fixed_a_restart_reads_the_mailbox_and_health_turns_green(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = _config(tmp_path, imap_account, smtp_sink)
    (tmp_path / "imap-password").write_text("not-the-password\n")
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemons.wait_until(lambda: len(refusals(daemon)) >= 1, 60, "a refused login",
                           alive=[daemon])
    finally:
        assert daemon.stop() == 0
    assert daemons.run_mailbot(config, "health").returncode == 1

    (tmp_path / "imap-password").write_text(imap_account.password + "\n")
    daemon = DaemonProcess(config, tmp_path / "daemon2.log")
    try:
        daemons.wait_until(lambda: daemons.run_mailbot(config, "health").returncode == 0, 60,
                           "a green health", alive=[daemon])
    finally:
        assert daemon.stop() == 0
    health = daemons.run_mailbot(config, "health")
    assert "login refused" not in health.stdout
    assert "login accepted again" in daemon.log_text()


def test_a_refused_smtp_login_is_one_error_naming_the_key_and_health_says_so(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink_factory: SinkFactory
) -> None:
    sink = smtp_sink_factory(users={"mailbot": "right-password"})
    config = daemons.write_config(
        tmp_path,
        imap_account.mailbox_settings(),
        sink.smtp_settings(password="wrong-password"),
        f"sqlite:///{tmp_path / 'mailbot.db'}",
        extra={"smtp": {"login_retry_seconds": 60}},
    )
    imap_account.server.deliver(imap_account, daemons.report(1))
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemons.wait_until(lambda: "SMTP login refused" in daemon.log_text(), 60,
                           "the refused SMTP login", alive=[daemon])
        health = daemons.run_mailbot(config, "health")
    finally:
        assert daemon.stop() == 0
    errors = [line for line in log_lines(daemon) if line.level == "ERROR"]
    assert len(errors) == 1, [e.text for e in errors]
    assert "smtp.password_file" in errors[0].text
    assert "next try in 60 s" in errors[0].text.lower()
    assert health.returncode == 1
    assert "sending (SMTP)" in health.stdout and "smtp.password_file" in health.stdout
    assert sink.received == []
