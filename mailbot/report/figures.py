"""The SLA figures: a pure function from case rows to a ``Figures`` object.

Nothing here reads the database or renders anything, so the CLI report, the monthly mail and any
other view (a web page) share one computation. The rules, as the design doc and
``docs/report.md`` state them:

- **Which cases**: reports received (the ``received_at`` local date) in the period, apart from
  automatic mail (flag ``automatic``), history imported on the first run (flag ``imported``),
  cases closed as ``spam`` or ``duplicate``, and any other case that was promised no
  acknowledgement (no ``ack_due``: a thread the team started, mailbot's own mail); those are
  counted under ``excluded``.
- **On time or late** is judged against the deadline *stored on the case* when its clock started
  (``ack_due``, ``assessment_due``), never recomputed, so a later policy change does not rewrite
  history.
- **When a clock stops**: the acknowledgement clock at ``acknowledged_at``; the assessment clock,
  which starts at the acknowledgement, at ``assessed_at``. A case resolved or closed before that
  stops the clock then (the team dealt with it). A clock still running counts as open, and as a
  breach too once its deadline has passed (``still_open``, late by the time until ``now``).
- **Durations** in business days count the team's business days after the start's local date up
  to and including the stop's local date (a report acknowledged on the third business day after
  it arrived took 3, one acknowledged the same day 0), the same counting the deadlines use; in
  hours, the real elapsed time (so a DST change shows as one hour more or less).
- **Median and 90th percentile** by linear interpolation between the closest ranks (numpy's
  default, a spreadsheet's PERCENTILE.INC); ``None`` when there is no duration.

Rows carry times as seconds since the epoch (UTC) rather than datetime objects; they are added up
5,000 at a time with numpy, local dates found by a search in a table of local midnights and
business days by a running count: a year of 100,000 cases takes a fraction of a second
(bench/report.py measures it), and memory does not grow with the rows read.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from mailbot.cases import vocabulary
from mailbot.deadlines.calendar import BusinessCalendar

__all__ = [
    "ACK",
    "ASSESSMENT",
    "AtRisk",
    "Breach",
    "Bucket",
    "CaseRow",
    "Figures",
    "Period",
    "compute_figures",
    "epoch",
]

ACK = "ack"
ASSESSMENT = "assessment"
EXCLUDED_REASONS = ("spam", "duplicate")
AUTOMATIC = "automatic"
IMPORTED = "imported"
NO_DEADLINE = "no-deadline"
EXCLUDED_KEYS = (AUTOMATIC, IMPORTED, *EXCLUDED_REASONS, NO_DEADLINE)
_CHUNK = 5000


def epoch(at: datetime | None) -> float | None:
    """An aware datetime as seconds since the epoch (what ``CaseRow`` holds)."""
    return None if at is None else at.timestamp()


class CaseRow(NamedTuple):
    """The stored facts of one case that the figures need (no subject, no addresses).

    Times are seconds since the epoch, UTC (``epoch(case.received_at)``); an unset time is None
    (or -1, as the database query gives it)."""

    id: str
    status: str
    automatic: bool  # the case carries the ``automatic`` flag
    imported: bool  # the case carries the ``imported`` flag (history from before the first run)
    close_reason: str | None
    severity: str | None
    received: float
    ack_due: float | None
    acknowledged: float | None
    assessment_due: float | None
    assessed: float | None
    resolved: float | None
    closed: float | None


@dataclass(frozen=True)
class Period:
    """Local dates, both included."""

    since: date
    until: date

    def months(self) -> list[str]:
        out, year, month = [], self.since.year, self.since.month
        while (year, month) <= (self.until.year, self.until.month):
            out.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return out


@dataclass(frozen=True)
class Breach:
    case: str
    deadline: str  # ack | assessment
    due: datetime
    late_by_hours: float
    still_open: bool


@dataclass(frozen=True)
class AtRisk:
    """An open case whose running deadline is at risk or overdue now."""

    case: str
    deadline: str  # ack | assessment | resolution
    due: datetime
    stage: str  # at-risk | overdue
    subject: str = ""


@dataclass
class Bucket:
    """The figures of one month, or of the whole period (``month`` is None)."""

    month: str | None
    received: int = 0
    acknowledged_on_time: int = 0
    acknowledged_late: int = 0
    ack_open: int = 0
    assessed_on_time: int = 0
    assessed_late: int = 0
    assess_open: int = 0
    ack_median_business_days: float | None = None
    ack_p90_business_days: float | None = None
    assess_median_business_days: float | None = None
    assess_p90_business_days: float | None = None
    ack_median_hours: float | None = None
    ack_p90_hours: float | None = None
    assess_median_hours: float | None = None
    assess_p90_hours: float | None = None
    breaches: list[Breach] = field(default_factory=list)
    by_severity: dict[str, int] = field(default_factory=dict)
    by_close_reason: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    # Durations, kept while adding up; turned into the medians above by ``_finish``.
    ack_days: list[int] = field(default_factory=list, repr=False)
    ack_hours: list[float] = field(default_factory=list, repr=False)
    assess_days: list[int] = field(default_factory=list, repr=False)
    assess_hours: list[float] = field(default_factory=list, repr=False)

    @property
    def ack_on_time_share(self) -> float | None:
        judged = self.acknowledged_on_time + self.acknowledged_late
        return self.acknowledged_on_time / judged if judged else None

    @property
    def assess_on_time_share(self) -> float | None:
        judged = self.assessed_on_time + self.assessed_late
        return self.assessed_on_time / judged if judged else None

    def ack_distribution(self) -> dict[int, int]:
        """Business days to acknowledge -> how many reports took that long."""
        return dict(sorted(Counter(self.ack_days).items()))


@dataclass(frozen=True)
class Figures:
    period: Period
    generated_at: datetime
    timezone: str
    ack_business_days: int  # the policy now, for the chart's deadline line
    assessment_business_days: int
    totals: Bucket
    months: list[Bucket]
    at_risk: list[AtRisk]
    at_risk_total: int


# ---------------------------------------------------------------------------------------------


class LocalDays:
    """Local days as indexes: which day an instant falls on (a bisect over local midnights) and
    how many business days lie between two of them (a running count)."""

    _PAD = 400

    def __init__(self, calendar: BusinessCalendar, first: date, last: date) -> None:
        self.calendar = calendar
        self._build(first - timedelta(days=self._PAD), last + timedelta(days=self._PAD))

    def _build(self, first: date, last: date) -> None:
        self.first = first
        self.midnights: list[float] = []
        self.cumulative: list[int] = []
        self._extend_to(last)

    def _extend_to(self, last: date) -> None:
        """Add days up to ``last``; indexes already handed out keep their meaning."""
        day = self.first + timedelta(days=len(self.cumulative))
        if not self.midnights:
            self.midnights.append(self.calendar.start_of_day(day).timestamp())
        total = self.cumulative[-1] if self.cumulative else 0
        while day <= last:
            total += self.calendar.is_business_day(day)
            self.cumulative.append(total)
            day += timedelta(days=1)
            # One midnight more than days, so that every day has an end.
            self.midnights.append(self.calendar.start_of_day(day).timestamp())

    def index(self, t: float) -> int:
        """The number of the local day that the instant ``t`` falls on (``first`` is 0; -1 for
        an instant before it)."""
        if t < self.midnights[0]:
            return -1
        i = bisect.bisect_right(self.midnights, t) - 1
        while i >= len(self.cumulative):
            day = self.calendar.local_date(datetime.fromtimestamp(t, UTC))
            self._extend_to(day + timedelta(days=self._PAD))
            i = bisect.bisect_right(self.midnights, t) - 1
        return i

    def date_of(self, i: int) -> date:
        return self.first + timedelta(days=i)


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class _Accumulator:
    """Adds rows up a chunk at a time, with numpy doing the per-row arithmetic."""

    def __init__(self, calendar: BusinessCalendar, period: Period, now: datetime) -> None:
        self.now = now.timestamp()
        self.days = LocalDays(calendar, period.since, period.until)
        self.months = [Bucket(month=m) for m in period.months()]
        self.lo = self.days.index(calendar.start_of_day(period.since).timestamp())
        self.hi = self.days.index(calendar.start_of_day(period.until).timestamp())
        index = {m.month: i for i, m in enumerate(self.months)}
        self.month_of_day = np.array(
            [index[f"{d.year:04d}-{d.month:02d}"]
             for d in (self.days.date_of(i) for i in range(self.lo, self.hi + 1))], dtype=np.intp)
        self.durations: dict[str, list[list[NDArray[Any]]]] = {
            name: [[] for _ in self.months]
            for name in ("ack_days", "ack_hours", "assess_days", "assess_hours")}

    # -- helpers over arrays ------------------------------------------------------------------

    def _day_index(self, t: NDArray[np.float64]) -> NDArray[np.intp]:
        """Local day numbers of the instants ``t`` (NaN -> -1)."""
        known = t[~np.isnan(t)]
        if known.size:
            self.days.index(float(known.max()))  # extends the tables when needed
        midnights = np.asarray(self.days.midnights)
        out = np.searchsorted(midnights, np.nan_to_num(t, nan=-np.inf), side="right") - 1
        return out.astype(np.intp)

    def _business_days(self, start: NDArray[np.intp], stop: NDArray[np.intp]) -> NDArray[Any]:
        cumulative = np.asarray(self.days.cumulative)
        base = np.where(start >= 0, cumulative[np.clip(start, 0, None)], 0)
        return np.where(stop > start, cumulative[np.clip(stop, 0, None)] - base, 0)

    def _count(self, field_name: str, months: NDArray[np.intp], mask: NDArray[np.bool_]) -> None:
        counts = np.bincount(months[mask], minlength=len(self.months))
        for bucket, n in zip(self.months, counts.tolist(), strict=True):
            if n:
                setattr(bucket, field_name, getattr(bucket, field_name) + n)

    def _tally(self, field_name: str, key: str, months: NDArray[np.intp],
               mask: NDArray[np.bool_]) -> None:
        counts = np.bincount(months[mask], minlength=len(self.months))
        for bucket, n in zip(self.months, counts.tolist(), strict=True):
            if n:
                tally: dict[str, int] = getattr(bucket, field_name)
                tally[key] = tally.get(key, 0) + n

    # -- a chunk of rows ----------------------------------------------------------------------

    def add_chunk(self, chunk: list[CaseRow]) -> None:
        table = _table(chunk)
        received = table["received"]
        day = self._day_index(received)
        keep = (day >= self.lo) & (day <= self.hi)
        if not keep.any():
            return
        table, received, day = table[keep], received[keep], day[keep]
        ids, status, automatic = table["id"], table["status"], table["automatic"]
        imported = table["imported"] & ~automatic
        reason, severity = table["close_reason"], table["severity"]
        ack_due, acked, assess_due, assessed, resolved, closed = (
            table[name] for name in _TIMES[1:])
        months = self.month_of_day[day - self.lo]

        is_closed = status == vocabulary.CLOSED
        flagged = automatic | imported
        spam = is_closed & (reason == "spam") & ~flagged
        duplicate = is_closed & (reason == "duplicate") & ~flagged
        unpromised = np.isnan(ack_due) & ~(flagged | spam | duplicate)
        real = ~(flagged | spam | duplicate | unpromised)
        for key, mask in ((AUTOMATIC, automatic), (IMPORTED, imported), ("spam", spam),
                          ("duplicate", duplicate), (NO_DEADLINE, unpromised)):
            self._tally("excluded", key, months, mask)
        self._count("received", months, real)
        for name in vocabulary.SEVERITIES:
            self._tally("by_severity", name, months, real & (severity == name))
        self._tally("by_severity", "unassessed", months, real & (severity == ""))
        for name in vocabulary.CLOSE_REASONS:
            self._tally("by_close_reason", name, months, real & is_closed & (reason == name))

        settled = np.where((status == vocabulary.RESOLVED) | is_closed,
                           np.fmin(resolved, closed), np.nan)
        ack_stop = np.where(np.isnan(acked), settled, acked)
        ack_stop_day = self._clock(ACK, real, ids, months, received, day, ack_due, ack_stop)
        started = real & ~np.isnan(acked)
        assess_stop = np.where(np.isnan(assessed), settled, assessed)
        self._clock(ASSESSMENT, started, ids, months, acked, ack_stop_day, assess_due,
                    assess_stop)

    def _clock(self, deadline: str, mask: NDArray[np.bool_], ids: NDArray[Any],
               months: NDArray[np.intp], start: NDArray[np.float64],
               start_day: NDArray[np.intp], due: NDArray[np.float64],
               stop: NDArray[np.float64]) -> NDArray[np.intp]:
        ack = deadline == ACK
        running = mask & np.isnan(stop)
        stopped = mask & ~np.isnan(stop)
        has_due = ~np.isnan(due)
        with np.errstate(invalid="ignore"):
            late = stopped & has_due & (stop > due)
            overdue = running & has_due & (self.now > due)
        self._count("ack_open" if ack else "assess_open", months, running)
        self._count("acknowledged_late" if ack else "assessed_late", months, late)
        self._count("acknowledged_on_time" if ack else "assessed_on_time", months,
                    stopped & ~late)
        stop_day = self._day_index(stop)
        days = self._business_days(start_day, stop_day)
        hours = np.maximum(stop - start, 0.0) / 3600
        prefix = "ack" if ack else "assess"
        for m in np.unique(months[stopped]).tolist():
            here = stopped & (months == m)
            self.durations[f"{prefix}_days"][m].append(days[here])
            self.durations[f"{prefix}_hours"][m].append(hours[here])
        for i in np.flatnonzero(late | overdue).tolist():
            end = float(stop[i]) if late[i] else self.now
            self.months[int(months[i])].breaches.append(Breach(
                str(ids[i]), deadline, _utc(float(due[i])), round((end - due[i]) / 3600, 2),
                bool(overdue[i])))
        return stop_day

    def finish(self) -> list[Bucket]:
        for name, per_month in self.durations.items():
            for bucket, arrays in zip(self.months, per_month, strict=True):
                values = np.concatenate(arrays) if arrays else np.zeros(0)
                if name.endswith("days"):
                    values = values.astype(np.int64)
                setattr(bucket, name, values.tolist())
        return self.months


_TIMES = ("received", "ack_due", "acknowledged", "assessment_due", "assessed", "resolved",
          "closed")
_DTYPE = np.dtype([("id", "O"), ("status", "U16"), ("automatic", "?"), ("imported", "?"),
                   ("close_reason", "U40"),
                   ("severity", "U20"), *((name, "f8") for name in _TIMES)])


def _table(chunk: list[CaseRow]) -> NDArray[Any]:
    """The rows as one numpy record array (a single conversion in C); unset times become NaN,
    unset strings ""."""
    try:
        table = np.array(chunk, dtype=_DTYPE)
    except (TypeError, ValueError):  # None among the values: the database query gives none
        table = np.array([_without_none(r) for r in chunk], dtype=_DTYPE)
    for name in _TIMES:
        column = table[name]
        column[column < 0] = np.nan
    for name in ("close_reason", "severity"):  # numpy spells a None in a string field "None"
        strings = table[name]
        strings[strings == "None"] = ""
    return table


def _without_none(row: CaseRow) -> tuple[Any, ...]:
    return (row.id, row.status, row.automatic, row.imported, row.close_reason or "",
            row.severity or "", *(-1.0 if t is None else t for t in row[6:]))


_COUNTS = ("received", "acknowledged_on_time", "acknowledged_late", "ack_open",
           "assessed_on_time", "assessed_late", "assess_open")
_LISTS = ("breaches", "ack_days", "ack_hours", "assess_days", "assess_hours")
_TALLIES = ("by_severity", "by_close_reason", "excluded")


def _total(months: Iterable[Bucket]) -> Bucket:
    total = Bucket(month=None)
    for m in months:
        for name in _COUNTS:
            setattr(total, name, getattr(total, name) + getattr(m, name))
        for name in _LISTS:
            getattr(total, name).extend(getattr(m, name))
        for name in _TALLIES:
            tally: dict[str, int] = getattr(total, name)
            for k, v in getattr(m, name).items():
                tally[k] = tally.get(k, 0) + v
    return total


def _median_p90(values: list[int] | list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    # numpy's default method: linear interpolation between the closest ranks.
    median, p90 = np.percentile(np.asarray(values, dtype=np.float64), [50, 90]).tolist()
    return _round(median), _round(p90)


def _finish(bucket: Bucket) -> Bucket:
    for name in ("ack", "assess"):
        days = _median_p90(getattr(bucket, f"{name}_days"))
        hours = _median_p90(getattr(bucket, f"{name}_hours"))
        setattr(bucket, f"{name}_median_business_days", days[0])
        setattr(bucket, f"{name}_p90_business_days", days[1])
        setattr(bucket, f"{name}_median_hours", hours[0])
        setattr(bucket, f"{name}_p90_hours", hours[1])
    bucket.breaches.sort(key=lambda b: (b.due, b.case, b.deadline))
    bucket.by_severity = _ordered(bucket.by_severity, (*vocabulary.SEVERITIES, "unassessed"))
    bucket.by_close_reason = _ordered(bucket.by_close_reason, vocabulary.CLOSE_REASONS)
    return bucket


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _ordered(counts: Mapping[str, int], order: Iterable[str]) -> dict[str, int]:
    rank = {k: i for i, k in enumerate(order)}
    return {k: counts[k] for k in sorted(counts, key=lambda k: (rank.get(k, len(rank)), k))}


def compute_figures(
    rows: Iterable[CaseRow],
    *,
    calendar: BusinessCalendar,
    period: Period,
    now: datetime,
    ack_business_days: int,
    assessment_business_days: int,
    at_risk: list[AtRisk] | None = None,
    at_risk_total: int | None = None,
) -> Figures:
    """Add up ``rows`` (any order, read once, so a stream of 100,000 is fine)."""
    acc = _Accumulator(calendar, period, now)
    chunk: list[CaseRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == _CHUNK:
            acc.add_chunk(chunk)
            chunk = []
    if chunk:
        acc.add_chunk(chunk)
    months = acc.finish()
    totals = _finish(_total(months))
    listed = list(at_risk or [])
    return Figures(
        period=period,
        generated_at=now,
        timezone=str(calendar.tz),
        ack_business_days=ack_business_days,
        assessment_business_days=assessment_business_days,
        totals=totals,
        months=[_finish(b) for b in months],
        at_risk=listed,
        at_risk_total=len(listed) if at_risk_total is None else at_risk_total,
    )
