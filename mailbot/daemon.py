"""``mailbot run``: the jobs on an APScheduler loop until SIGTERM or SIGINT.

A stop lets the job in hand finish (the message in hand is committed or rolled back whole), then
exits 0. APScheduler's own shutdown would cancel a running coroutine job, so jobs run under a lock
and the stop waits for that lock before shutting the scheduler down.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from mailbot.app import App, idle_watch
from mailbot.deadlines.watch import digest_due
from mailbot.errors import MailbotError, TemporaryError

log = logging.getLogger("mailbot.daemon")

OUTBOX_SECONDS = 30
DEADLINE_SECONDS = 60
MAX_BACKOFF_SECONDS = 300


class Daemon:
    def __init__(self, app: App) -> None:
        self.app = app
        self.busy = {name: asyncio.Lock() for name in ("mailbox", "outbox", "deadlines")}
        self.scheduler = AsyncIOScheduler(
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 60},
            timezone=UTC,
        )
        self._mailbox_failures = 0
        self._skip_mailbox_until = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        settings = self.app.settings
        now = datetime.now(UTC)
        self.scheduler.add_job(self.mailbox_job, "interval", seconds=settings.mailbox.poll_seconds,
                               id="mailbox", next_run_time=now)
        self.scheduler.add_job(self.outbox_job, "interval", seconds=OUTBOX_SECONDS, id="outbox",
                               next_run_time=now)
        self.scheduler.add_job(self.deadlines_job, "interval", seconds=DEADLINE_SECONDS,
                               id="deadlines", next_run_time=now)
        self.scheduler.start()
        idle_stop = threading.Event()
        idle_task = None
        if settings.mailbox.idle:
            idle_task = asyncio.create_task(asyncio.to_thread(
                idle_watch, self.app, idle_stop,
                lambda: loop.call_soon_threadsafe(self.wake, "mailbox")))
        log.info("mailbot running: mailbox %s@%s, folders %s", settings.mailbox.username,
                 settings.mailbox.host, ", ".join(settings.mailbox.folders))
        await stop.wait()
        log.info("stopping: finishing the work in hand")
        idle_stop.set()
        self.scheduler.pause()
        for lock in self.busy.values():
            await lock.acquire()
        self.scheduler.shutdown(wait=False)
        if idle_task is not None:
            await idle_task
        self.app.close()
        log.info("stopped cleanly")

    def wake(self, job_id: str) -> None:
        job = self.scheduler.get_job(job_id)
        if job is not None and self.scheduler.running:
            job.modify(next_run_time=datetime.now(UTC))

    async def mailbox_job(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < self._skip_mailbox_until:
            return
        async with self.busy["mailbox"]:
            try:
                report = await asyncio.to_thread(self.app.read_mailbox)
                await asyncio.to_thread(self.app.beat)  # healthy = the mailbox was read recently
            except TemporaryError as exc:
                self._mailbox_failures += 1
                delay = min(2 ** self._mailbox_failures, MAX_BACKOFF_SECONDS)
                self._skip_mailbox_until = loop.time() + delay
                log.warning("mailbox pass failed (%s); next try in %d s", _one_line(exc), delay)
                return
            except MailbotError:
                log.exception("mailbox pass failed")
                return
            self._mailbox_failures = 0
        if report.opened or report.added or report.quarantined:
            self.wake("outbox")

    async def outbox_job(self) -> None:
        async with self.busy["outbox"]:
            try:
                await self.app.drain_outbox()
            except TemporaryError as exc:
                log.warning("outbox drain failed: %s", _one_line(exc))

    async def deadlines_job(self) -> None:
        async with self.busy["deadlines"]:
            try:
                queued = await asyncio.to_thread(self.app.watch_deadlines)
                queued += await asyncio.to_thread(digest_due, self.app, self.app.clock.now())
            except TemporaryError as exc:
                log.warning("deadline watch failed: %s", _one_line(exc))
                return
        if queued:
            self.wake("outbox")


def _one_line(exc: BaseException) -> str:
    # Driver messages span lines (libpq adds "Is the server running...?"); one event, one line.
    return " ".join(str(exc).split())

