"""A backlog is parsed ahead in a parse process, and nothing depends on it.

Real processes (the "spawn" pool the daemon starts), real Dovecot and SMTP: what a parse process
prepares is exactly what the daemon would have worked out itself; the daemon's own process does
not parse a large batch; a parse process that dies costs nothing but time; and a daemon killed
outright leaves no parse process behind.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from mailbot.app import App
from mailbot.cases.models import Case, Outbox
from mailbot.intake import parse_pool, pipeline, prepared
from mailbot.intake.parse_pool import AHEAD_BATCHES, MIN_BATCH, ParsePool
from mailbot.intake.prepared import prepare
from mailbot.mail.message import FetchedMessage
from mailbot.mail.parse import parse_message as parse_message_here
from tests import daemons, factories
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink

CORPUS = Path(__file__).parents[1] / "data" / "corpus"
MAX_BYTES = 26_214_400
BATCH = 10


def corpus_batches(size: int, count: int) -> list[list[FetchedMessage]]:
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in (".eml", ""))
    raws = [p.read_bytes() for p in files if p.stat().st_size < 200_000][: size * count]
    now = datetime.now(UTC)
    fetched = [FetchedMessage(raw, "INBOX", 1, uid, now) for uid, raw in enumerate(raws, 1)]
    return [fetched[i:i + size] for i in range(0, len(fetched), size)]


@pytest.fixture
def pool() -> Iterator[ParsePool]:
    p = ParsePool(1, MAX_BYTES)
    yield p
    p.close()


def test_what_a_parse_process_prepares_is_what_the_daemon_would_have(
    pool: ParsePool, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = corpus_batches(20, 3)
    expected = [[prepare(m.raw, MAX_BYTES) for m in batch] for batch in batches]
    # Preparing in this process now raises: whatever comes back was prepared elsewhere.
    monkeypatch.setattr(parse_pool, "prepare", _refuse)
    monkeypatch.setattr(prepared, "prepare", _refuse)

    got = list(pool.ahead(iter(batches)))

    assert [batch for batch, _ in got] == batches  # every batch, in order
    assert [ahead for _, ahead in got] == expected


def test_a_small_batch_is_left_to_the_daemon(pool: ParsePool) -> None:
    [small] = corpus_batches(MIN_BATCH - 1, 1)
    [(batch, ahead)] = list(pool.ahead(iter([small])))
    assert batch == small
    assert ahead == [None] * len(small)


@pytest.fixture
def bot(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
        request: pytest.FixtureRequest) -> Iterator[App]:
    app = factories.app(factories.settings(
        tmp_path, imap_account.mailbox_settings(batch_size=BATCH,
                                                parse_processes=request.param),
        smtp_sink.smtp_settings(),
    ))
    yield app
    app.close()


@pytest.mark.parametrize("bot", [1, 0], indirect=True, ids=["pool", "no-pool"])
def test_the_daemon_parses_a_backlog_in_a_parse_process(
    bot: App, imap_account: ImapAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemons.deliver_backlog(imap_account, (daemons.report(i) for i in range(35)))
    parsed_here = counting(monkeypatch)

    report = bot.read_mailbox()

    assert report.opened == 35
    assert_every_report_has_its_case_and_receipt(bot, 35)
    if bot.parse_pool.processes:
        # The batches of 10 went to the parse process; the last 5 (a small batch) parse here.
        assert len(parsed_here) == 5
        executor = bot.parse_pool._executor
        assert executor is not None
        processes = list(executor._processes)
        # A pass that hands it nothing (the backlog is read): the parse process ends.
        assert bot.read_mailbox().processed == 0
        assert bot.parse_pool._executor is None
        assert processes and not any(alive(pid) for pid in processes)
    else:
        assert len(parsed_here) == 35


@pytest.mark.parametrize("bot", [1], indirect=True)
def test_a_parse_process_that_dies_costs_nothing_but_time(
    bot: App, imap_account: ImapAccount, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    daemons.deliver_backlog(imap_account, (daemons.report(i) for i in range(40)))
    parsed_here = counting(monkeypatch)
    real_process = pipeline.process
    killed: list[int] = []

    def process(*args: object, **kwargs: object) -> pipeline.Outcome:
        executor = bot.parse_pool._executor
        if not killed and executor is not None:  # batch 1 is in hand, batch 2 in the process
            for pid in list(executor._processes):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            deadline = time.monotonic() + 10
            while not executor._broken and time.monotonic() < deadline:
                time.sleep(0.01)
        return real_process(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("mailbot.intake.runner.process", process)
    caplog.set_level(logging.WARNING, logger="mailbot.intake")

    report = bot.read_mailbox()

    assert killed
    assert report.opened == 40 and report.failed == 0
    assert_every_report_has_its_case_and_receipt(bot, 40)
    assert any("parse processes failed" in r.getMessage() for r in caplog.records)
    # The batches handed over when it died (2 and 3) were parsed here instead, unless it had
    # finished them; batch 4 went to a new parse process.
    assert len(parsed_here) in {n * BATCH for n in range(AHEAD_BATCHES + 1)}


@pytest.mark.parametrize("bot", [1], indirect=True)
def test_a_batch_looked_up_at_once_still_sees_a_message_twice(
    bot: App, imap_account: ImapAccount
) -> None:
    """A batch parsed ahead is looked up in the database in one query; a message that comes
    twice in it is still seen the second time, though the first copy was written (flushed) in
    between by the look-up of a reply's thread."""
    twice = daemons.report(0)
    reply = factories.message(sender=f"Reporter 1 <{daemons.reporter(1)}>",
                              subject="Re: an old thread", message_id="<reply-1@reporter.example>",
                              headers={"In-Reply-To": "<somewhere@else.example>"})
    others = [daemons.report(i) for i in range(2, 2 + BATCH - 3)]
    daemons.deliver_backlog(imap_account, [twice, reply, twice, *others])
    looked_up_one_by_one = statements_like(bot, "SELECT messages.id FROM messages WHERE "
                                                "messages.dedupe_key IN")

    report = bot.read_mailbox()

    assert (report.opened, report.duplicates) == (BATCH - 1, 1)
    with bot.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == BATCH - 1
    # Only the second copy was asked after one by one (its key was written by the batch).
    assert len(looked_up_one_by_one) == 1


