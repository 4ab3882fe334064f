"""The report as one self-contained HTML file: inline CSS, inline SVG charts, no script.

A Content-Security-Policy in the page forbids every network load and every script, and every
value from a report (only subjects reach the page) is cleaned of control and bidirectional
characters, cut, and HTML-escaped by the template's autoescape.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

from mailbot.report.charts import all_charts
from mailbot.report.figures import AtRisk, Figures

SUBJECT_LIMIT = 80
BREACHES_LISTED = 500
# Bidirectional embeddings, overrides and isolates, and the marks: they can make a subject read
# backwards (or hide part of it) on the page.
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean_subject(value: str, limit: int = SUBJECT_LIMIT) -> str:
    """One line of visible text, at most ``limit`` characters (an ellipsis says it was cut)."""
    text = _BIDI.sub("", value)
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
                   for ch in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(figures: Figures, *, title: str = "Security report: response times") -> str:
    tz = ZoneInfo(figures.timezone)

    def local(at: datetime | None) -> str:
        return at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if at else ""

    def percent(share: float | None) -> str:
        return "–" if share is None else f"{100 * share:.0f}%"

    def num(value: float | None) -> str:
        return "–" if value is None else f"{value:g}"

    def duration(hours: float) -> str:
        return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"

    at_risk = [AtRisk(a.case, a.deadline, a.due, a.stage, clean_subject(a.subject))
               for a in figures.at_risk]
    return _environment().get_template("report.html.j2").render(
        title=title,
        f=figures,
        t=figures.totals,
        since=figures.period.since.isoformat(),
        until=figures.period.until.isoformat(),
        timezone=figures.timezone,
        generated=local(figures.generated_at),
        charts=all_charts(figures),
        at_risk=at_risk,
        breaches=figures.totals.breaches[:BREACHES_LISTED],
        local=local,
        percent=percent,
        num=num,
        duration=duration,
    )
