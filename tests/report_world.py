"""A few hundred cases built through the real intake pipeline at controlled times, and the SLA
figures they should give, computed here independently of ``mailbot.report``.

Every case is a story written before anything runs: a report arrives at a chosen instant; a team
member's reply-all (authenticated by our MTA) acknowledges it at another; a team message with
``/assess``, ``/close`` or ``/duplicate`` acts at a third. All the mail goes through
``mailbot.intake`` in time order with a fixed clock set to each message's moment, exactly as the
daemon would have handled it then. The expected figures come from the stories alone: business days
are counted here with plain ``weekday()`` and the test's holiday list, deadlines are the end of the
local day, and percentiles come from the ``statistics`` module.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from mailbot.app import App
from mailbot.cases.models import Message
from mailbot.clock import FixedClock
from mailbot.config import (
    DatabaseSettings,
    MailboxSettings,
    OncallSettings,
    PolicySettings,
    SecretsSettings,
    Settings,
    SmtpSettings,
    TeamSettings,
)
from mailbot.config_sections import ReportSettings
from mailbot.config_storage import StorageSettings
from mailbot.intake.runner import process_alone
from mailbot.mail.message import FetchedMessage
from mailbot.store import migrate
from tests import factories

AMS = ZoneInfo("Europe/Amsterdam")
# King's Day (a Monday), Ascension Day, Christmas: the team's holidays in the config.
HOLIDAYS = (date(2026, 4, 27), date(2026, 5, 14), date(2026, 12, 25))
ACK_DAYS, ASSESS_DAYS = 3, 7
TEAM = "alice@team.example.test"
PASS = (f"{factories.AUTHSERV_ID}; dkim=pass header.d={factories.TEAM_DOMAIN}; "
        f"dmarc=pass header.from={factories.TEAM_DOMAIN}")
# "Now" for the report: Wednesday 2 December 2026, noon in Amsterdam.
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=AMS)
HOSTILE_SUBJECT = ("<script>alert('pwned')</script>\u202eReversed <img src=x onerror=alert(2)>"
                   + "A" * 10_000)


def ams(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=AMS)


# ---------------------------------------------------------------------------------------------
# Business days, counted independently


def is_business_day(d: date) -> bool:
    return d.weekday() < 5 and d not in HOLIDAYS


def nth_business_day_after(d: date, n: int) -> date:
    while n:
        d += timedelta(days=1)
        n -= is_business_day(d)
    return d


def business_days_between(start: date, stop: date) -> int:
    """Business days after ``start`` up to and including ``stop``."""
    count, d = 0, start
    while d < stop:
        d += timedelta(days=1)
        count += is_business_day(d)
    return count


def end_of_local_day(d: date) -> datetime:
    return datetime.combine(d + timedelta(days=1), time(0), tzinfo=AMS) - timedelta(microseconds=1)


def local_date(at: datetime) -> date:
    return at.astimezone(AMS).date()


def hours_between(start: datetime, stop: datetime) -> float:
    """Real elapsed hours. (Python subtracts two datetimes that share a tzinfo by their wall
    clocks, which would hide a DST change: go through UTC.)"""
    return (stop.astimezone(UTC) - start.astimezone(UTC)).total_seconds() / 3600


def due_after(at: datetime, n: int) -> datetime:
    return end_of_local_day(nth_business_day_after(local_date(at), n))


# ---------------------------------------------------------------------------------------------
# The stories


@dataclass
class Story:
    key: str
    received: datetime
    subject: str = "A vulnerability"
    automatic: bool = False
    ack: datetime | None = None
    assess: datetime | None = None
    severity: str = "high"
    close: tuple[datetime, str] | None = None  # (when, reason); reason "duplicate" = /duplicate
    case_id: str = ""
    message_id: str = field(default="")

    @property
    def excluded(self) -> str | None:
        if self.automatic:
            return "automatic"
        if self.close and self.close[1] in ("spam", "duplicate"):
            return self.close[1]
        return None


def named_stories() -> list[Story]:
    """Cases whose answer is known by heart: weekend, holiday and both DST changes."""
    return [
        # Friday before the spring DST change (Sunday 29 March) -> Mon, Tue, Wed: 3 business
        # days, on time; 113 real hours although the wall clock moved 114.
        Story("dst-spring", ams(2026, 3, 27, 16), ack=ams(2026, 4, 1, 10),
              assess=ams(2026, 4, 8, 9)),
        # Friday before King's Day (Monday 27 April, a holiday): due Thursday 30 April, not
        # Wednesday. Acknowledged Thursday afternoon: 3 business days, on time.
        Story("holiday", ams(2026, 4, 24, 12), ack=ams(2026, 4, 30, 15),
              assess=ams(2026, 5, 4, 10)),
        # Saturday -> Mon, Tue, Wed: due Wednesday 17 June; acknowledged Thursday 09:00, 4
        # business days, late by 9 hours.
        Story("weekend", ams(2026, 6, 13, 10), ack=ams(2026, 6, 18, 9),
              assess=ams(2026, 6, 22, 10)),
        # Friday before the autumn DST change (Sunday 25 October), acknowledged Monday at the
        # same wall time: 1 business day, 73 real hours.
        Story("dst-autumn", ams(2026, 10, 23, 18), ack=ams(2026, 10, 26, 18),
              assess=ams(2026, 10, 27, 10)),
        # Open and at risk at NOW (due Wednesday 2 December), with a subject meant to hurt.
        Story("hostile", ams(2026, 11, 27, 11), subject=HOSTILE_SUBJECT),
    ]


_NAMED_DAYS = {local_date(s.received) for s in named_stories()}


def random_stories(count: int, seed: int = 12) -> list[Story]:
    rng = random.Random(seed)
    start = ams(2026, 3, 2)
    span = (ams(2026, 11, 25) - start).total_seconds()
    stories: list[Story] = []
    while len(stories) < count:
        received = start + timedelta(seconds=rng.uniform(0, span))
        received = received.astimezone(AMS).replace(second=0, microsecond=0)
        if local_date(received) in _NAMED_DAYS:
            continue
        s = Story(f"r{len(stories)}", received, subject=f"Report {len(stories)}")
        roll = rng.random()
        if roll < 0.06:
            s.automatic = True
        elif roll < 0.10:
            s.close = (received + timedelta(hours=rng.uniform(1, 30)), "spam")
        elif roll < 0.13:
            s.close = (received + timedelta(hours=rng.uniform(1, 30)), "duplicate")
        elif roll < 0.16:  # closed as invalid without an acknowledgement
            s.close = (received + timedelta(hours=rng.uniform(2, 200)), "invalid")
        elif roll < 0.90:
            s.ack = received + timedelta(hours=rng.uniform(0.5, 170))
            if rng.random() < 0.8:
                s.assess = s.ack + timedelta(hours=rng.uniform(1, 400))
                s.severity = rng.choice(("low", "medium", "high", "critical"))
                if rng.random() < 0.5:
                    s.close = (s.assess + timedelta(hours=rng.uniform(1, 100)),
                               rng.choice(("fixed", "out-of-scope")))
            elif rng.random() < 0.3:  # closed after acknowledgement, never assessed
                s.close = (s.ack + timedelta(hours=rng.uniform(1, 300)), "fixed")
        # else: never answered (open, or overdue)
        stories.append(s)
    return stories


# ---------------------------------------------------------------------------------------------
# Running the stories through intake


def settings(tmp_path: Path, monthly_to: tuple[str, ...] = (),
             smtp: SmtpSettings | None = None, database_url: str = "") -> Settings:
    return Settings(
        mailbox=MailboxSettings(host="127.0.0.1", port=1, security="none",
                                username="security@example.test"),
        smtp=smtp or SmtpSettings(host="127.0.0.1", port=1, security="none",
                                  from_address="Security <security@example.test>"),
        database=DatabaseSettings(url=database_url or f"sqlite:///{tmp_path / 'report.db'}"),
        team=TeamSettings(addresses=(TEAM,), domains=(factories.TEAM_DOMAIN,),
                          authserv_id=factories.AUTHSERV_ID),
        policy=PolicySettings(timezone="Europe/Amsterdam", holidays=HOLIDAYS,
                              ack_business_days=ACK_DAYS, assessment_business_days=ASSESS_DAYS),
        oncall=OncallSettings(addresses=("oncall@team.example.test",)),
        secrets=SecretsSettings(token_key=b"report-test-key"),
        report=ReportSettings(monthly_to=monthly_to),
        storage=StorageSettings(key_file=str(factories.storage_key(tmp_path))),
    )


def build(app: App, clock: FixedClock, stories: list[Story]) -> None:
    """Deliver every story's mail through intake, in time order, at its moment."""
    steps: list[tuple[datetime, int, Story, str]] = []
    for i, s in enumerate(stories):
        steps.append((s.received, i, s, "report"))
        if s.ack:
            steps.append((s.ack, i, s, "ack"))
        if s.assess:
            steps.append((s.assess, i, s, "assess"))
        if s.close:
            steps.append((s.close[0], i, s, "close"))
    steps.sort(key=lambda x: (x[0], x[1]))
    last_real = ""  # the newest real case so far: what a /duplicate names
    uid = 0
    with app.db.session() as session:
        for at, _i, story, what in steps:
            uid += 1
            clock.set(at)
            raw = _mail(story, what, last_real)
            fetched = FetchedMessage(raw=raw, folder="INBOX", uidvalidity=1, uid=uid,
                                     internal_date=at.astimezone(UTC))
            outcome = process_alone(session, fetched, app.intake)
            assert not isinstance(outcome, Exception), outcome
            if what == "report":
                session.flush()
                story.case_id = session.scalars(select(Message.case_id).where(
                    Message.message_id == story.message_id)).one()
                if story.excluded is None:
                    last_real = story.case_id
            if uid % 200 == 0:
                session.commit()


