"""The health records in the ``meta`` table: written by the daemon, read by ``mailbot health``.

- ``heartbeat:<host>``: this host's daemon ran its jobs (every instance writes its own);
- ``mailbox-read``: the last completed pass over the mailbox and the host that made it (only the
  instance that actually read it writes this);
- ``problem:<service>``: a failure a person must fix (``imap``, ``smtp``), since when, and which
  config key to change; removed when the service works again;
- ``trouble:imap``: the last failed pass over the mailbox that was weather (a server down, a
  dropped connection), so that a mailbox nobody read lately comes with the reason; removed by
  the next pass that works.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.cases.models import Meta

HEARTBEAT = "heartbeat:"
MAILBOX_READ = "mailbox-read"
PROBLEM = "problem:"
TROUBLE = "trouble:"


def this_host() -> str:
    return socket.gethostname()[:80]


@dataclass(frozen=True, kw_only=True)
class Problem:
    service: str  # "imap" | "smtp"
    host: str
    since: datetime
    error: str
    key: str  # the config key(s) to fix


@dataclass(frozen=True, kw_only=True)
class Status:
    heartbeats: dict[str, datetime]  # host -> last beat
    read_by: str | None  # the host that last read the mailbox
    read_at: datetime | None
    problems: list[Problem]
    last_failure: tuple[datetime, str] | None = None  # the mailbox's, when weather


def _put(session: Session, key: str, value: str) -> None:
    row = session.get(Meta, key)
    if row is None:
        session.add(Meta(key=key, value=value))
    else:
        row.value = value


def beat(session: Session, now: datetime, host: str | None = None) -> None:
    _put(session, HEARTBEAT + (host or this_host()), now.isoformat())


def mailbox_read(session: Session, now: datetime, host: str | None = None) -> None:
    _put(session, MAILBOX_READ, json.dumps({"host": host or this_host(), "at": now.isoformat()}))
    trouble = session.get(Meta, TROUBLE + "imap")
    if trouble is not None:
        session.delete(trouble)


def mailbox_failed(session: Session, now: datetime, error: str) -> None:
    """A pass over the mailbox failed for a reason that should pass on its own."""
    _put(session, TROUBLE + "imap", json.dumps({"at": now.isoformat(), "error": error[:500]}))


def set_problem(session: Session, *, service: str, error: str, key: str, now: datetime,
                host: str | None = None) -> datetime:
    """Record (or refresh) a problem; returns when it started, which a restart does not reset."""
    row = session.get(Meta, PROBLEM + service)
    since = now
    if row is not None:
        since = datetime.fromisoformat(json.loads(row.value)["since"])
    _put(session, PROBLEM + service, json.dumps({
        "host": host or this_host(), "since": since.isoformat(), "error": error, "key": key}))
    return since


def clear_problem(session: Session, service: str) -> bool:
    """Forget ``service``'s problem; True when there was one."""
    row = session.get(Meta, PROBLEM + service)
    if row is None:
        return False
    session.delete(row)
    return True


def read_status(session: Session) -> Status:
    beats: dict[str, datetime] = {}
    read_by: str | None = None
    read_at: datetime | None = None
    problems: list[Problem] = []
    last_failure: tuple[datetime, str] | None = None
    rows = session.scalars(select(Meta).where(
        Meta.key.startswith(HEARTBEAT) | Meta.key.startswith(PROBLEM)
        | (Meta.key == MAILBOX_READ) | (Meta.key == TROUBLE + "imap")))
    for row in rows:
        if row.key == TROUBLE + "imap":
            value = json.loads(row.value)
            last_failure = (datetime.fromisoformat(value["at"]), value["error"])
        elif row.key.startswith(HEARTBEAT):
            beats[row.key.removeprefix(HEARTBEAT)] = datetime.fromisoformat(row.value)
        elif row.key == MAILBOX_READ:
            value = json.loads(row.value)
            read_by, read_at = value["host"], datetime.fromisoformat(value["at"])
        else:
            value = json.loads(row.value)
            problems.append(Problem(service=row.key.removeprefix(PROBLEM), host=value["host"],
                                    since=datetime.fromisoformat(value["since"]),
                                    error=value["error"], key=value["key"]))
    problems.sort(key=lambda p: p.service)
    return Status(heartbeats=beats, read_by=read_by, read_at=read_at, problems=problems,
                  last_failure=last_failure)
