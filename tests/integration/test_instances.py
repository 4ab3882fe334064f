"""Several instances (docs/design.md, "Several instances"), with real ``mailbot run`` processes.

On PostgreSQL several daemons may run at once: exactly one reads the mailbox (an advisory lock that
dies with its holder), the outbox is claimed row by row with ``FOR UPDATE SKIP LOCKED``, and
together they never open a case twice or send a receipt twice. On SQLite a second daemon refuses
to start, and a restart right after kill -9 proceeds.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from mailbot.app import App
from tests import daemons, factories
from tests.daemons import DaemonProcess, Progress, Tally
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink

READER_LOCK_TAKEN = "took the mailbox reader lock"
RUNNING = "mailbot running"


def logged(daemon: DaemonProcess, line: str) -> bool:
    return line in daemon.log_text()


def start(config: Path, directory: Path, name: str) -> DaemonProcess:
    return DaemonProcess(config, directory / f"{name}.log")


@pytest.fixture
def pg_config(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink, pg_url: str) -> Path:
    return daemons.write_config(
        tmp_path, imap_account.mailbox_settings(), smtp_sink.smtp_settings(), pg_url
    )


@pytest.fixture
def pg_apps(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink, pg_url: str
) -> Iterator[tuple[App, App]]:
    """Two instances in this process, on one PostgreSQL database and one mailbox."""
    settings = factories.settings(
        tmp_path,
        imap_account.mailbox_settings(),
        smtp_sink.smtp_settings(timeout_seconds=10),
        database_url=pg_url,
    )
    first, second = factories.app(settings), factories.app(settings)
    yield first, second
    first.close()
    second.close()


# ---------------------------------------------------------------------------------------------
# One reader per mailbox


def test_on_postgresql_only_one_instance_reads_the_mailbox(
    pg_apps: tuple[App, App], imap_account: ImapAccount
) -> None:
    first, second = pg_apps
    reporters = {daemons.reporter(i) for i in range(4)}
    daemons.deliver_backlog(imap_account, (daemons.report(i) for i in range(4)))

    assert first.read_mailbox().opened == 4
    assert second.read_mailbox().processed == 0  # the lock is the first one's

    daemons.deliver_backlog(imap_account, [daemons.report(4)])
    assert second.read_mailbox().processed == 0
    assert first.read_mailbox().opened == 1

    first.close()  # the reader goes away: its lock goes with its connection
    daemons.deliver_backlog(imap_account, [daemons.report(5)])
    assert second.read_mailbox().opened == 1

    progress = Progress(first.settings.database.url)
    assert progress.reporters() == dict.fromkeys(reporters | {daemons.reporter(4)}, 1) | {
        daemons.reporter(5): 1
    }
    progress.dispose()


def test_a_reader_killed_with_sigkill_is_replaced_on_the_next_pass_of_another_instance(
    tmp_path: Path, pg_config: Path, pg_url: str, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    progress = Progress(pg_url)
    first = start(pg_config, tmp_path, "first")
    second: DaemonProcess | None = None
    try:
        daemons.wait_until(lambda: logged(first, READER_LOCK_TAKEN), 30, "a reader", alive=[first])
        second = start(pg_config, tmp_path, "second")
        daemons.wait_until(lambda: logged(second, RUNNING), 30, "the second daemon")
        daemons.deliver_backlog(imap_account, (daemons.report(i) for i in range(3)))
        daemons.wait_until(lambda: progress.cases() == 3, 30, "3 cases", alive=[first, second])
        assert not logged(second, READER_LOCK_TAKEN)  # it waited its turn

        first.kill()
        daemons.deliver_backlog(imap_account, (daemons.report(i) for i in range(3, 6)))
        daemons.wait_until(lambda: progress.cases() == 6, 30, "3 more cases", alive=[second])
        daemons.wait_until(lambda: len(smtp_sink.received) >= 6, 60, "6 receipts", alive=[second])

        assert logged(second, READER_LOCK_TAKEN)
        assert second.stop() == 0
    finally:
        first.kill()
        if second is not None:
            second.kill()
    assert progress.reporters() == {daemons.reporter(i): 1 for i in range(6)}
    progress.dispose()
    tally = Tally.of(smtp_sink.received)
    assert tally.answered() == {daemons.reporter(i) for i in range(6)}
    assert tally.duplicates <= 1  # one kill


# ---------------------------------------------------------------------------------------------
# The outbox


def transactions_open(url: str) -> int:
    """Sessions (other than this one) inside a transaction: a drain holding a claimed row."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            query = text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'idle in transaction' AND pid <> pg_backend_pid()"
            )
            return int(conn.scalar(query) or 0)
    finally:
        engine.dispose()


