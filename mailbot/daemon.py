"""``mailbot run``: the jobs on an APScheduler loop until SIGTERM or SIGINT.

A stop lets the job in hand finish (the message in hand is committed or rolled back whole), then
exits 0. APScheduler's own shutdown would cancel a running coroutine job, so jobs run under a lock
and the stop waits for that lock before shutting the scheduler down.

Failures come in two kinds. Weather (a server down, a dropped connection) is retried soon, with a
short backoff, at WARNING. A refused login is a person's job: see ``mailbot.health.logins``. In
both cases the job's next run is moved to the end of the wait, so the wait that is logged is the
wait that happens.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.exc import SQLAlchemyError

from mailbot.app import App, idle_watch
from mailbot.deadlines.watch import digest_due
from mailbot.errors import LoginRefused, MailbotError, SmtpLoginRefused, TemporaryError
from mailbot.health import records as health
from mailbot.health.logins import RefusedLogins
from mailbot.intake.runner import PassReport

log = logging.getLogger("mailbot.daemon")

OUTBOX_SECONDS = 30
DEADLINE_SECONDS = 60
RETENTION_SECONDS = 24 * 3600  # the retention policy is applied once a day
REPORT_SECONDS = 600  # how often the monthly report job looks whether its mail is due
MAX_BACKOFF_SECONDS = 300


class Daemon:
    def __init__(self, app: App) -> None:
        self.app = app
        self.busy = {name: asyncio.Lock()
                     for name in ("mailbox", "outbox", "deadlines", "report")}
        self.scheduler = AsyncIOScheduler(
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 60},
            timezone=UTC,
        )
        self._mailbox_failures = 0
        self._not_before = {"mailbox": 0.0, "outbox": 0.0}  # loop time before which a job waits
        self.imap_login = RefusedLogins(app, "imap", app.settings.mailbox.login_retry_seconds)
        self.smtp_login = RefusedLogins(app, "smtp", app.settings.smtp.login_retry_seconds)
        # Set once this instance has read the mailbox; the IDLE watchers connect only then.
        self.mailbox_ok = threading.Event()
        # Jobs woken while they ran: each goes round once more when done.
        self._again: set[str] = set()

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
        stop_extras = self._start_extras(now)
        self.scheduler.start()
        idle_stop = threading.Event()
        idle_tasks = []
        if settings.mailbox.idle:
            # One connection per folder: IDLE watches the selected folder only, and a team reply
            # sent from the shared mailbox lands in the Sent folder, not the inbox.
            idle_tasks = [asyncio.create_task(asyncio.to_thread(
                idle_watch, self.app, folder, idle_stop,
                lambda: loop.call_soon_threadsafe(self.wake, "mailbox"), self.mailbox_ok))
                for folder in settings.mailbox.folders]
        log.info("mailbot running: mailbox %s@%s, folders %s", settings.mailbox.username,
                 settings.mailbox.host, ", ".join(settings.mailbox.folders))
        await stop.wait()
        log.info("stopping: finishing the work in hand")
        idle_stop.set()
        self.scheduler.pause()
        for lock in self.busy.values():
            await lock.acquire()
        self.scheduler.shutdown(wait=False)
        stop_extras()
        for task in idle_tasks:
            await task
        self.app.close()
        log.info("stopped cleanly")

    def _start_extras(self, now: datetime) -> Callable[[], None]:
        """The optional parts (own packages): the monthly report job and the metrics endpoint.
        Returns what stops them."""
        settings = self.app.settings
        if settings.report.monthly_to:
            self.scheduler.add_job(self.report_job, "interval", seconds=REPORT_SECONDS,
                                   id="report", next_run_time=now)
        retention = settings.retention
        if retention.purge_closed_after_days > 0 or retention.mailbox_keep_days > 0:
            self.scheduler.add_job(self.retention_job, "interval", seconds=RETENTION_SECONDS,
                                   id="retention", next_run_time=now)
        if settings.metrics.listen is None:
            return lambda: None
        from mailbot.metrics.server import start_metrics_server

        metrics = start_metrics_server(self.app.db, self.app.calendar, settings.policy,
                                       self.app.clock.now, *settings.metrics.listen)
        return metrics.stop

    async def report_job(self) -> None:
        from mailbot.report.monthly import monthly_report_due

        async with self.busy["report"]:
            try:
                queued = await asyncio.to_thread(monthly_report_due, self.app,
                                                 self.app.clock.now())
            except TemporaryError as exc:
                log.warning("monthly report failed: %s", _one_line(exc))
                return
        if queued:
            self.wake("outbox")

    async def retention_job(self) -> None:
        """Once a day: purge the cases the retention policy says to, and delete old processed
        mail from the mailbox (mailbot.retention)."""
        from mailbot.cases.service import Actor
        from mailbot.retention.mailbox import KeepDays
        from mailbot.retention.purge import apply_retention

        retention, now = self.app.settings.retention, self.app.clock.now()
        try:
            purged = await asyncio.to_thread(apply_retention, self.app.db,
                                             retention.purge_closed_after_days,
                                             Actor("mailbot", "retention"), now)
            keep = KeepDays(self.app.settings.mailbox, self.app.credentials.imap)
            await asyncio.to_thread(keep.apply, self.app.db, retention.mailbox_keep_days, now)
        except TemporaryError as exc:
            log.warning("retention pass failed: %s", _one_line(exc))
            return
        if purged:
            log.info("retention: purged %d closed cases", len(purged))

    def wake(self, job_id: str) -> None:
        """Run ``job_id`` now, unless it is waiting out a backoff. A job that is running goes
        round once more when it is done: the scheduler drops a wake-up that comes while its job
        runs, and mail announced during a long pass would wait for the next poll."""
        if job_id in self.busy and self.busy[job_id].locked():
            self._again.add(job_id)
            return
        job = self.scheduler.get_job(job_id)
        if job is None or not self.scheduler.running:
            return
        if asyncio.get_running_loop().time() < self._not_before.get(job_id, 0.0):
            return
        job.modify(next_run_time=datetime.now(UTC))

    def _go_again(self, job_id: str) -> bool:
        """Whether ``job_id`` was woken while it ran (and may run now); clears the mark."""
        woken = job_id in self._again
        self._again.discard(job_id)
        return woken and not self._waiting(job_id)

    def _postpone(self, job_id: str, seconds: float) -> None:
        """The job's next run is in ``seconds``, not at its next interval nor at a wake-up."""
        self._not_before[job_id] = asyncio.get_running_loop().time() + seconds
        job = self.scheduler.get_job(job_id)
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC) + timedelta(seconds=seconds))

    def _waiting(self, job_id: str) -> bool:
        return asyncio.get_running_loop().time() < self._not_before.get(job_id, 0.0)

    async def mailbox_job(self) -> None:
        if self._waiting("mailbox"):
            return
        async with self.busy["mailbox"]:
            changed = False
            while True:
                report = await self._read_mailbox()
                if report is None:
                    return
                changed = changed or bool(report.opened or report.added or report.quarantined)
                if not self._go_again("mailbox"):
                    break
        if changed:
            self.wake("outbox")

    async def _read_mailbox(self) -> PassReport | None:
        """One pass; None when it failed (and what follows from that is arranged)."""
        loop = asyncio.get_running_loop()

        def committed() -> None:  # in intake's thread, after each batch that changed something
            loop.call_soon_threadsafe(self.wake, "outbox")

        try:
            report = await asyncio.to_thread(self.app.read_mailbox, committed)
        except LoginRefused as exc:
            self.mailbox_ok.clear()
            delay = await asyncio.to_thread(self.imap_login.refused, exc)
            self._postpone("mailbox", delay)
            self.wake("outbox")  # the alert to on-call
            return None
        except TemporaryError as exc:
            self.mailbox_ok.clear()
            self._mailbox_failures += 1
            delay = min(2 ** self._mailbox_failures, MAX_BACKOFF_SECONDS)
            # Said before it is arranged: the next try is then never sooner than the log says.
            log.warning("mailbox pass failed (%s); next try in %d s", _one_line(exc), delay)
            self._postpone("mailbox", delay)
            await self._note_failure(_one_line(exc))
            return None
        except MailbotError:
            log.exception("mailbox pass failed")
            return None
        self._mailbox_failures = 0
        if self.app.leader.held:
            await asyncio.to_thread(self.imap_login.accepted)
            self.mailbox_ok.set()
        return report

    async def _note_failure(self, error: str) -> None:
        """For `mailbot health`: why the mailbox was not read (when the database can say it)."""
        def note() -> None:
            with self.app.db.session() as session:
                health.mailbox_failed(session, self.app.clock.now(), error)
        try:
            await asyncio.to_thread(note)
        except (MailbotError, SQLAlchemyError) as exc:  # best effort: the database may be down
            log.debug("could not record the failure: %s", exc)

    async def _beat(self) -> None:
        """This host's daemon is alive (``mailbot health``), whether or not it reads the mailbox."""
        try:
            await asyncio.to_thread(self.app.beat)
        except TemporaryError as exc:
            log.debug("no heartbeat: %s", exc)

    async def outbox_job(self) -> None:
        if self._waiting("outbox"):
            return
        async with self.busy["outbox"]:
            while True:
                try:
                    report = await self.app.drain_outbox()
                except SmtpLoginRefused as exc:
                    delay = await asyncio.to_thread(self.smtp_login.refused, exc)
                    self._postpone("outbox", delay)
                    return
                except TemporaryError as exc:
                    log.warning("outbox drain failed: %s", _one_line(exc))
                    return
                if report.sent or report.retried or report.failed:  # the server let us in
                    await asyncio.to_thread(self.smtp_login.accepted)
                if not self._go_again("outbox"):
                    return

    async def deadlines_job(self) -> None:
        # The heartbeat rides on the job that runs every minute whatever happens to the mailbox
        # (whose job may wait out a long backoff, or belong to another instance).
        await self._beat()
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

