"""Where intake spends its CPU, without IMAP: ``python -m bench.profile [--messages N]``.

Corpus messages are handed to the daemon's mailbox runner (``MailboxRunner``, batches of 100, a
SQLite file, the benchmark's settings) as if fetched, then the outbox is drained to an aiosmtpd
sink in a process of its own (so the sink's CPU is not counted). Prints the CPU time per message
of reading and of draining, and the CPU time of mail-parser alone on the same messages (the
backlog's floor without the fetch). With ``--out FILE`` the run is profiled with cProfile on
CPU time (``time.process_time``) and the statistics are written there for ``pstats``. It also
counts the SQL statements the reading sends and the ORM flushes it makes, per message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.corpus import DEFAULT_CORPUS, Corpus
from bench.settings import HOST, Imap, bench_settings
from tests.servers import free_port

if TYPE_CHECKING:
    from mailbot.app import App

FOLDER = "INBOX"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split(
        "\n", 1)[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages to read")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of messages")
    parser.add_argument("--out", type=Path, help="write cProfile statistics (CPU time) here")
    args = parser.parse_args()
    if args.messages < 1:
        parser.error("--messages must be at least 1")
    logging.basicConfig(level=logging.ERROR)
    raws = list(Corpus.load(args.corpus).messages(args.messages, "profile"))
    floor = _floor(raws)
    with tempfile.TemporaryDirectory(prefix="mailbot-profile-") as work:
        read, drain, sent, counts = _intake(raws, Path(work), args.out)
    n = len(raws)
    print(f"{n} messages, {sent} receipts")
    print(f"reading: {counts.statements} SQL statements ({counts.statements / n:.2f} per "
          f"message), {counts.flushes} ORM flushes ({counts.flushes / n * 1000:.0f} per 1,000 "
          f"messages)")
    print(f"mail-parser alone: {floor / n * 1000:.2f} ms CPU per message")
    print(f"mailbot read: {read / n * 1000:.2f} ms CPU per message; "
          f"drain: {drain / n * 1000:.2f} ms CPU per message")
    if args.out:
        print(f"profile: {args.out} (the profiler's own cost is in mailbot's figures)")
    else:
        print(f"ratio (CPU, no fetch): {(read + drain) / floor:.2f}x")


def _floor(raws: list[bytes]) -> float:
    import mailparser

    logging.getLogger("mailparser").setLevel(logging.CRITICAL)
    started = time.process_time()
    for raw in raws:
        with contextlib.suppress(Exception):  # the floor pays for the attempt, as mailbot does
            mailparser.parse_from_bytes(raw)
    return time.process_time() - started


class Counts:
    """SQL statements sent (an executemany is one) and ORM flushes, while switched on."""

    def __init__(self) -> None:
        self.statements = self.flushes = 0
        self.on = False

    def watch(self, engine: Any) -> None:
        from sqlalchemy import event
        from sqlalchemy.orm import Session

        def statement(*_: Any) -> None:
            self.statements += self.on

        def flush(*_: Any) -> None:
            self.flushes += self.on

        event.listen(engine, "before_cursor_execute", statement)
        event.listen(Session, "after_flush", flush)


def _intake(raws: list[bytes], work: Path,
            out: Path | None) -> tuple[float, float, int, Counts]:
    from mailbot.app import App
    from mailbot.intake.runner import MailboxRunner
    from mailbot.mail.mailbox import FolderState
    from mailbot.mail.message import FetchedMessage
    from mailbot.store import migrate

    port = free_port()
    sink = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"{HOST}:{port}",
                             "-c", "aiosmtpd.handlers.Sink"])
    try:
        _wait_for_port(port)
        settings = bench_settings(Imap(1, "bench", "unused"), port,
                                  f"sqlite:///{work / 'mailbot.sqlite'}")
        app = App(settings)
        migrate(app.db)
        _ = app.writer
        arrived = datetime.now(UTC)

        class Given:
            """The mailbox the runner reads: the corpus in INBOX, nothing elsewhere."""

            def folder_state(self, folder: str) -> FolderState | None:
                return FolderState(1, len(raws) + 1, len(raws)) if folder == FOLDER else None

            def fetch_new(self, folder: str, after: int,
                          size: int) -> Iterator[list[FetchedMessage]]:
                for start in range(after, len(raws), size):
                    yield [FetchedMessage(raw, folder, 1, uid, arrived) for uid, raw in
                           enumerate(raws[start:start + size], start + 1)]

            def fetch_uids(self, folder: str, uids: object) -> list[FetchedMessage]:
                return []

        runner = MailboxRunner(app.db, Given(), app.intake,  # type: ignore[arg-type]
                               app._on_quarantine, batch_size=100)
        counts = Counts()
        counts.watch(app.db.engine)
        profiler = cProfile.Profile(time.process_time) if out else None
        started = time.process_time()
        if profiler:
            profiler.enable()
        counts.on = True
        runner.run_pass()
        counts.on = False
        read_done = time.process_time()
        sent = asyncio.run(_drain_all(app))
        if profiler:
            profiler.disable()
            profiler.dump_stats(str(out))
        finished = time.process_time()
        app.close()
        return read_done - started, finished - read_done, sent, counts
    finally:
        sink.terminate()
        sink.wait(10)


async def _drain_all(app: App) -> int:
    sent = 0
    while True:
        report = await app.drain_outbox()
        sent += report.sent
        if report.sent + report.retried + report.failed == 0:
            return sent


def _wait_for_port(port: int) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the SMTP sink did not start on port {port}")


if __name__ == "__main__":
    main()
