"""Faults: crashes, lost connections and unavailable servers, against real Dovecot, a real SMTP
sink, SQLite and PostgreSQL. Whatever happens, no message is lost, no case is doubled, a crash
resends at most one receipt, and the log says what happened.

The long seeded runs are marked slow; ``pytest -m slow -s`` prints their figures, and the
twenty-run test also writes them as JSON under its tmp_path (``kill-figures.json``).

Where a fault must strike at an exact point of a pass, the test wraps the runner's call of the
pipeline (our own code) to strike just before the n-th message; every server stays real.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailbot.app import App
from mailbot.cases.models import Case, InboundFailure, MailboxCursor, Outbox
from mailbot.clock import FixedClock
from mailbot.daemon import Daemon
from mailbot.errors import DatabaseUnavailable, MailboxUnavailable
from mailbot.intake import pipeline, runner
from mailbot.intake.pipeline import Intake, Outcome
from mailbot.intake.prepared import Prepared
from mailbot.mail.message import FetchedMessage
from tests import daemons, factories
from tests.daemons import DaemonProcess, Progress, Tally
from tests.servers.dovecot import ImapAccount, ImapTestServer
from tests.servers.postgres import PostgresServer
from tests.servers.smtp_sink import SmtpSink

# ---------------------------------------------------------------------------------------------
# SIGKILL during a backlog


@dataclass
class KillRun:
    seed: int
    messages: int
    kills: int
    kills_in_intake: int  # some mail not yet a case
    kills_in_drain: int  # every case opened, some receipt not yet accepted
    cases: int
    duplicate_cases: int
    receipts: int
    duplicate_receipts: int
    seconds: float


def kill_and_restart(
    tmp_path: Path,
    account: ImapAccount,
    sink: SmtpSink,
    *,
    messages: int,
    kills: int,
    seed: int,
    batch_size: int = 10,
) -> KillRun:
    """Deliver a backlog, run ``mailbot run``, SIGKILL it ``kills`` times at seeded random points
    (restarting it after each kill but the last), then ``run --once`` to the end."""
    started = time.monotonic()
    rng = random.Random(seed)
    daemons.deliver_backlog(account, (daemons.report(i) for i in range(messages)))
    database_url = f"sqlite:///{tmp_path / 'mailbot.db'}"
    config = daemons.write_config(
        tmp_path,
        account.mailbox_settings(batch_size=batch_size),
        sink.smtp_settings(),
        database_url,
    )
    progress = Progress(database_url)
    # Progress runs from 0 to 2 * messages: cases opened, then receipts accepted by the sink. A
    # kill point anywhere in it lands in intake (mid-batch) or in the outbox drain (mid-send).
    targets = sorted(rng.sample(range(1, 2 * messages - 1), kills))

    def done() -> int:
        return progress.cases() + len(Tally.of(sink.received).copies)

    phases: list[str] = []
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        for n, target in enumerate(targets, 1):
            daemons.wait_until(
                functools.partial(_reached, done, target), 120, f"progress {target}",
                alive=[daemon],
            )  # fmt: skip
            time.sleep(rng.uniform(0, 0.2))  # not always right after a commit
            daemon.kill()
            phases.append(_phase(progress, sink, messages))
            if n < len(targets):
                daemon = DaemonProcess(config, tmp_path / "daemon.log")
    finally:
        daemon.kill()
    finished = daemons.run_mailbot(config, "run", "--once")
    assert finished.returncode == 0, finished.stderr[-3000:]

    reporters = progress.reporters()
    progress.dispose()
    tally = Tally.of(sink.received)
    expected = {daemons.reporter(i) for i in range(messages)}
    assert set(reporters) == expected, "a report was lost"
    assert tally.answered() == expected, "a reporter has no receipt"
    assert all(len(ids) == 1 for ids in tally.recipients.values()), "two different receipts"
    return KillRun(
        seed=seed,
        messages=messages,
        kills=kills,
        kills_in_intake=phases.count("intake"),
        kills_in_drain=phases.count("drain"),
        cases=sum(reporters.values()),
        duplicate_cases=sum(reporters.values()) - len(reporters),
        receipts=sum(tally.copies.values()),
        duplicate_receipts=tally.duplicates,
        seconds=round(time.monotonic() - started, 1),
    )


def _reached(done: Callable[[], int], target: int) -> bool:
    return done() >= target


def _phase(progress: Progress, sink: SmtpSink, messages: int) -> str:
    if progress.cases() < messages:
        return "intake"
    return "drain" if len(Tally.of(sink.received).copies) < messages else "done"


def test_sigkill_several_times_during_a_300_message_backlog_loses_and_doubles_nothing(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    run = kill_and_restart(tmp_path, imap_account, smtp_sink, messages=300, kills=5, seed=2)

    print(f"\nSIGKILL over a 300-message backlog: {run}")
    assert run.cases == 300
    assert run.duplicate_cases == 0
    assert run.duplicate_receipts <= run.kills


SEEDED_RUNS = 20


@pytest.mark.slow
def test_sigkill_at_random_points_in_twenty_seeded_runs_never_doubles_a_case(
    tmp_path: Path, dovecot_server: ImapTestServer, smtp_sink: SmtpSink
) -> None:
    started = time.monotonic()
    runs = []
    for seed in range(SEEDED_RUNS):
        directory = tmp_path / f"run-{seed:02d}"
        directory.mkdir()
        smtp_sink.clear()
        kills = random.Random(seed).randint(1, 4)
        run = kill_and_restart(
            directory, dovecot_server.add_user(), smtp_sink, messages=40, kills=kills, seed=seed
        )
        assert run.duplicate_cases == 0, run
        assert run.duplicate_receipts <= run.kills, run
        runs.append(run)

    totals = {
        "runs": len(runs),
        "kills": sum(r.kills for r in runs),
        "kills_in_intake": sum(r.kills_in_intake for r in runs),
        "kills_in_drain": sum(r.kills_in_drain for r in runs),
        "messages": sum(r.messages for r in runs),
        "cases": sum(r.cases for r in runs),
        "duplicate_cases": sum(r.duplicate_cases for r in runs),
        "receipts": sum(r.receipts for r in runs),
        "duplicate_receipts": sum(r.duplicate_receipts for r in runs),
        "runs_with_a_duplicate_receipt": sum(1 for r in runs if r.duplicate_receipts),
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    figures = {"totals": totals, "runs": [asdict(r) for r in runs]}
    (tmp_path / "kill-figures.json").write_text(json.dumps(figures, indent=2))
    print("\nSIGKILL runs:", json.dumps(totals))
    assert totals["runs"] >= 20
    assert totals["duplicate_cases"] == 0
    assert totals["cases"] == totals["messages"]
    assert totals["duplicate_receipts"] <= totals["kills"]


# ---------------------------------------------------------------------------------------------
# In-process faults: the daemon runs in the test's process, so that caplog sees its log.


@pytest.fixture
def bot(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink) -> Iterator[App]:
    clock = FixedClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
    app = factories.app(
        factories.settings(
            tmp_path, imap_account.mailbox_settings(batch_size=5), smtp_sink.smtp_settings()
        ),
        clock=clock,
    )
    yield app
    app.close()


def fault_at(monkeypatch: pytest.MonkeyPatch, nth: int, fault: Callable[[], object]) -> list[int]:
    """Call ``fault`` just before the ``nth`` message of a pass goes through the pipeline."""
    calls: list[int] = []
    real = pipeline.process

    def process(session: Session, fetched: FetchedMessage, intake: Intake,
                prepared: Prepared | None = None) -> Outcome:
        calls.append(fetched.uid)
        if len(calls) == nth:
            fault()
        return real(session, fetched, intake, prepared)

    monkeypatch.setattr(runner, "process", process)
    return calls


def run_daemon_until(app: App, condition: Callable[[], bool], timeout: float = 30) -> None:
    """``mailbot run`` in this process until ``condition`` holds, then a clean stop."""

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(Daemon(app).run(stop))
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            # In a thread, as the daemon's own database work is: a blocking call on the loop
            # could wait for a transaction that the loop itself has to finish.
            while not await asyncio.to_thread(condition):
                if task.done():
                    task.result()
                    raise AssertionError("the daemon stopped by itself")
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"the daemon did not get there within {timeout} s")
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await task

    asyncio.run(main())


def case_reporters(app: App) -> collections.Counter[str]:
    with app.db.session() as s:
        return collections.Counter(s.scalars(select(Case.reporter)))


def outbox_rows(app: App) -> list[tuple[str, str, tuple[str, ...]]]:
    with app.db.session() as s:
        rows = s.scalars(select(Outbox).order_by(Outbox.id))
        return [(r.kind, r.state, tuple(r.recipients)) for r in rows]


def messages_from(caplog: pytest.LogCaptureFixture, logger: str, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno == level]


@pytest.mark.parametrize("how", ["kick", "kill"])
def test_imap_connection_dropped_during_a_pass_loses_nothing_and_the_daemon_reconnects(
    bot: App,
    imap_account: ImapAccount,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    """``kick``: doveadm kick (the server says BYE); ``kill``: the IMAP process is SIGKILLed
    (the socket just closes). Either way the pass fails, the daemon says so, reconnects, and
    carries on from the last committed batch."""
    server = imap_account.server
    assert server is not None
    drop: Callable[[ImapAccount], object] = {
        "kick": server.drop_connections,
        "kill": server.kill_sessions,
    }[how]
    daemons.deliver_backlog(imap_account, (daemons.report(i) for i in range(12)))
    calls = fault_at(monkeypatch, 7, functools.partial(drop, imap_account))  # mid 2nd batch
    caplog.set_level(logging.INFO, logger="mailbot")
    expected = {daemons.reporter(i) for i in range(12)}

    run_daemon_until(
        bot, lambda: set(case_reporters(bot)) == expected and len(smtp_sink.received) >= 12
    )

    assert sum(case_reporters(bot).values()) == 12
    assert Tally.of(smtp_sink.received).duplicates == 0
    assert calls[:10] == list(range(1, 11))  # batches 1 and 2 committed whole
    assert calls[10:] == [11, 12]  # the next pass resumed after them, on a new session
    warnings = messages_from(caplog, "mailbot.daemon", logging.WARNING)
    failed = [w for w in warnings if w.startswith("mailbox pass failed (IMAP")]
    assert failed, warnings
    assert "next try in" in failed[0]
    if how == "kick":  # what the server said on its way out is part of the line
        assert "shutting down" in failed[0]
    connected = [
        i
        for i, r in enumerate(caplog.records)
        if r.name == "mailbot.imap" and r.getMessage().startswith("connected to")
    ]
    failed_at = next(i for i, r in enumerate(caplog.records) if r.getMessage() == failed[0])
    assert any(i > failed_at for i in connected), "no reconnect after the failure"


def test_imap_sessions_killed_at_random_while_big_messages_are_fetched_lose_nothing(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    """Passes interrupted wherever the kills land (mid-FETCH included), then retried."""
    server = imap_account.server
    assert server is not None
    body = "A long proof of concept.\n" * 8000  # ~200 KB per message
    raws = [
        factories.message(
            sender=daemons.reporter(i), subject=f"PoC {i}", message_id=f"<poc-{i}@x>", body=body
        )
        for i in range(40)
    ]
    daemons.deliver_backlog(imap_account, raws)
    app = factories.app(
        factories.settings(
            tmp_path, imap_account.mailbox_settings(batch_size=10), smtp_sink.smtp_settings()
        )
    )
    rng = random.Random(5)
    stop = threading.Event()
    kills: list[int] = []

    def killer() -> None:
        while not stop.wait(rng.uniform(0.05, 0.4)) and len(kills) < 6:
            kills.append(server.kill_sessions(imap_account))

    thread = threading.Thread(target=killer)
    thread.start()
    failures = 0
    try:
        for _ in range(60):
            try:
                app.read_mailbox()
            except MailboxUnavailable:
                failures += 1
                continue
            if not thread.is_alive() and set(case_reporters(app)) == {
                daemons.reporter(i) for i in range(40)
            }:
                break
    finally:
        stop.set()
        thread.join()
        app.close()

    assert sum(kills) >= 1
    assert failures >= 1
    reporters = case_reporters(app)
    assert set(reporters) == {daemons.reporter(i) for i in range(40)}
    assert sum(reporters.values()) == 40


# ---------------------------------------------------------------------------------------------
# UIDVALIDITY


def test_uidvalidity_changed_under_the_bot_resyncs_by_dedupe_key_and_skips_no_new_mail(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    server = imap_account.server
    assert server is not None
    daemons.deliver_backlog(imap_account, (daemons.report(i) for i in range(6)))
    first = asyncio.run(bot.run_once())
    assert first.intake.opened == 6

    server.change_uidvalidity(imap_account, "INBOX")
    daemons.deliver_backlog(imap_account, (daemons.report(i) for i in range(6, 9)))
    caplog.set_level(logging.INFO, logger="mailbot")
    second = asyncio.run(bot.run_once())

    assert second.intake.opened == 3  # the new mail, not skipped
    assert second.intake.duplicates == 6  # the old mail, recognised by its dedupe key
    reporters = case_reporters(bot)
    assert set(reporters) == {daemons.reporter(i) for i in range(9)}
    assert sum(reporters.values()) == 9
    assert Tally.of(smtp_sink.received).duplicates == 0
    [warning] = [
        m for m in messages_from(caplog, "mailbot.intake", logging.WARNING) if "UIDVALIDITY" in m
    ]
    assert "INBOX" in warning and "resync" in warning

    caplog.clear()
    third = asyncio.run(bot.run_once())
    assert third.intake.processed == 0  # the cursor now holds the new UIDVALIDITY
    assert not [r for r in caplog.records if "UIDVALIDITY" in r.getMessage()]


# ---------------------------------------------------------------------------------------------
# SMTP


def deliver_reports(account: ImapAccount, n: int) -> set[str]:
    daemons.deliver_backlog(account, (daemons.report(i) for i in range(n)))
    return {daemons.reporter(i) for i in range(n)}


def later(app: App, minutes: int = 20) -> None:
    clock = app.clock
    assert isinstance(clock, FixedClock)
    clock.advance(timedelta(minutes=minutes))


@pytest.mark.parametrize("code", [421, 451])
def test_smtp_answering_4xx_postpones_receipts_then_sends_each_once(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink, code: int
) -> None:
    reporters = deliver_reports(imap_account, 3)
    smtp_sink.fail(code, at="rcpt", count=1)

    first = asyncio.run(bot.run_once())

    assert first.intake.opened == 3  # cases are opened whatever SMTP says
    assert first.outbox.retried == 1
    if code == 421:  # the server hung up: the rest of the batch waits for a new connection
        assert first.outbox.sent == 0
        assert asyncio.run(bot.drain_outbox()).sent == 2
    else:
        assert first.outbox.sent == 2
    assert asyncio.run(bot.drain_outbox()).sent == 0  # the refused one backs off: not yet

    later(bot)
    asyncio.run(bot.drain_outbox())

    tally = Tally.of(smtp_sink.received)
    assert tally.answered() == reporters
    assert tally.duplicates == 0
    assert {state for _, state, _ in outbox_rows(bot)} == {"sent"}


def test_smtp_answering_550_fails_the_receipt_and_tells_the_team(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    deliver_reports(imap_account, 2)
    smtp_sink.fail(550, at="rcpt", recipients={daemons.reporter(0)})
    caplog.set_level(logging.INFO, logger="mailbot")

    report = asyncio.run(bot.run_once())

    assert report.intake.opened == 2
    assert outbox_rows(bot) == [
        ("receipt", "failed", (daemons.reporter(0),)),
        ("receipt", "sent", (daemons.reporter(1),)),
        ("alert", "sent", (daemons.ONCALL,)),
    ]
    [alert] = [m for m in smtp_sink.received if m.rcpt_tos == (daemons.ONCALL,)]
    body = alert.message.get_body(("plain",))
    assert body is not None
    assert daemons.reporter(0) in body.get_content()
    assert any(
        "failed permanently" in m for m in messages_from(caplog, "mailbot.outbox", logging.ERROR)
    )


def test_an_alert_that_cannot_be_delivered_is_not_alerted_about(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    deliver_reports(imap_account, 1)
    smtp_sink.fail(550, at="rcpt")  # every recipient, the on-call address included

    asyncio.run(bot.run_once())
    later(bot)
    asyncio.run(bot.run_once())

    assert outbox_rows(bot) == [
        ("receipt", "failed", (daemons.reporter(0),)),
        ("alert", "failed", (daemons.ONCALL,)),
    ]
    assert smtp_sink.received == []


def test_smtp_timing_out_postpones_the_receipt_and_it_goes_once_when_smtp_answers(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    reporters = deliver_reports(imap_account, 2)
    smtp_sink.hang(at="data")
    caplog.set_level(logging.INFO, logger="mailbot")

    hung = asyncio.run(bot.run_once())  # the sink never answers DATA; the 2 s timeout ends it

    assert hung.intake.opened == 2
    assert hung.outbox.sent == 0
    assert messages_from(caplog, "mailbot.outbox", logging.WARNING)
    smtp_sink.reset()
    later(bot)
    asyncio.run(bot.drain_outbox())

    tally = Tally.of(smtp_sink.received)
    assert tally.answered() == reporters
    assert tally.duplicates <= 1


def test_smtp_hanging_in_the_daemon_does_not_hold_up_intake(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    """While the drain waits for an SMTP server that does not answer, new reports still become
    cases at once: the wait must not keep the database from intake."""
    app = factories.app(
        factories.settings(
            tmp_path, imap_account.mailbox_settings(), smtp_sink.smtp_settings(timeout_seconds=8)
        )
    )
    smtp_sink.hang(at="data")
    daemons.deliver_backlog(imap_account, [daemons.report(0)])
    waited: list[float] = []

    def second_report_opened() -> bool:
        if not waited:
            if smtp_sink.connections == 0:
                return False  # the drain has not reached the sink yet
            time.sleep(0.5)  # well into the hang
            daemons.deliver_backlog(imap_account, [daemons.report(1)])
            waited.append(time.monotonic())
        if daemons.reporter(1) in case_reporters(app):
            waited.append(time.monotonic() - waited[0])
            smtp_sink.reset()  # the hung session gets its answer (451): no need to wait it out
            return True
        return False

    try:
        run_daemon_until(app, second_report_opened, timeout=30)
        asyncio.run(app.drain_outbox(ignore_backoff=True))
    finally:
        app.close()

    assert waited[1] < 4, f"the report waited {waited[1]:.1f} s for the hung SMTP session"
    tally = Tally.of(smtp_sink.received)
    assert tally.answered() == {daemons.reporter(0), daemons.reporter(1)}
    assert tally.duplicates == 0


# ---------------------------------------------------------------------------------------------
# The database


@pytest.fixture
def pg_bot(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink, private_postgres: PostgresServer
) -> Iterator[App]:
    app = factories.app(
        factories.settings(
            tmp_path,
            imap_account.mailbox_settings(batch_size=5),
            smtp_sink.smtp_settings(),
            database_url=private_postgres.url(),
        )
    )
    yield app
    app.close()


def test_database_stopped_during_a_pass_fails_it_whole_and_the_next_pass_picks_everything_up(
    pg_bot: App,
    private_postgres: PostgresServer,
    imap_account: ImapAccount,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reporters = deliver_reports(imap_account, 12)
    fault_at(monkeypatch, 8, private_postgres.stop)  # PostgreSQL goes away mid second batch

    with pytest.raises(DatabaseUnavailable):
        pg_bot.read_mailbox()

    private_postgres.resume()
    monkeypatch.undo()
    with pg_bot.db.session() as s:  # the first batch whole, nothing of the second
        assert s.scalar(select(func.count()).select_from(Case)) == 5
        assert s.scalar(select(func.count()).select_from(Outbox)) == 5
        assert s.scalar(select(MailboxCursor.last_uid).where(MailboxCursor.folder == "INBOX")) == 5
        assert s.scalar(select(func.count()).select_from(InboundFailure)) == 0
    again = asyncio.run(pg_bot.run_once())

    assert again.intake.opened == 7
    assert sum(case_reporters(pg_bot).values()) == 12
    tally = Tally.of(smtp_sink.received)
    assert tally.answered() == reporters
    assert tally.duplicates == 0


def test_database_unavailable_for_a_while_the_daemon_says_so_and_catches_up(
    pg_bot: App,
    private_postgres: PostgresServer,
    imap_account: ImapAccount,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reporters = deliver_reports(imap_account, 12)
    back = threading.Timer(3, private_postgres.resume)

    def outage() -> None:
        private_postgres.stop()
        back.start()

    fault_at(monkeypatch, 8, outage)
    caplog.set_level(logging.INFO, logger="mailbot")

    def all_answered() -> bool:
        try:
            return set(case_reporters(pg_bot)) == reporters and len(smtp_sink.received) >= 12
        except DatabaseUnavailable:
            return False

    try:
        run_daemon_until(pg_bot, all_answered, timeout=60)
    finally:
        back.join()

    assert sum(case_reporters(pg_bot).values()) == 12
    assert Tally.of(smtp_sink.received).duplicates == 0
    failed = [
        m
        for m in messages_from(caplog, "mailbot.daemon", logging.WARNING)
        if m.startswith("mailbox pass failed")
    ]
    assert failed
    for line in failed:
        assert "database" in line and "next try in" in line
        assert "\n" not in line
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "only warnings expected"


def test_a_receipt_sent_while_the_database_went_away_is_not_sent_again(
    pg_bot: App, private_postgres: PostgresServer, imap_account: ImapAccount,
    smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The SMTP server accepts the receipt; the database stops before the drain records it.
    deliver_reports(imap_account, 1)
    pg_bot.read_mailbox()
    keep = smtp_sink._keep

    def keep_then_stop_the_database(*args: object) -> None:
        keep(*args)
        if len(smtp_sink.received) == 1:
            private_postgres.stop()

    monkeypatch.setattr(smtp_sink, "_keep", keep_then_stop_the_database)
    with pytest.raises(DatabaseUnavailable):
        asyncio.run(pg_bot.drain_outbox())
    private_postgres.resume()

    later = asyncio.run(pg_bot.drain_outbox(ignore_backoff=True))

    assert later.sent == 0
    assert len(smtp_sink.received) == 1
    with pg_bot.db.session() as s:
        [state] = s.scalars(select(Outbox.state).where(Outbox.kind == "receipt")).all()
    assert state == "sent"


def test_uidvalidity_changed_on_an_emptied_folder_is_warned_about_once(
    bot: App, imap_account: ImapAccount, caplog: pytest.LogCaptureFixture
) -> None:
    server = imap_account.server
    assert server is not None
    daemons.deliver_backlog(imap_account, (daemons.report(i) for i in range(2)))
    asyncio.run(bot.run_once())
    with imap_account.client() as c:  # the operator emptied the folder, then it was rebuilt
        c.select_folder("INBOX")
        c.delete_messages(c.search("ALL"))
        c.expunge()
    server.change_uidvalidity(imap_account, "INBOX")
    caplog.set_level(logging.INFO, logger="mailbot")

    for _ in range(3):
        asyncio.run(bot.run_once())
    daemons.deliver_backlog(imap_account, [daemons.report(2)])
    last = asyncio.run(bot.run_once())

    assert last.intake.opened == 1
    assert len([r for r in caplog.records if "UIDVALIDITY changed" in r.getMessage()]) == 1
