"""Wiring: builds the edges from the settings and runs the jobs.

Concurrency model: the daemon is one asyncio loop. Blocking work (imapclient, and intake, which
writes to the database) runs in worker threads through ``asyncio.to_thread``; SMTP is native
asyncio. The jobs are APScheduler jobs on that loop:

- ``mailbox``: read what is new in every watched folder (the safety-net poll every
  ``poll_seconds``; an IDLE watcher thread per folder, each on its own connection, wakes it at
  once when the server announces mail in the inbox or in the Sent folder);
- ``outbox``: send what is queued (also woken right after intake queued something);
- ``deadlines``: the deadline watch, every minute.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from mailbot.cases.models import Meta, Outbox
from mailbot.clock import Clock, SystemClock
from mailbot.config import Settings
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.deadlines.oncall import people_to_tell
from mailbot.duplicates.wiring import similar_reports
from mailbot.errors import LoginRefused, MailboxUnavailable, TemporaryError
from mailbot.health import records as health
from mailbot.intake.parse_pool import ParsePool, automatic_processes
from mailbot.intake.pipeline import Intake
from mailbot.intake.runner import MailboxRunner, PassReport
from mailbot.mail.imap import ImapMailbox
from mailbot.mail.message import FetchedMessage
from mailbot.mail.smtp import SmtpTransport, Transport
from mailbot.oauth2.wiring import edge_credentials
from mailbot.outbox import DrainReport, drain, enqueue
from mailbot.outgoing import Writer, alert
from mailbot.pgp import wiring as pgp
from mailbot.store import Database, LeaderLock

log = logging.getLogger("mailbot.app")

IDLE_READY_CHECK_SECONDS = 0.5
# After IDLE announced mail, how long the watcher keeps asking (NOOP) before it idles again.
LINGER_SECONDS = 2.0


@dataclass
class CycleReport:
    intake: PassReport
    outbox: DrainReport
    reminders: int


class App:
    """One mailbot: its database, its mailbox, its transport and the jobs that tie them."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 transport: Transport | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        from mailbot.crypto.handover import follow_rotation
        from mailbot.crypto.provision import sealer_for

        self.db = Database(settings.database.url, sealer_for(settings))
        follow_rotation(self.db)
        self.calendar = BusinessCalendar.from_policy(settings.policy)
        # Passwords or OAuth2 tokens; tokens follow the real clock, whatever self.clock says.
        self.credentials = edge_credentials(settings)
        self.transport: Transport = transport or SmtpTransport(
            settings.smtp, credentials=self.credentials.smtp)
        self.leader = LeaderLock(self.db, f"mailbox:{settings.mailbox.username}@"
                                          f"{settings.mailbox.host}")
        self._writer: Writer | None = None
        self._mailbox: ImapMailbox | None = None
        self.unwrapper = pgp.unwrapper(settings, self.clock)
        self.similar = similar_reports(settings, self.db)
        # A backlog's batches are parsed ahead in other processes (started at the first one).
        self.parse_pool = ParsePool(
            automatic_processes() if settings.mailbox.parse_processes is None
            else settings.mailbox.parse_processes, settings.policy.max_message_bytes,
            self.similar)
        # Outbox rows the SMTP server accepted while the database could not record it.
        self._sent_unrecorded: set[int] = set()

    # -- building blocks ---------------------------------------------------------------------

    @property
    def writer(self) -> Writer:
        if self._writer is None:
            self._writer = Writer(settings=self.settings, calendar=self.calendar,
                                  token_key=self._token_key(), sealer=pgp.sealer(self.settings))
        return self._writer

    def _token_key(self) -> bytes:
        """The configured key, or one generated once and kept in the database."""
        if self.settings.secrets.token_key:
            return self.settings.secrets.token_key
        with self.db.session() as session:
            row = session.get(Meta, "token_key")
            if row is None:
                row = Meta(key="token_key", value=secrets.token_hex(32))
                session.add(row)
            return row.value.encode()

    @property
    def intake(self) -> Intake:
        return Intake(settings=self.settings, calendar=self.calendar, writer=self.writer,
                      raw_store=self.db.raw_store, clock=self.clock, unwrapper=self.unwrapper,
                      similar=self.similar)

    def prepare_storage(self) -> None:
        """Refuse a storage key that does not open the database; seal what was left in clear.
        After the schema is migrated, before anything reads content."""
        from mailbot.crypto.provision import prepare

        prepare(self.db)

    def oncall_now(self) -> list[str]:
        return people_to_tell(self.settings, self.clock.now(), self.calendar.tz)

    def tell_team(self, session: Session, *, what: str, case_id: str | None,
                  details: Mapping[str, Any], cause: str, closing: str = "") -> None:
        """Queue an alert to whoever is on call (or the team), in the caller's transaction."""
        now = self.clock.now()
        mail = alert(self.writer, recipients=self.oncall_now(), case_id=case_id, what=what,
                     details=details, cause=cause, now=now, closing=closing)
        if mail is None:
            log.error("nobody to tell (no on-call, no team addresses): %s", what)
            return
        enqueue(session, mail, now)

    def _on_quarantine(self, session: Session, fetched: FetchedMessage, error: str) -> None:
        self.tell_team(session, what="A message could not be processed and was quarantined",
                       case_id=None,
                       details={"folder": fetched.folder, "uid": fetched.uid, "error": error},
                       cause=f"quarantine:{fetched.folder}:{fetched.uidvalidity}:{fetched.uid}")

    def _on_send_failure(self, session: Session, row: Outbox, error: str) -> None:
        self.tell_team(session, what=f"A {row.kind} could not be delivered", case_id=row.case_id,
                       details={"to": ", ".join(row.recipients), "error": error},
                       cause=f"send-failed:{row.message_id}")

    # -- the three jobs, each usable alone ---------------------------------------------------

    def read_mailbox(self, on_commit: Callable[[], None] | None = None) -> PassReport:
        """Blocking: one pass over every watched folder (when this instance is the reader).

        ``on_commit`` is called after each batch that changed something has committed."""
        if not self.leader.try_acquire():
            log.debug("another instance reads the mailbox")
            return PassReport()
        if self._mailbox is not None and not self._mailbox.login_current():
            log.info("the IMAP session's access token is due for renewal; logging in again")
            self.close_mailbox()
        from mailbot.crypto.handover import learn_handover

        learn_handover(self.db)
        if self._mailbox is None:
            mailbox = ImapMailbox(self.settings.mailbox, credentials=self.credentials.imap)
            mailbox.connect()
            self._mailbox = mailbox
        if self.similar is not None:  # after a start: before, not inside, intake's transaction
            self.similar.warm_up()
        runner = MailboxRunner(self.db, self._mailbox, self.intake, self._on_quarantine,
                               batch_size=self.settings.mailbox.batch_size, on_commit=on_commit,
                               parse_pool=self.parse_pool)
        try:
            report = runner.run_pass()
        except MailboxUnavailable:
            self.close_mailbox()
            raise
        with self.db.session() as session:  # `mailbot health`: someone (this host) read it
            health.mailbox_read(session, self.clock.now())
        return report

    def close_mailbox(self) -> None:
        if self._mailbox is not None:
            try:
                self._mailbox.close()
            except Exception:  # closing a broken connection may fail too; it is gone either way
                log.debug("closing the mailbox failed", exc_info=True)
            self._mailbox = None

    async def drain_outbox(self, *, ignore_backoff: bool = False) -> DrainReport:
        return await drain(self.db, self.transport, self.clock, on_failure=self._on_send_failure,
                           ignore_backoff=ignore_backoff, unrecorded=self._sent_unrecorded)

    def watch_deadlines(self, now: datetime | None = None) -> int:
        """Queue the reminders and escalations that are due (the deadlines, the disclosure
        date, the reporter's updates); returns how many."""
        from mailbot.deadlines.promises import watch_promises
        from mailbot.deadlines.watch import watch

        at = now or self.clock.now()
        return watch(self, at) + watch_promises(self, at)

    # -- run --once and run --------------------------------------------------------------------

    async def run_once(self) -> CycleReport:
        """All new mail, every queued message tried once (backoff ignored), the deadline watch."""
        intake = await asyncio.to_thread(self.read_mailbox)
        self.close_mailbox()
        reminders = self.watch_deadlines()
        outbox = await self.drain_outbox(ignore_backoff=True)
        return CycleReport(intake=intake, outbox=outbox, reminders=reminders)

    def beat(self) -> None:
        """Record that this host's daemon is alive (read by ``mailbot health``)."""
        with self.db.session() as session:
            health.beat(session, self.clock.now())

    def close(self) -> None:
        self.close_mailbox()
        self.parse_pool.close()
        self.leader.release()
        self.db.dispose()


