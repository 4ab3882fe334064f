"""The SLA figures: a pure function from case rows to a ``Figures`` object.

Nothing here reads the database or renders anything, so the CLI report, the monthly mail and any
other view (a web page) share one computation. The rules, as the design doc and
``docs/report.md`` state them:

- **Which cases**: reports received (the ``received_at`` local date) in the period, apart from
  automatic mail (flag ``automatic``) and cases closed as ``spam`` or ``duplicate``; those are
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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

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
    "percentile",
]

ACK = "ack"
ASSESSMENT = "assessment"
EXCLUDED_REASONS = ("spam", "duplicate")
AUTOMATIC = "automatic"


@dataclass(frozen=True, slots=True)
class CaseRow:
    """The stored facts of one case that the figures need (no subject, no addresses)."""

    id: str
    status: str
    flags: tuple[str, ...]
    close_reason: str | None
    severity: str | None
    received_at: datetime
    ack_due: datetime | None
    acknowledged_at: datetime | None
    assessment_due: datetime | None
    assessed_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None


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


class BusinessDayCounter:
    """Business days between two local dates, from a running count per day (cached)."""

    def __init__(self, calendar: BusinessCalendar) -> None:
        self.calendar = calendar
        self._base: date | None = None
        self._cumulative: list[int] = []

    def count_after(self, start: date, stop: date) -> int:
        """Business days d with start < d <= stop (0 when stop <= start)."""
        if stop <= start:
            return 0
        return self._upto(stop) - self._upto(start)

    def _upto(self, d: date) -> int:
        """Business days from the table's first day up to and including ``d``."""
        if self._base is None or not 0 <= (d - self._base).days < len(self._cumulative):
            first, last = d - timedelta(days=400), d + timedelta(days=400)
            if self._base is not None:
                first = min(first, self._base)
                last = max(last, self._base + timedelta(days=len(self._cumulative) - 1))
            self._rebuild(first, last)
        assert self._base is not None
        return self._cumulative[(d - self._base).days]

    def _rebuild(self, first: date, last: date) -> None:
        total, out, day = 0, [], first
        while day <= last:
            total += self.calendar.is_business_day(day)
            out.append(total)
            day += timedelta(days=1)
        self._base, self._cumulative = first, out


def percentile(values: list[float] | list[int], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class _Accumulator:
    def __init__(self, calendar: BusinessCalendar, period: Period, now: datetime) -> None:
        self.calendar, self.period, self.now = calendar, period, now
        self.days = BusinessDayCounter(calendar)
        self.totals = Bucket(month=None)
        self.months = {m: Bucket(month=m) for m in period.months()}

    def local_date(self, at: datetime) -> date:
        return self.calendar.local_date(at)

    def add(self, row: CaseRow) -> None:
        received = self.local_date(row.received_at)
        if not self.period.since <= received <= self.period.until:
            return
        month = self.months[f"{received.year:04d}-{received.month:02d}"]
        buckets = (self.totals, month)
        excluded = _excluded_as(row)
        if excluded:
            for b in buckets:
                b.excluded[excluded] = b.excluded.get(excluded, 0) + 1
            return
        severity = row.severity or "unassessed"
        for b in buckets:
            b.received += 1
            b.by_severity[severity] = b.by_severity.get(severity, 0) + 1
            if row.status == vocabulary.CLOSED and row.close_reason:
                b.by_close_reason[row.close_reason] = b.by_close_reason.get(row.close_reason, 0) + 1
        settled = _settled_at(row)
        ack_stop = row.acknowledged_at or settled
        self._clock(buckets, row, ACK, row.received_at, row.ack_due, ack_stop)
        if row.acknowledged_at is not None:
            self._clock(buckets, row, ASSESSMENT, row.acknowledged_at, row.assessment_due,
                        row.assessed_at or settled)

    def _clock(self, buckets: tuple[Bucket, Bucket], row: CaseRow, deadline: str,
               start: datetime, due: datetime | None, stop: datetime | None) -> None:
        ack = deadline == ACK
        if stop is None:
            for b in buckets:
                if ack:
                    b.ack_open += 1
                else:
                    b.assess_open += 1
            if due is not None and self.now > due:
                still_open = Breach(row.id, deadline, due, _hours(self.now - due), True)
                for b in buckets:
                    b.breaches.append(still_open)
            return
        late = due is not None and stop > due
        days = self.days.count_after(self.local_date(start), self.local_date(stop))
        hours = _hours(max(stop - start, timedelta(0)))
        breach = (Breach(row.id, deadline, due, _hours(stop - due), False)
                  if late and due is not None else None)
        for b in buckets:
            if ack:
                b.acknowledged_late += late
                b.acknowledged_on_time += not late
                b.ack_days.append(days)
                b.ack_hours.append(hours)
            else:
                b.assessed_late += late
                b.assessed_on_time += not late
                b.assess_days.append(days)
                b.assess_hours.append(hours)
            if breach is not None:
                b.breaches.append(breach)


def _excluded_as(row: CaseRow) -> str | None:
    if AUTOMATIC in row.flags:
        return AUTOMATIC
    if row.status == vocabulary.CLOSED and row.close_reason in EXCLUDED_REASONS:
        return row.close_reason
    return None


def _settled_at(row: CaseRow) -> datetime | None:
    """When a resolved or closed case left the open statuses (its clocks stop there)."""
    if row.status not in (vocabulary.RESOLVED, vocabulary.CLOSED):
        return None
    times = [t for t in (row.resolved_at, row.closed_at) if t is not None]
    return min(times) if times else None


def _finish(bucket: Bucket) -> Bucket:
    bucket.ack_median_business_days = _round(percentile(bucket.ack_days, 0.5))
    bucket.ack_p90_business_days = _round(percentile(bucket.ack_days, 0.9))
    bucket.assess_median_business_days = _round(percentile(bucket.assess_days, 0.5))
    bucket.assess_p90_business_days = _round(percentile(bucket.assess_days, 0.9))
    bucket.ack_median_hours = _round(percentile(bucket.ack_hours, 0.5))
    bucket.ack_p90_hours = _round(percentile(bucket.ack_hours, 0.9))
    bucket.assess_median_hours = _round(percentile(bucket.assess_hours, 0.5))
    bucket.assess_p90_hours = _round(percentile(bucket.assess_hours, 0.9))
    bucket.breaches.sort(key=lambda b: (b.due, b.case, b.deadline))
    bucket.by_severity = _ordered(bucket.by_severity, (*vocabulary.SEVERITIES, "unassessed"))
    bucket.by_close_reason = _ordered(bucket.by_close_reason, vocabulary.CLOSE_REASONS)
    return bucket


def _ordered(counts: Mapping[str, int], order: Iterable[str]) -> dict[str, int]:
    known = list(order)
    return {k: counts[k] for k in sorted(counts, key=lambda k: (k not in known,
                                                                known.index(k) if k in known
                                                                else 0, k))}


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
    for row in rows:
        acc.add(row)
    listed = list(at_risk or [])
    return Figures(
        period=period,
        generated_at=now,
        timezone=str(calendar.tz),
        ack_business_days=ack_business_days,
        assessment_business_days=assessment_business_days,
        totals=_finish(acc.totals),
        months=[_finish(b) for b in acc.months.values()],
        at_risk=listed,
        at_risk_total=len(listed) if at_risk_total is None else at_risk_total,
    )
