"""The report's charts, drawn by matplotlib as SVG text to inline in the HTML.

Only matplotlib's object API is used (``Figure`` with the SVG backend), never pyplot, so no GUI
backend is touched and drawing is safe from a daemon thread. Each chart gets its own hash salt,
so the ids matplotlib writes into its SVG (clip paths, markers) differ from chart to chart when
several sit in one page. Text stays text (``svg.fonttype = none``): smaller, and the browser's
fonts render it.
"""

from __future__ import annotations

import io
import re

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mailbot.report.figures import Figures

ON_TIME, LATE, NEUTRAL, DEADLINE = "#2e7d32", "#c62828", "#1f4e79", "#6d4c41"
_SIZE = (7.2, 3.0)
_XML_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.DOTALL)


def _svg(fig: Figure, salt: str) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return _XML_PROLOGUE.sub("", buffer.getvalue(), count=1)


def _new(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=_SIZE)
    # Fixed margins: constrained layout costs more than the drawing (a third of a second a report).
    fig.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.22)
    ax = fig.add_subplot()
    ax.set_title(title, loc="left", fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 2.5 reports
    return fig, ax


def _month_labels(figures: Figures) -> list[str]:
    """``Mar 26`` for ``2026-03``: short enough for twelve under one chart."""
    names = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    return [f"{names[int(b.month[5:]) - 1]} {b.month[2:4]}" if b.month else ""
            for b in figures.months]


def reports_and_breaches(figures: Figures) -> str:
    fig, ax = _new("Reports and breaches per month")
    labels = _month_labels(figures)
    xs = range(len(labels))
    received = [b.received for b in figures.months]
    breaches = [len({x.case for x in b.breaches}) for b in figures.months]
    ax.bar([x - 0.2 for x in xs], received, width=0.4, color=NEUTRAL,
           label="reports received")
    ax.bar([x + 0.2 for x in xs], breaches, width=0.4, color=LATE,
           label="cases with a missed deadline")
    ax.set_xticks(list(xs), labels, rotation=45, fontsize=8)
    ax.legend(fontsize=8, frameon=False)
    return _svg(fig, "reports")


def ack_distribution(figures: Figures) -> str:
    fig, ax = _new("Time to acknowledge (business days)")
    dist = figures.totals.ack_distribution()
    limit = figures.ack_business_days
    top = max([*dist, limit + 1])
    xs = list(range(top + 1))
    counts = [dist.get(x, 0) for x in xs]
    ax.bar(xs, counts, color=[ON_TIME if x <= limit else LATE for x in xs],
           width=0.8)
    ax.axvline(limit + 0.5, color=DEADLINE, linestyle="--",
               label=f"deadline: {limit} business days")
    ax.set_xticks(xs)
    ax.set_xlabel("business days after the report", fontsize=8)
    ax.set_ylabel("reports", fontsize=8)
    ax.legend(fontsize=8, frameon=False)
    return _svg(fig, "ackdist")


def on_time_share(figures: Figures) -> str:
    fig, ax = _new("Share on time per month")
    labels = _month_labels(figures)
    xs = list(range(len(labels)))

    def percent(v: float | None) -> float:
        return float("nan") if v is None else 100 * v

    ax.plot(xs, [percent(b.ack_on_time_share) for b in figures.months],
            marker="o", color=ON_TIME, label="acknowledged on time")
    ax.plot(xs, [percent(b.assess_on_time_share) for b in figures.months],
            marker="s", color=NEUTRAL, label="assessed on time")
    ax.set_ylim(0, 105)
    ax.set_ylabel("%", fontsize=8)
    ax.set_xticks(xs, labels, rotation=45, fontsize=8)
    ax.legend(fontsize=8, frameon=False, loc="lower left")
    return _svg(fig, "share")


def all_charts(figures: Figures) -> dict[str, str]:
    return {
        "reports": reports_and_breaches(figures),
        "ack_distribution": ack_distribution(figures),
        "on_time_share": on_time_share(figures),
    }