def idle_watch(app: App, folder: str, stop: threading.Event, on_news: Any,
               mailbox_ok: threading.Event) -> None:
    """Blocking: keep an IDLE connection on ``folder`` and call ``on_news`` when mail arrives.

    It connects only while ``mailbox_ok`` is set (the mailbox job read the mailbox): the mailbox
    job owns login failures and their slow retries, and a watcher that logged in on its own
    schedule would multiply the failed logins that get an account locked.
    """
    settings = app.settings.mailbox
    delay = 1.0
    while not stop.is_set():
        if not mailbox_ok.wait(IDLE_READY_CHECK_SECONDS):
            continue
        connected = False
        try:
            with ImapMailbox(settings, credentials=app.credentials.imap) as mailbox:
                connected = True
                delay = 1.0
                news = False
                while not stop.is_set() and mailbox.login_current():  # else log in afresh
                    # Right after news, more is likely (a burst, a backlog being delivered):
                    # ask for it with NOOPs for a while instead of waiting for IDLE's notice.
                    news = mailbox.wait_for_news(folder, settings.poll_seconds, stop=stop,
                                                 linger=LINGER_SECONDS if news else 0.0)
                    if news:
                        on_news()
        except LoginRefused:
            mailbox_ok.clear()  # the mailbox job will say so at its next pass
            on_news()
            continue
        except TemporaryError as exc:
            if connected:
                log.warning("IDLE on %s: connection lost (%s); reconnecting in %.0f s",
                            folder, exc, delay)
            else:
                log.warning("IDLE on %s: cannot connect (%s); next try in %.0f s",
                            folder, exc, delay)
            stop.wait(delay)
            delay = min(delay * 2, 60.0)