def test_a_daemon_killed_outright_leaves_no_parse_process_behind(tmp_path: Path) -> None:
    script = tmp_path / "daemon.py"
    script.write_text(
        "import sys, time\n"
        "from datetime import UTC, datetime\n"
        "from mailbot.intake.parse_pool import ParsePool\n"
        "from mailbot.mail.message import FetchedMessage\n"
        "if __name__ == '__main__':\n"
        "    pool = ParsePool(1, 10**7)\n"
        "    raw = b'From: a@example.org\\r\\nSubject: x\\r\\n\\r\\nhi\\r\\n'\n"
        "    batch = [FetchedMessage(raw, 'INBOX', 1, i, datetime.now(UTC)) for i in range(10)]\n"
        "    for _, ahead in pool.ahead([batch]):\n"
        "        assert all(ahead)\n"
        "    print(*pool._executor._processes, flush=True)\n"
        "    time.sleep(60)\n"
    )
    daemon = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout is not None
        children = [int(pid) for pid in daemon.stdout.readline().split()]
        assert children and all(alive(pid) for pid in children)
        daemon.kill()
        daemon.wait(10)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in children)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)


def statements_like(app: App, start: str) -> list[str]:
    """Every SQL statement ``app`` sends from now on that starts with ``start``."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if " ".join(statement.split()).startswith(start):
            seen.append(statement)

    event.listen(app.db.engine, "before_cursor_execute", record)
    return seen


def counting(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every message parsed in this process by intake, from now on."""
    calls: list[bytes] = []
    real = parse_message_here

    def parse_message(raw: bytes, *, max_bytes: int = MAX_BYTES) -> object:
        calls.append(raw)
        return real(raw, max_bytes=max_bytes)

    monkeypatch.setattr(pipeline, "parse_message", parse_message)
    return calls


def assert_every_report_has_its_case_and_receipt(app: App, n: int) -> None:
    with app.db.session() as s:
        reporters = set(s.scalars(select(Case.reporter)))
        receipts = s.scalar(select(func.count()).select_from(Outbox)
                            .where(Outbox.kind == "receipt"))
    assert reporters == {daemons.reporter(i) for i in range(n)}
    assert receipts == n


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its new parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _refuse(raw: bytes, max_bytes: int) -> prepared.Prepared:
    raise AssertionError("prepared in the daemon's process")
