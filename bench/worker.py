"""One measurement in a process of its own, so that its peak memory is its own.

    python -m bench.worker '{"job": "floor", ...}'

prints one JSON object on its last line of stdout. Jobs:

- ``floor``: what reading the mailbox costs at the least: imapclient UID FETCH of every message
  in batches, and a mail-parser parse of each. Nothing is stored, nothing is sent.
- ``intake``: mailbot's full intake: ``App.read_mailbox()`` until nothing is new (cases opened,
  receipts queued), then the outbox drained to the SMTP sink. With ``"split": true`` the time
  of each step (fetch, parse, store, compose, send, commit) is measured too (``bench.split``).

Timing starts after the imports and the database schema are in place; both jobs connect and log
in to IMAP inside the timed part.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import sys
import time
from pathlib import Path
from typing import Any

from bench import memory, split
from bench.settings import HOST, Imap, bench_settings


def floor(spec: dict[str, Any]) -> dict[str, Any]:
    import mailparser
    from imapclient import IMAPClient

    logging.getLogger("mailparser").setLevel(logging.CRITICAL)
    imap = Imap(**spec["imap"])
    batch_size = int(spec.get("batch_size", 100))
    memory.reset_peak()
    baseline = memory.rss()
    started, cpu = time.perf_counter(), _cpu()
    messages = size = parse_failures = 0
    with IMAPClient(HOST, port=imap.port, ssl=False, timeout=60) as client:
        # The floor is the least a fetch can cost: without imaplib's debug formatting of every
        # response, which imapclient switches on (mailbot switches it off too).
        client._imap.debug = 0
        client.login(imap.username, imap.password)
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search(["ALL"]))
        for start in range(0, len(uids), batch_size):
            batch = uids[start : start + batch_size]
            response = client.fetch(batch, ["BODY.PEEK[]"])
            for uid in batch:
                raw = response[uid][b"BODY[]"]
                messages += 1
                size += len(raw)
                try:
                    mailparser.parse_from_bytes(raw)
                except Exception:  # the floor only pays for the attempt, as mailbot does
                    parse_failures += 1
            del response
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_seconds": _cpu() - cpu,
        "messages": messages,
        "bytes": size,
        "parse_failures": parse_failures,
        **_memory(baseline),
    }


def intake(spec: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy import func, select

    from mailbot.app import App
    from mailbot.cases.models import Case, Outbox
    from mailbot.store import migrate

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for noisy in ("mailparser", "aiosmtplib", "imapclient", "alembic"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    settings = bench_settings(
        Imap(**spec["imap"]),
        int(spec["smtp_port"]),
        spec["db_url"],
        batch_size=int(spec.get("batch_size", 100)),
        encryption=str(spec.get("encryption", "aes-256-gcm")),
    )
    app = App(settings)
    migrate(app.db)
    app.prepare_storage()
    _ = app.writer  # the token key and the template environment, as a running daemon has them
    timers = split.Timers() if spec.get("split") else None
    missing = split.install(timers) if timers is not None else []
    memory.reset_peak()
    baseline = memory.rss()
    started, cpu = time.perf_counter(), _cpu()
    counts, sent, drains, read_done = asyncio.run(
        _read_and_drain(app, timers, spec.get("profile")))
    finished, cpu = time.perf_counter(), _cpu() - cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    parse_cpu = children.ru_utime + children.ru_stime
    steps = None
    if timers is not None:
        steps = {**timers.result(counts["passed"], finished - started, cpu), "missing": missing}
    peak = _memory(baseline)
    with app.db.session() as session:
        cases = session.scalar(select(func.count()).select_from(Case)) or 0
        queued = (
            session.scalar(select(func.count()).select_from(Outbox).where(Outbox.state != "sent"))
            or 0
        )
    app.close()
    return {
        "seconds": finished - started,
        "cpu_seconds": cpu + parse_cpu,
        "parse_processes": app.parse_pool.processes,
        "parse_process_cpu_seconds": parse_cpu,
        "rss_parse_process_peak": children.ru_maxrss * 1024,
        "read_seconds": read_done - started,
        "drain_seconds": finished - read_done,
        **counts,
        "cases": cases,
        "sent": sent,
        "drains": drains,
        "unsent": queued,
        "split": steps,
        **peak,
    }


async def _read_and_drain(
    app: Any, timers: split.Timers | None, profile: str | None
) -> tuple[dict[str, int], int, int, float]:
    """As the daemon does it: the reading in a thread of its own, pass after pass until one
    finds nothing new; the outbox drained in the event loop after each batch that committed,
    beside the reading, and once more at the end. The counts, receipts sent, drains, and when
    the reading ended. ``profile``: a profile of the reading's thread is written there."""
    loop = asyncio.get_running_loop()
    committed = asyncio.Event()

    def on_commit() -> None:  # in the reading's thread
        loop.call_soon_threadsafe(committed.set)

    reading = asyncio.ensure_future(asyncio.to_thread(_read_all, app, on_commit, profile))
    sent = drains = 0
    while True:
        woken = asyncio.ensure_future(committed.wait())
        await asyncio.wait({reading, woken}, return_when=asyncio.FIRST_COMPLETED)
        woken.cancel()
        committed.clear()
        done = reading.done()
        if timers is not None:
            timers.enter("send")
        try:
            more_sent, more_drains = await _drain_all(app)
        finally:
            if timers is not None:
                timers.leave()
        sent, drains = sent + more_sent, drains + more_drains
        if done:
            counts, read_done = reading.result()
            return counts, sent, drains, read_done


