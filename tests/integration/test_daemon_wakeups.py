"""How the daemon's jobs wake each other: receipts go out while a backlog is still being read, and
a wake-up that comes while a job runs is not lost (the scheduler would drop it, and the mail it
announced would wait for the next poll)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from mailbot.cases.models import Case
from mailbot.daemon import Daemon
from mailbot.intake.runner import PassReport
from mailbot.outbox import DrainReport
from tests import factories
from tests.mailflow import Mailflow
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink


def _flow(tmp_path: Path, account: ImapAccount, sink: SmtpSink, batch_size: int = 100) -> Mailflow:
    settings = factories.settings(tmp_path, account.mailbox_settings(batch_size=batch_size),
                                  sink.smtp_settings())
    return Mailflow(factories.app(settings), account, sink)


def test_each_committed_batch_is_announced_so_receipts_need_not_wait_for_the_whole_pass(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    flow = _flow(tmp_path, imap_account, smtp_sink, batch_size=2)
    try:
        for n in range(5):
            flow.report(subject=f"Report {n}")
        seen: list[int] = []

        def committed() -> None:  # the cases are there for anyone who looks (another session)
            with flow.app.db.session() as s:
                seen.append(s.scalar(select(func.count()).select_from(Case)) or 0)

        report = flow.app.read_mailbox(committed)

        assert report.opened == 5
        assert seen == [2, 4, 5]
    finally:
        flow.app.close()


def test_a_wake_up_while_the_mailbox_is_read_reads_it_once_more(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    flow = _flow(tmp_path, imap_account, smtp_sink)
    daemon = Daemon(flow.app)
    passes: list[int] = []

    async def one_pass() -> PassReport:
        passes.append(len(passes))
        if len(passes) == 1:
            daemon.wake("mailbox")  # IDLE announces mail while this pass runs
        return PassReport()

    daemon._read_mailbox = one_pass  # type: ignore[method-assign]
    try:
        asyncio.run(daemon.mailbox_job())
        assert passes == [0, 1]
    finally:
        flow.app.close()


def test_a_wake_up_while_the_outbox_drains_drains_it_once_more(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    flow = _flow(tmp_path, imap_account, smtp_sink)
    daemon = Daemon(flow.app)
    drains: list[int] = []

    async def drain() -> DrainReport:
        drains.append(len(drains))
        if len(drains) == 1:
            daemon.wake("outbox")  # intake committed a receipt while this drain runs
        return DrainReport()

    flow.app.drain_outbox = drain  # type: ignore[method-assign, assignment]
    try:
        asyncio.run(daemon.outbox_job())
        assert drains == [0, 1]
    finally:
        flow.app.close()
