"""The report's pure parts on hand-made rows: the figures function (also fed Python None values,
as a caller building rows from cases would) and the subject cleaning for the HTML page."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.report.figures import CaseRow, Period, compute_figures, epoch
from mailbot.report.html import clean_subject

AMS = ZoneInfo("Europe/Amsterdam")
CALENDAR = BusinessCalendar(timezone="Europe/Amsterdam")


def at(month: int, day: int, hour: int) -> float:
    stamp = epoch(datetime(2026, month, day, hour, tzinfo=AMS))
    assert stamp is not None
    return stamp


def row(case: str, *, received: float, ack_due: float | None = None,
        acknowledged: float | None = None, status: str = "new", automatic: bool = False,
        close_reason: str | None = None, closed: float | None = None) -> CaseRow:
    return CaseRow(case, status, automatic, False, close_reason, None, received, ack_due,
                   acknowledged, None, None, None, closed)


def test_rows_with_none_values_add_up() -> None:
    # Friday 6 November 16:00: due Wednesday 11 November at the end of the day.
    due = epoch(CALENDAR.add_business_days(datetime(2026, 11, 6, 16, tzinfo=AMS), 3))
    rows = [
        row("SEC-1", received=at(11, 6, 16), ack_due=due, acknowledged=at(11, 12, 10),
            status="acknowledged"),
        row("SEC-2", received=at(11, 9, 9), automatic=True),
        row("SEC-3", received=at(11, 9, 10), ack_due=due, status="closed",
            close_reason="spam", closed=at(11, 9, 11)),
        # A thread the team started: promised nothing, so not a report.
        row("SEC-4", received=at(11, 10, 9)),
        # History from before the first run (flag imported): no promise was made.
        CaseRow("SEC-5", "new", False, True, None, None, at(11, 10, 10), None, None, None, None,
                None, None),
    ]
    figures = compute_figures(rows, calendar=CALENDAR, period=Period(date(2026, 11, 1),
                              date(2026, 11, 30)), now=datetime(2026, 12, 1, tzinfo=AMS),
                              ack_business_days=3, assessment_business_days=7)
    t = figures.totals
    assert (t.received, t.acknowledged_on_time, t.acknowledged_late) == (1, 0, 1)
    assert t.ack_median_business_days == 4  # Mon, Tue, Wed, Thu
    assert t.by_severity == {"unassessed": 1}  # a None severity, never the word "None"
    assert t.excluded == {"automatic": 1, "spam": 1, "no-deadline": 1, "imported": 1}
    [breach] = t.breaches
    assert breach.case == "SEC-1" and breach.late_by_hours == 10.0
    # The acknowledged case's assessment clock started but has no deadline: open, no breach.
    assert t.assess_open == 1


def test_a_report_outside_the_period_is_not_counted() -> None:
    rows = [row("SEC-1", received=at(10, 30, 12), ack_due=at(11, 4, 23))]
    figures = compute_figures(rows, calendar=CALENDAR, period=Period(date(2026, 11, 1),
                              date(2026, 11, 30)), now=datetime(2026, 12, 1, tzinfo=AMS),
                              ack_business_days=3, assessment_business_days=7)
    assert figures.totals.received == 0 and figures.totals.excluded == {}


def test_subject_is_one_visible_line_cut_to_eighty() -> None:
    hostile = "<b>x</b>\u202eevil\u2066\r\nBcc: a@b\x00" + "A" * 10_000
    cleaned = clean_subject(hostile)
    assert len(cleaned) == 80 and cleaned.endswith("…")
    assert cleaned.startswith("<b>x</b>evil Bcc: a@b")  # escaping is the template's job
    assert not any(ch in cleaned for ch in "\u202e\u2066\r\n\x00")
    assert clean_subject("short") == "short"