def _read_all(app: Any, on_commit: Any, profile: str | None) -> tuple[dict[str, int], float]:
    profiler = _profiler(profile)  # in this thread: a profiler sees the thread it started in
    counts = dict.fromkeys(("passes", "opened", "added", "duplicates", "failed", "passed"), 0)
    while True:
        report = app.read_mailbox(on_commit)
        counts["passes"] += 1
        counts["opened"] += report.opened
        counts["added"] += report.added
        counts["duplicates"] += report.duplicates
        counts["failed"] += report.failed + report.quarantined
        counts["passed"] += report.processed + report.failed + report.quarantined
        if report.processed + report.failed + report.quarantined == 0:
            break
    app.close_mailbox()
    # The parse processes are idle now; once they have exited their CPU time and peak memory
    # are known (rusage of the children) and count in the cycle's.
    app.parse_pool.close()
    done = time.perf_counter()
    if profiler is not None:
        profiler.stop()
    return counts, done


async def _drain_all(app: Any) -> tuple[int, int]:
    sent = drains = 0
    while True:
        report = await app.drain_outbox()
        drains += 1
        sent += report.sent
        if report.sent + report.retried + report.failed == 0:
            return sent, drains


def _profiler(path: str | None) -> Any:
    """pyinstrument (wall clock; HTML and text), or cProfile (CPU; pstats) for a ``.prof`` path."""
    if not path:
        return None
    if path.endswith(".prof"):
        return _CProfile(path)
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.005)
    profiler.start()
    return _Pyinstrument(profiler, path)


class _Pyinstrument:
    def __init__(self, profiler: Any, path: str) -> None:
        self.profiler, self.path = profiler, path

    def stop(self) -> None:
        self.profiler.stop()
        self.profiler.write_html(self.path)
        text = self.profiler.output_text(unicode=True, show_all=False)
        Path(self.path).with_suffix(".txt").write_text(text)


class _CProfile:
    def __init__(self, path: str) -> None:
        import cProfile

        self.path = path
        self.profiler = cProfile.Profile(time.process_time)  # CPU: contention does not count
        self.profiler.enable()

    def stop(self) -> None:
        self.profiler.disable()
        self.profiler.dump_stats(self.path)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _memory(baseline: int) -> dict[str, int]:
    peak = memory.peak_rss()
    return {"rss_baseline": baseline, "rss_peak": peak, "rss_peak_delta": max(0, peak - baseline)}


JOBS = {"floor": floor, "intake": intake}


def main() -> None:
    spec = json.loads(sys.argv[1])
    result = JOBS[spec["job"]](spec)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
