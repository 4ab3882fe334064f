"""``mailbot health`` means what it says: this host's daemon is alive, and someone (which host)
read the mailbox lately; it is red when nobody has, even while this host's daemon runs."""

from __future__ import annotations

import itertools
import re
from datetime import datetime
from pathlib import Path

from mailbot.store import Database, LeaderLock
from tests import daemons
from tests.daemons import DaemonProcess
from tests.servers import free_port
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink


def test_on_postgresql_a_daemon_that_does_not_read_the_mailbox_is_alive_but_not_healthy(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink, pg_url: str
) -> None:
    config = daemons.write_config(
        tmp_path, imap_account.mailbox_settings(), smtp_sink.smtp_settings(), pg_url
    )
    # Another instance (this test) holds the reader lock, and reads nothing.
    reader = LeaderLock(Database(pg_url),
                        f"mailbox:{imap_account.username}@{imap_account.host}")
    assert reader.try_acquire()
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemons.wait_until(lambda: "daemon alive" in daemons.run_mailbot(config, "health").stdout,
                           60, "a heartbeat", alive=[daemon])
        standby = daemons.run_mailbot(config, "health")
        assert standby.returncode == 1, standby.stdout
        assert "mailbox: nobody has read it yet" in standby.stdout

        reader.release()  # the daemon takes over at its next pass
        daemons.wait_until(lambda: daemons.run_mailbot(config, "health").returncode == 0, 60,
                           "a green health", alive=[daemon])
        green = daemons.run_mailbot(config, "health")
    finally:
        assert daemon.stop() == 0
    assert "mailbox: read by " in green.stdout
    assert "daemon alive" in green.stdout


def test_health_on_a_database_no_daemon_has_used_is_red_and_says_so(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = daemons.write_config(tmp_path, imap_account.mailbox_settings(),
                                  smtp_sink.smtp_settings(), f"sqlite:///{tmp_path / 'm.db'}")
    result = daemons.run_mailbot(config, "health")
    assert result.returncode == 1
    assert "no mailbot schema" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_mailbox_server_that_is_down_is_retried_when_the_log_says_and_health_says_why(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    closed = free_port()  # nothing listens there: the IMAP server is "down"
    config = daemons.write_config(tmp_path, imap_account.mailbox_settings(port=closed),
                                  smtp_sink.smtp_settings(), f"sqlite:///{tmp_path / 'm.db'}")
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemons.wait_until(
            lambda: "last try failed" in daemons.run_mailbot(config, "health").stdout,
            60, "the reason in health", alive=[daemon])
        result = daemons.run_mailbot(config, "health")
        daemons.wait_until(lambda: len(retries(daemon)) >= 3, 60, "three tries", alive=[daemon])
    finally:
        assert daemon.stop() == 0
    # The wait the log announces is the wait that happens (not the next poll, a minute away).
    tries = retries(daemon)
    for (said, wait), (then, _) in itertools.pairwise(tries):
        assert wait <= (then - said).total_seconds() < wait + 5, (wait, then - said)
    assert result.returncode == 1
    assert "mailbox: nobody has read it yet; the last try failed" in result.stdout
    assert f"127.0.0.1:{closed}" in result.stdout
    assert "ERROR" not in daemon.log_text()  # weather, not a person's job


_RETRY = re.compile(
    r"^(\S+ \S+) WARNING mailbot.daemon: mailbox pass failed .*; next try in (\d+) s$")


def retries(daemon: DaemonProcess) -> list[tuple[datetime, int]]:
    found = []
    for line in daemon.log_text().splitlines():
        m = _RETRY.match(line)
        if m:
            found.append((datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f"), int(m.group(2))))
    return found
