"""What every request needs: settings, the database (read side and audit side), the clock."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from mailbot.cases.models import AccessLog, Meta
from mailbot.clock import Clock, SystemClock
from mailbot.config import Settings
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.store import Database, RawStore, make_engine
from mailbot.web.access import Access

audit_log = logging.getLogger("mailbot.web.audit")


def read_engine(url: str) -> Engine:
    """An engine for the pages' reads that never stands in intake's way.

    The daemon's engine starts every SQLite transaction with BEGIN IMMEDIATE (it is a writer);
    reads through it would queue behind intake's batches for the write lock. This one reads in
    WAL mode's own snapshots, which neither wait for the writer nor make it wait, and refuses to
    write at all (``query_only``)."""
    if not url.startswith("sqlite"):
        return make_engine(url)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA query_only=ON")
        cur.close()

    return engine


@dataclass
class WebContext:
    settings: Settings
    db: Database  # for the audit trail (the only writes)
    reads: sessionmaker[Session]
    raw_store: RawStore
    calendar: BusinessCalendar
    clock: Clock
    access: Access

    @classmethod
    def build(cls, settings: Settings, *, clock: Clock | None = None) -> WebContext:
        from mailbot.crypto.handover import follow_rotation
        from mailbot.crypto.provision import prepare, sealer_for

        db = Database(settings.database.url, sealer_for(settings, may_generate=False))
        prepare(db)  # a wrong storage key is refused before anything is served
        follow_rotation(db)
        key = settings.web.session_key or _stored_session_key(db)
        return cls(settings=settings, db=db,
                   reads=sessionmaker(read_engine(settings.database.url), expire_on_commit=False,
                                      info={"sealer": db.sealer}),
                   raw_store=db.raw_store,
                   calendar=BusinessCalendar.from_policy(settings.policy),
                   clock=clock or SystemClock(), access=Access(settings.web, key))

    @contextmanager
    def read(self) -> Iterator[Session]:
        session = self.reads()
        try:
            yield session
        finally:
            session.close()  # ends the read; the loaded objects stay readable

    def now(self) -> datetime:
        return self.clock.now()

    def audit(self, *, actor: str, action: str, address: str, case_id: str | None = None,
              **detail: Any) -> None:
        """One row in ``access_log`` (and one log line): who did what, from where, when."""
        audit_log.info("%s %s %s%s", address, actor or "-", action,
                       f" {case_id}" if case_id else "")
        with self.db.session() as session:
            session.add(AccessLog(at=self.now(), actor=actor[:320], action=action,
                                  case_id=case_id, address=address[:64], detail=detail))

    def close(self) -> None:
        self.db.dispose()
        engine = self.reads.kw["bind"]
        if isinstance(engine, Engine):
            engine.dispose()


def _stored_session_key(db: Database) -> bytes:
    """A key generated once and kept in the database, so that sessions survive a restart and
    every instance on the same database accepts the others' cookies."""
    with db.session() as session:
        row = session.get(Meta, "web_session_key")
        if row is None:
            row = Meta(key="web_session_key", value=secrets.token_hex(32))
            session.add(row)
        return row.value.encode()
