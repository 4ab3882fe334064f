"""Cases: ids, the status machine and the audit trail.

Every change goes through a function here, and every function records an event saying who did it,
when, and from which message or CLI call. A transition that cannot apply raises
``TransitionRefused`` with the reason; the caller decides whether that is a CLI error or a note on
the case.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailbot.cases.models import Case, CaseCounter, Event
from mailbot.cases.vocabulary import (
    ACKNOWLEDGED,
    ANONYMOUS,
    ASSESSED,
    CLOSE_REASONS,
    CLOSED,
    NAMED,
    NEW,
    OPEN_STATUSES,
    RESOLVED,
    SEVERITIES,
)
from mailbot.errors import MailbotError

CVE_PATTERN = re.compile(r"^CVE-\d{4}-\d{4,19}$")
MAX_CVES = 50  # per case
MAX_CREDIT = 200  # characters, the column's size
MAX_DUPLICATE_CHAIN = 100  # links followed to a duplicate's root before giving up


class TransitionRefused(MailbotError):
    """A transition or command that cannot apply to the case as it stands.

    ``str(exc)`` is the reason recorded on the case and shown to the team; it may quote what was
    asked. ``log_reason`` is what a log line may say: fixed words, never any input."""

    def __init__(self, reason: str, *, log_reason: str = "not applicable to the case as it stands"):
        super().__init__(reason)
        self.log_reason = log_reason


@dataclass(frozen=True)
class Actor:
    """Who asked for a change: a team address, ``cli:<user>`` or ``mailbot``; and from where."""

    name: str
    source: str  # "message:<Message-ID>", "cli", "deadline-watch", ...


def case_tag_pattern(prefix: str) -> re.Pattern[str]:
    # At most 12 digits: a longer number is no case of ours, and would not fit the id column.
    return re.compile(r"\[(" + re.escape(prefix) + r"-\d{4}-\d{4,12})\]")


def next_case_id(session: Session, prefix: str, year: int) -> str:
    """The next id such as ``SEC-2026-0042``, unique across instances sharing a database.

    The UPDATE takes a row lock held until commit, so two instances serialise on the counter.
    It is a Core statement, built once, on the session's connection: the ORM's UPDATE first looks
    for counter objects to synchronise among everything the session holds, and cost several times
    as much (once per new case; the benchmark's backlog showed it)."""
    key = {"counter_prefix": prefix, "counter_year": year}
    number = session.connection().execute(_BUMP, key).scalar()
    if number is None:
        try:
            with session.begin_nested():
                session.execute(insert(CaseCounter).values(prefix=prefix, year=year,
                                                           last_number=0))
        except IntegrityError:
            pass  # another instance created the row first
        number = session.connection().execute(_BUMP, key).scalar_one()
    return f"{prefix}-{year}-{number:04d}"


_COUNTERS = CaseCounter.__table__.c
_BUMP = (
    update(CaseCounter)
    .where(_COUNTERS.prefix == bindparam("counter_prefix"),
           _COUNTERS.year == bindparam("counter_year"))
    .values(last_number=_COUNTERS.last_number + 1)
    .returning(_COUNTERS.last_number)
)


def open_case(
    session: Session,
    *,
    case_id: str,
    reporter: str,
    reporter_name: str,
    subject: str,
    received_at: datetime,
    ack_due: datetime | None,
    flags: list[str],
    mentioned_tag: str,
    actor: Actor,
    now: datetime,
) -> Case:
    case = Case(
        id=case_id,
        status=NEW,
        reporter=reporter,
        reporter_name=reporter_name[:200],
        subject=subject[:300],
        flags=sorted(set(flags)),
        mentioned_tag=mentioned_tag,
        received_at=received_at,
        created_at=now,
        updated_at=now,
        ack_due=ack_due,
        cve=[],
    )
    session.add(case)
    detail: dict[str, Any] = {"ack_due": _iso(ack_due), "flags": case.flags}
    if mentioned_tag:
        detail["mentioned_tag"] = mentioned_tag
    record(session, case, actor, "opened", detail, received_at)
    return case


def record(
    session: Session, case: Case, actor: Actor, action: str, detail: dict[str, Any],
    now: datetime,
) -> Event:
    event = Event(case_id=case.id, at=now, actor=actor.name[:320], action=action, detail=detail,
                  source=actor.source[:1000])
    session.add(event)
    # An event may be older than the case's last change (a backfilled message's command is
    # stamped when the message arrived): updated_at only moves forward.
    if case.updated_at is None or now > case.updated_at:
        case.updated_at = now
    return event


def add_flags(case: Case, *flags: str) -> None:
    case.flags = sorted(set(case.flags) | set(flags))


def get_case(session: Session, case_id: str, *, for_update: bool = False) -> Case | None:
    stmt = select(Case).where(Case.id == case_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


# ---------------------------------------------------------------------------------------------
# Transitions. ``due_after`` computes "N business days after" with the team's calendar.

DueAfter = Callable[[datetime], datetime]


def acknowledge(
    session: Session, case: Case, actor: Actor, now: datetime, assessment_due_after: DueAfter,
    *, explicit: bool,
) -> None:
    if case.status != NEW:
        raise TransitionRefused(f"{case.id} is {case.status}, not new: nothing to acknowledge")
    case.status = ACKNOWLEDGED
    case.acknowledged_at = now
    case.assessment_due = assessment_due_after(now)
    record(session, case, actor, "acknowledged",
           {"assessment_due": _iso(case.assessment_due), "explicit": explicit}, now)


def assess(
    session: Session, case: Case, actor: Actor, now: datetime, *, severity: str,
    target: date | None, resolution_due: datetime | None, assessment_due_after: DueAfter,
    update_due: datetime | None = None,
) -> None:
    """``update_due``: when on-call is first reminded to update the reporter (None: never)."""
    if severity not in SEVERITIES:
        raise TransitionRefused(
            f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}",
            log_reason="unknown severity")
    if case.status not in OPEN_STATUSES:
        raise TransitionRefused(f"{case.id} is {case.status}: reopen it before assessing")
    if case.status == NEW:
        acknowledge(session, case, actor, now, assessment_due_after, explicit=False)
    case.status = ASSESSED
    case.assessed_at = now
    case.severity = severity
    case.target_date = target
    case.resolution_due = resolution_due
    case.update_due = update_due
    record(session, case, actor, "assessed",
           {"severity": severity, "target": target.isoformat() if target else None}, now)


def resolve(session: Session, case: Case, actor: Actor, now: datetime) -> None:
    if case.status not in OPEN_STATUSES:
        raise TransitionRefused(f"{case.id} is already {case.status}")
    case.status = RESOLVED
    case.resolved_at = now
    case.update_due = None
    record(session, case, actor, "resolved", {}, now)


def close(session: Session, case: Case, actor: Actor, now: datetime, reason: str) -> None:
    if reason not in CLOSE_REASONS:
        raise TransitionRefused(f"close reason must be one of {', '.join(CLOSE_REASONS)}, "
                                f"not {reason!r}", log_reason="unknown close reason")
    if case.status == CLOSED:
        raise TransitionRefused(f"{case.id} is already closed ({case.close_reason})")
    case.status = CLOSED
    case.closed_at = now
    case.update_due = None
    case.close_reason = reason
    record(session, case, actor, "closed", {"reason": reason}, now)


def reopen(
    session: Session, case: Case, actor: Actor, now: datetime, *,
    update_due: datetime | None = None,
) -> None:
    """``update_due``: the reporter-update clock, restarted when the case is assessed again."""
    if case.status not in (RESOLVED, CLOSED):
        raise TransitionRefused(f"{case.id} is {case.status}, not resolved or closed")
    if case.assessed_at is not None:
        case.status = ASSESSED
        case.update_due = update_due
    elif case.acknowledged_at is not None:
        case.status = ACKNOWLEDGED
    else:
        case.status = NEW
    case.closed_at = None
    case.close_reason = None
    case.resolved_at = None
    case.duplicate_of = None
    record(session, case, actor, "reopened", {"status": case.status}, now)


def mark_duplicate(
    session: Session, case: Case, original_id: str, actor: Actor, now: datetime
) -> None:
    """Close ``case`` as a duplicate of ``original_id``'s root: the case it is itself a duplicate
    of, followed to the end. Refused for the case itself, an id that does not exist, and an
    original that already leads back to this case (no cycles). Cases that were duplicates of
    this one are pointed at the same root, so every chain is one link long."""
    if original_id == case.id:
        raise TransitionRefused(f"{case.id} cannot be a duplicate of itself",
                                log_reason="a case cannot duplicate itself")
    original = get_case(session, original_id)
    if original is None:
        raise TransitionRefused(f"no case {original_id}", log_reason="no such case")
    if case.status == CLOSED:
        raise TransitionRefused(f"{case.id} is already closed ({case.close_reason})")
    root = _duplicate_root(session, original, case)
    case.duplicate_of = root.id
    close(session, case, actor, now, "duplicate")
    detail = {"of": root.id} if root is original else {"of": root.id, "asked": original.id}
    record(session, case, actor, "duplicate-of", detail, now)
    record(session, root, actor, "duplicate-linked", {"duplicate": case.id}, now)
    followers = session.scalars(
        select(Case).where(Case.duplicate_of == case.id).with_for_update()
    ).all()
    for follower in followers:
        follower.duplicate_of = root.id
        record(session, follower, actor, "duplicate-of",
               {"of": root.id, "was": case.id}, now)


def _duplicate_root(session: Session, original: Case, case: Case) -> Case:
    root = original
    seen = {root.id}
    while root.duplicate_of:
        if root.duplicate_of == case.id:
            raise TransitionRefused(
                f"{original.id} is already a duplicate of {case.id}",
                log_reason="would make a cycle of duplicates")
        parent = get_case(session, root.duplicate_of)
        if parent is None or parent.id in seen or len(seen) > MAX_DUPLICATE_CHAIN:
            break  # a dangling or looping link (older data): the last good case is the root
        seen.add(parent.id)
        root = parent
    return root


def add_cve(session: Session, case: Case, cve: str, actor: Actor, now: datetime) -> None:
    cve = cve.upper()
    if not CVE_PATTERN.match(cve):
        raise TransitionRefused(f"{cve!r} is not a CVE id such as CVE-2026-12345",
                                log_reason="not a CVE id")
    if cve in case.cve:
        raise TransitionRefused(f"{case.id} already has {cve}")
    if len(case.cve) >= MAX_CVES:
        raise TransitionRefused(f"{case.id} already has {MAX_CVES} CVE ids",
                                log_reason="too many CVE ids")
    case.cve = [*case.cve, cve]
    record(session, case, actor, "cve", {"cve": cve}, now)


def set_credit(
    session: Session, case: Case, name: str, actor: Actor, now: datetime, *,
    by_reporter: bool = False,
) -> None:
    """Credit ``name`` in the advisory: the reporter's consent is ``named``."""
    name = " ".join(name.split())
    if not name or len(name) > MAX_CREDIT:
        raise TransitionRefused(f"credit needs a name of 1 to {MAX_CREDIT} characters",
                                log_reason="credit name empty or too long")
    case.credit = name
    case.credit_consent = NAMED
    record(session, case, actor, "credit",
           {"consent": NAMED, "name": name, "by": "reporter" if by_reporter else "team"}, now)


def set_anonymous(
    session: Session, case: Case, actor: Actor, now: datetime, *, by_reporter: bool = False
) -> None:
    """No credit in the advisory: the reporter's consent is ``anonymous``."""
    case.credit = None
    case.credit_consent = ANONYMOUS
    record(session, case, actor, "credit",
           {"consent": ANONYMOUS, "by": "reporter" if by_reporter else "team"}, now)


def set_disclosure_date(
    session: Session, case: Case, day: date | None, actor: Actor, now: datetime
) -> None:
    """The agreed publication date, or None to clear it. The watch reminds before it."""
    if case.disclosure_date == day:
        raise TransitionRefused(
            f"{case.id} already has disclosure date {day.isoformat()}" if day
            else f"{case.id} has no disclosure date", log_reason="unchanged")
    previous = case.disclosure_date
    case.disclosure_date = day
    record(session, case, actor, "disclosure-date",
           {"date": day.isoformat() if day else None,
            "was": previous.isoformat() if previous else None}, now)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