def _mail(story: Story, what: str, original: str) -> bytes:
    reporter = f"reporter-{story.key}@reporter.example"
    if what == "report":
        story.message_id = f"<{story.key}@reporter.example>"
        headers = {"Auto-Submitted": "auto-replied"} if story.automatic else {}
        return factories.message(sender=reporter, subject=story.subject, headers=headers,
                                 message_id=story.message_id, date=story.received)
    thread = {"In-Reply-To": story.message_id, "References": story.message_id,
              "Authentication-Results": PASS}
    if what == "ack":
        return factories.message(sender=f"Alice <{TEAM}>", to=reporter,
                                 subject="Re: your report", body="Thanks, we are on it.\n",
                                 headers=thread)
    if what == "assess":
        body = f"/assess severity={story.severity}\n"
    else:
        assert story.close is not None
        reason = story.close[1]
        assert original or reason != "duplicate", "a duplicate before any real case"
        body = f"/duplicate {original}\n" if reason == "duplicate" else f"/close {reason}\n"
    return factories.message(sender=f"Alice <{TEAM}>", to="security@example.test",
                             subject="Re: your report", body=body, headers=thread)


def make_world(tmp_path: Path, count: int = 300, *, monthly_to: tuple[str, ...] = (),
               smtp: SmtpSettings | None = None,
               database_url: str = "") -> tuple[App, list[Story]]:
    clock = FixedClock(NOW)
    app = App(settings(tmp_path, monthly_to, smtp, database_url), clock=clock)
    migrate(app.db)
    stories = named_stories() + random_stories(count)
    build(app, clock, stories)
    clock.set(NOW)
    return app, stories


