"""The deadline watch and ``cases list --at-risk`` over a large case history.

The history is what years of a busy programme leave behind: cases spread evenly over four years,
almost all closed or resolved, the recent ones still open (new, acknowledged, assessed), each with
its report and its receipt in ``messages``. The watch has kept up so far: every open case that is
at risk or overdue was reminded at that stage (``reminders`` rows, ``cases.reminder_rank``), except
a handful that became at risk since its last run. Rows go in with bulk inserts.

Measured, at a fixed instant inside business hours:

- the first watch, which queues those few reminders;
- the steady watch (nothing new), the run the daemon repeats every minute;
- the query behind ``cases list --at-risk``: at-risk ids, then the listed rows with their
  message counts.
"""

from __future__ import annotations

import hashlib
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from bench.settings import Imap, bench_settings
from mailbot.app import App
from mailbot.cases import vocabulary
from mailbot.cases.models import Case, Message, Outbox, Reminder
from mailbot.cases.views import list_cases
from mailbot.crypto.keys import write_key_file
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.deadlines.watch import (
    ACK,
    ASSESSMENT,
    RESOLUTION,
    at_risk_filter,
    reminder_rank,
    stage_at,
    watch,
)
from mailbot.sealing import Sealer, identity
from mailbot.store import migrate

YEARS = 4
FRESH_AT_RISK = 20  # open cases that became at risk since the watch last ran
CHUNK = 5_000
RUNS = 7


def bench_now(calendar: BusinessCalendar) -> datetime:
    """The latest Tuesday 10:30 local before today: inside business hours, deterministic."""
    today = datetime.now(UTC).astimezone(calendar.tz).date()
    day = today - timedelta(days=(today.weekday() - 1) % 7 or 7)
    local = datetime.combine(day, clock_time(10, 30), tzinfo=calendar.tz)
    return local.astimezone(UTC)


def run_scale(db_url: str, cases: int, *, seed: int = 1) -> dict[str, Any]:
    key_file = ""
    if not db_url.startswith("sqlite"):  # PostgreSQL needs a configured storage key
        key_file = str(write_key_file(Path(tempfile.mkdtemp(prefix="bench-key-")) / "key").source)
    settings = bench_settings(Imap(0, "bench@example.test", ""), 0, db_url, key_file=key_file)
    app = App(settings)
    try:
        migrate(app.db)
        app.prepare_storage()
        now = bench_now(app.calendar)
        started = time.perf_counter()
        shape = populate(app, cases, now, random.Random(seed))
        fill_seconds = time.perf_counter() - started
        _analyze(app)
        first = _timed(lambda: watch(app, now))
        queued = first[1]
        steady = [_timed(lambda: watch(app, now)) for _ in range(RUNS)]
        listed = [_timed(lambda: _at_risk_list(app, now)) for _ in range(RUNS)]
        return {
            "cases": cases,
            **shape,
            "fill_seconds": fill_seconds,
            "watch_first_seconds": first[0],
            "watch_first_queued": queued,
            "watch_seconds": statistics.median(s for s, _ in steady),
            "watch_queued_after_first": sum(q for _, q in steady),
            "at_risk_list_seconds": statistics.median(s for s, _ in listed),
            "at_risk_listed": listed[0][1],
        }
    finally:
        app.close()


def _timed(fn: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def _at_risk_list(app: App, now: datetime) -> int:
    """What ``cases list --at-risk`` runs (mailbot.cli), without printing."""
    where = at_risk_filter(app.calendar, app.settings.policy, now)
    with app.db.session() as session:
        return len(list_cases(session, where=where))


def _analyze(app: App) -> None:
    """Fresh planner statistics, as autovacuum would have gathered over the years."""
    with app.db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


# ---------------------------------------------------------------------------------------------
# The history


def populate(app: App, count: int, now: datetime, rng: random.Random) -> dict[str, int]:
    calendar = app.calendar
    n_business = app.settings.policy.at_risk_business_days
    cases: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    reminders: list[dict[str, Any]] = []
    fresh = 0
    span = timedelta(days=365 * YEARS)
    counters: dict[int, int] = {}
    for i in range(count):
        # Evenly spread over the years, oldest first, so ids grow with time as they do.
        received = now - span + span * (i + rng.random()) / count
        received = min(received, now - timedelta(minutes=5))
        year = calendar.local_date(received).year
        counters[year] = counters.get(year, 0) + 1
        case = _case(calendar, f"SEC-{year}-{counters[year]:05d}", received, now, rng)
        deadline = _running(case)
        if deadline is not None:
            name, due = deadline
            stage = stage_at(due, now, calendar, n_business)
            if stage is not None:
                if stage == "at-risk" and fresh < FRESH_AT_RISK and rng.random() < 0.5:
                    fresh += 1  # not reminded yet: the first watch queues it
                else:
                    case["reminder_rank"] = reminder_rank(name, stage)
                    reminders.append(
                        {
                            "case_id": case["id"],
                            "deadline": name,
                            "stage": stage,
                            "due": due,
                            "sent_to": "oncall@team.example.test",
                            "created_at": now - timedelta(minutes=1),
                        }
                    )
        cases.append(case)
        messages.extend(_messages(case, i))
    _seal(app.db.sealer, cases, messages)
    with app.db.engine.begin() as conn:
        if app.db.is_sqlite:  # room for the indexes in memory: the fill is setup, not measured
            conn.exec_driver_sql("PRAGMA cache_size=-262144")
        for table, rows in ((Case, cases), (Message, messages), (Reminder, reminders)):
            for chunk in _chunks(rows):
                conn.execute(insert(table), chunk)
    with app.db.session() as session:
        open_ = session.scalar(
            select(func.count()).select_from(Case).where(Case.status.in_(vocabulary.OPEN_STATUSES))
        )
        outbox = session.scalar(select(func.count()).select_from(Outbox))
    return {
        "open_cases": int(open_ or 0),
        "messages": len(messages),
        "reminders": len(reminders),
        "fresh_at_risk": fresh,
        "outbox_rows": int(outbox or 0),
    }


def _seal(sealer: Sealer, cases: list[dict[str, Any]], messages: list[dict[str, Any]]) -> None:
    """Store content as intake does: sealed, each value bound to its row (so messages get their
    ids here)."""
    for case in cases:
        case["subject"] = sealer.seal(case["subject"].encode(),
                                      identity("cases", "subject", case["id"]))
    for n, message in enumerate(messages, 1):
        message["id"] = n
        message["subject"] = sealer.seal(message["subject"].encode(),
                                         identity("messages", "subject", n))
        message["details"] = sealer.seal(json.dumps(message["details"]).encode(),
                                         identity("messages", "details", n))


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]


