"""Refused logins: failures a person must fix, not weather.

A server that refuses mailbot's credentials will go on refusing them until someone changes the
config (or the account), and many providers lock an account after repeated failed logins. So a
refusal is said once at ERROR level, naming the key to fix; the login is retried with a backoff
that grows to half an hour; ``mailbot health`` shows it; and on-call gets one alert by mail (for
IMAP; it goes out as soon as SMTP works). Each later refusal is one INFO line with the real delay.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy.orm import Session

from mailbot.clock import Clock
from mailbot.errors import LoginRefused
from mailbot.health import records
from mailbot.store import Database

log = logging.getLogger("mailbot.health")

MAX_DELAY_SECONDS = 30 * 60
SERVICE_LABELS = {"imap": "IMAP", "smtp": "SMTP"}


class Teller(Protocol):
    """Whoever can queue an alert to on-call (the app), in the caller's transaction."""

    db: Database
    clock: Clock

    def tell_team(self, session: Session, *, what: str, case_id: str | None,
                  details: Mapping[str, Any], cause: str, closing: str = "") -> None: ...


class RefusedLogins:
    """The state of one service's login (``imap`` or ``smtp``) as the daemon sees it."""

    def __init__(self, app: Teller, service: str, first_delay: float) -> None:
        self.app = app
        self.service = service
        self.first_delay = first_delay
        self.refusals = 0
        self._clean = False  # True once a success has cleared any problem left in the database

    def next_delay(self) -> float:
        """The wait after the next refusal: first_delay, doubling, at most half an hour."""
        cap = max(self.first_delay, MAX_DELAY_SECONDS)
        return float(min(self.first_delay * 2 ** min(self.refusals, 30), cap))

    def refused(self, exc: LoginRefused) -> float:
        """Blocking (database): record the refusal; returns how long to wait before the next try."""
        delay = self.next_delay()
        first = self.refusals == 0
        self.refusals += 1
        self._clean = False
        with self.app.db.session() as session:
            now = self.app.clock.now()
            since = records.set_problem(session, service=self.service, error=str(exc),
                                        key=exc.key, now=now)
            if first and self.service == "imap":
                self.app.tell_team(
                    session, what="mailbot cannot read the mailbox: the IMAP login is refused",
                    case_id=None,
                    details={"error": str(exc), "to fix": exc.key,
                             "since": since.isoformat(timespec="seconds")},
                    cause=f"login-refused:{self.service}:{since.isoformat()}",
                    closing="Nothing is lost: new reports wait in the mailbox and are read once "
                            "the login works. mailbot tries again after a growing wait (up to "
                            "30 minutes) and says so in `mailbot health`; it reads its config "
                            "at start, so restart it after fixing the key above.")
        if first:
            log.error("%s. Next try in %d s (the wait doubles up to %d min, so that retries "
                      "do not lock the account)", exc, delay, MAX_DELAY_SECONDS // 60)
        else:
            log.info("%s login refused again (try %d); next try in %d s",
                     SERVICE_LABELS.get(self.service, self.service), self.refusals, delay)
        return delay

    def accepted(self) -> None:
        """Blocking (database): the login works (again); forget the problem."""
        if self._clean:
            return
        with self.app.db.session() as session:
            had_problem = records.clear_problem(session, self.service)
        if self.refusals or had_problem:
            log.info("%s login accepted again after %d refused tries",
                     SERVICE_LABELS.get(self.service, self.service), self.refusals)
        self.refusals = 0
        self._clean = True