# ---------------------------------------------------------------------------------------------
# The figures the stories should give


def _stop(s: Story, answer: datetime | None) -> datetime | None:
    if answer is not None:
        return answer
    return s.close[0] if s.close else None


def p90(values: list[float]) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[8]


@dataclass
class Expected:
    received: int = 0
    ack_on_time: int = 0
    ack_late: int = 0
    ack_open: int = 0
    assess_on_time: int = 0
    assess_late: int = 0
    assess_open: int = 0
    ack_days: list[float] = field(default_factory=list)
    ack_hours: list[float] = field(default_factory=list)
    assess_days: list[float] = field(default_factory=list)
    assess_hours: list[float] = field(default_factory=list)
    breaches: dict[tuple[str, str], float] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    severity: dict[str, int] = field(default_factory=dict)


def expected(stories: list[Story], since: date, until: date,
             now: datetime = NOW) -> tuple[Expected, dict[str, Expected]]:
    total, months = Expected(), dict[str, Expected]()
    for s in stories:
        day = local_date(s.received)
        if not since <= day <= until:
            continue
        month = months.setdefault(f"{day:%Y-%m}", Expected())
        for e in (total, month):
            _add(e, s, now)
    return total, months


def _add(e: Expected, s: Story, now: datetime) -> None:
    if s.excluded:
        e.excluded[s.excluded] = e.excluded.get(s.excluded, 0) + 1
        return
    e.received += 1
    sev = s.severity if s.assess else "unassessed"
    e.severity[sev] = e.severity.get(sev, 0) + 1
    ack_due = due_after(s.received, ACK_DAYS)
    _judge(e, s.case_id, "ack", s.received, ack_due, _stop(s, s.ack), now)
    if s.ack is not None:
        _judge(e, s.case_id, "assessment", s.ack, due_after(s.ack, ASSESS_DAYS),
               _stop(s, s.assess), now)


def _judge(e: Expected, case: str, name: str, start: datetime, due: datetime,
           stop: datetime | None, now: datetime) -> None:
    ack = name == "ack"
    if stop is None:
        if ack:
            e.ack_open += 1
        else:
            e.assess_open += 1
        if now > due:
            e.breaches[(case, name)] = hours_between(due, now)
        return
    late = stop > due
    days = business_days_between(local_date(start), local_date(stop))
    hours = hours_between(start, stop)
    if late:
        e.breaches[(case, name)] = hours_between(due, stop)
    if ack:
        e.ack_late += late
        e.ack_on_time += not late
        e.ack_days.append(days)
        e.ack_hours.append(hours)
    else:
        e.assess_late += late
        e.assess_on_time += not late
        e.assess_days.append(days)
        e.assess_hours.append(hours)