def _case(
    calendar: BusinessCalendar, case_id: str, received: datetime, now: datetime, rng: random.Random
) -> dict[str, Any]:
    age = (now - received).days
    ack_due = calendar.add_business_days(received, 3)
    acked = received + timedelta(hours=rng.uniform(2, 60))
    assessment_due = calendar.add_business_days(acked, 7)
    assessed = acked + timedelta(days=rng.uniform(1, 9))
    target = calendar.local_date(assessed) + timedelta(days=rng.choice((30, 60, 90)))
    r = rng.random()
    if age > 120:
        status = vocabulary.CLOSED if r < 0.9 else vocabulary.RESOLVED
    elif age > 30:
        status = (
            vocabulary.CLOSED
            if r < 0.5
            else vocabulary.RESOLVED
            if r < 0.7
            else vocabulary.ASSESSED
        )
    elif age > 7:
        status = (
            vocabulary.ACKNOWLEDGED
            if r < 0.6
            else vocabulary.ASSESSED
            if r < 0.8
            else vocabulary.CLOSED
        )
    else:
        status = vocabulary.NEW if r < 0.8 else vocabulary.ACKNOWLEDGED
    reached_ack = status != vocabulary.NEW
    reached_assessed = status in (vocabulary.ASSESSED, vocabulary.RESOLVED, vocabulary.CLOSED)
    done = status in (vocabulary.RESOLVED, vocabulary.CLOSED)
    acked = min(acked, now)
    assessed = min(assessed, now)
    return {
        "id": case_id,
        "status": status,
        "reporter": f"reporter{rng.randrange(20_000)}@reporter.example",
        "reporter_name": "A Reporter",
        "subject": f"Vulnerability report {case_id}",
        "flags": [],
        "mentioned_tag": "",
        "received_at": received,
        "created_at": received,
        "updated_at": received,
        "ack_due": ack_due,
        "acknowledged_at": acked if reached_ack else None,
        "assessment_due": assessment_due if reached_ack else None,
        "assessed_at": assessed if reached_assessed else None,
        "severity": rng.choice(vocabulary.SEVERITIES) if reached_assessed else None,
        "target_date": target if reached_assessed else None,
        "resolution_due": calendar.end_of_day(target) if reached_assessed else None,
        "resolved_at": assessed + timedelta(days=20) if done else None,
        "closed_at": assessed + timedelta(days=21) if status == vocabulary.CLOSED else None,
        "close_reason": "fixed" if status == vocabulary.CLOSED else None,
        "duplicate_of": None,
        "cve": [],
        "credit": None,
        "reminder_rank": 0,
    }


def _running(case: dict[str, Any]) -> tuple[str, datetime] | None:
    column = {
        vocabulary.NEW: (ACK, "ack_due"),
        vocabulary.ACKNOWLEDGED: (ASSESSMENT, "assessment_due"),
        vocabulary.ASSESSED: (RESOLUTION, "resolution_due"),
    }.get(case["status"])
    if column is None or case[column[1]] is None:
        return None
    return column[0], case[column[1]]


def _messages(case: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The report and its receipt."""
    report_id = f"<report-{n}@reporter.example>"
    common = {
        "case_id": case["id"],
        "subject": case["subject"],
        "folder": "",
        "uid": None,
        "flags": [],
        "details": {},
        "raw_id": None,
    }
    return [
        {
            **common,
            "direction": "in",
            "kind": "report",
            "dedupe_key": hashlib.sha256(report_id.encode()).hexdigest(),
            "message_id": report_id,
            "from_addr": case["reporter"],
            "to_addrs": ["security@example.test"],
            "date": case["received_at"],
            "received_at": case["received_at"],
            "folder": "INBOX",
            "uid": n + 1,
        },
        {
            **common,
            "direction": "out",
            "kind": "receipt",
            "dedupe_key": hashlib.sha256(b"out:" + report_id.encode()).hexdigest(),
            "message_id": f"<receipt-{n}@example.test>",
            "from_addr": "",
            "to_addrs": [case["reporter"]],
            "date": case["received_at"],
            "received_at": case["received_at"],
        },
    ]