def test_two_instances_draining_at_once_skip_each_others_claimed_rows(
    pg_apps: tuple[App, App], imap_account: ImapAccount, smtp_sink: SmtpSink, pg_url: str
) -> None:
    first, second = pg_apps
    reporters = {daemons.reporter(i) for i in range(5)}
    daemons.deliver_backlog(imap_account, (daemons.report(i) for i in range(5)))
    assert first.read_mailbox().opened == 5
    smtp_sink.hang(at="data", count=1)  # the first instance's first row stays in flight
    reports = {}

    def drain_first() -> None:
        reports["first"] = asyncio.run(first.drain_outbox(ignore_backoff=True))

    hung = threading.Thread(target=drain_first)
    hung.start()
    try:
        daemons.wait_until(lambda: transactions_open(pg_url) == 1, 10, "a claimed row")
        started = time.monotonic()
        beside = asyncio.run(second.drain_outbox(ignore_backoff=True))
        took = time.monotonic() - started
        still_hung = hung.is_alive()
    finally:
        smtp_sink.reset()  # the hung session gets a 451 and lets go
        hung.join()

    assert still_hung, "the first drain was not in flight while the second one ran"
    assert beside.sent == 4  # every row but the one in flight, without waiting for it
    assert took < 5
    assert reports["first"].retried == 1
    assert asyncio.run(second.drain_outbox(ignore_backoff=True)).sent == 1
    tally = Tally.of(smtp_sink.received)
    assert tally.answered() == reporters
    assert tally.duplicates == 0


# ---------------------------------------------------------------------------------------------
# SQLite: one instance


def test_on_sqlite_a_second_daemon_refuses_to_start_and_a_restart_after_kill_9_proceeds(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    config = daemons.write_config(
        tmp_path,
        imap_account.mailbox_settings(),
        smtp_sink.smtp_settings(),
        f"sqlite:///{tmp_path / 'mailbot.db'}",
    )
    first = start(config, tmp_path, "first")
    try:
        daemons.wait_until(lambda: logged(first, RUNNING), 30, "the daemon", alive=[first])

        for args in (("run",), ("run", "--once")):
            with sqlite3.connect(tmp_path / "mailbot.db") as busy:
                busy.execute("BEGIN IMMEDIATE")  # the running one is in the middle of a write
                began = time.monotonic()
                refused = daemons.run_mailbot(config, *args, timeout=60)
                took = time.monotonic() - began
                busy.rollback()
            assert took < 10, f"the refusal took {took:.0f} s"  # it never touched the database
            assert refused.returncode != 0
            lines = refused.stderr.strip().splitlines()
            assert len(lines) == 1, refused.stderr
            assert "another mailbot is already running" in lines[0]
            assert "PostgreSQL" in lines[0]  # and what to do instead

        first.kill()
        second = start(config, tmp_path, "second")
        try:
            daemons.deliver_backlog(imap_account, [daemons.report(0)])
            daemons.wait_until(
                lambda: len(smtp_sink.received) == 1, 30, "a receipt", alive=[second]
            )
            assert second.stop() == 0
        finally:
            second.kill()
    finally:
        first.kill()
    assert "stopped cleanly" in second.log_text()


# ---------------------------------------------------------------------------------------------
# Three daemons, one backlog


@pytest.mark.slow
def test_three_daemons_over_a_1000_message_backlog_open_one_case_and_send_one_receipt_each(
    tmp_path: Path, pg_config: Path, pg_url: str, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    started = time.monotonic()
    n = 1000
    reporters = {daemons.reporter(i) for i in range(n)}
    daemons.deliver_backlog(imap_account, (daemons.report(i) for i in range(n)))
    progress = Progress(pg_url)
    # All three at once, on an empty database: they also race to create the schema.
    running = [start(pg_config, tmp_path, f"daemon-{i}") for i in range(3)]
    try:
        daemons.wait_until(
            lambda: len(Tally.of(smtp_sink.received).copies) >= n, 600, "every receipt",
            every=0.5, alive=running,
        )  # fmt: skip
        time.sleep(2)  # a late duplicate would arrive now
        # Before the stop: once the reader has stopped, another one rightly takes over.
        readers = [d.log.name for d in running if logged(d, READER_LOCK_TAKEN)]
        assert [d.stop() for d in running] == [0, 0, 0]
    finally:
        for daemon in running:
            daemon.kill()

    counts = progress.reporters()
    progress.dispose()
    tally = Tally.of(smtp_sink.received)
    senders = {d.log.name: d.log_text().count("sent receipt") for d in running}
    print(
        f"\nthree daemons, {n} messages: {sum(counts.values())} cases, "
        f"{sum(tally.copies.values())} receipts, {tally.duplicates} duplicates; reader {readers}; "
        f"receipts sent per daemon {senders}; {time.monotonic() - started:.0f} s"
    )
    assert counts == dict.fromkeys(reporters, 1)
    assert tally.answered() == reporters
    assert tally.duplicates == 0
    assert len(readers) == 1
