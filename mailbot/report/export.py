"""The figures as JSON and CSV, with the field names the design doc fixes (stable).

JSON: ``period`` {``since``, ``until``}, ``totals`` and ``months`` (each a bucket), ``at_risk``;
a bucket has the counts, the medians and 90th percentiles, ``breaches`` (a list of {``case``,
``deadline``, ``due``, ``late_by_hours``, ``still_open``}), ``by_severity``, ``by_close_reason``
and ``excluded``. CSV carries the same figures as rows for a spreadsheet: one per month, one for
the total, one per breach and one per case at risk, told apart by the ``section`` column.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from mailbot.cases import vocabulary
from mailbot.report.figures import EXCLUDED_KEYS, Breach, Bucket, Figures

SCALARS = (
    "received", "acknowledged_on_time", "acknowledged_late", "ack_open", "assessed_on_time",
    "assessed_late", "assess_open", "ack_median_business_days", "ack_p90_business_days",
    "assess_median_business_days", "assess_p90_business_days", "ack_median_hours",
    "ack_p90_hours", "assess_median_hours", "assess_p90_hours",
)
SEVERITY_KEYS = (*vocabulary.SEVERITIES, "unassessed")
CLOSE_KEYS = vocabulary.CLOSE_REASONS


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _share(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def breach_dict(b: Breach) -> dict[str, Any]:
    return {"case": b.case, "deadline": b.deadline, "due": _iso(b.due),
            "late_by_hours": b.late_by_hours, "still_open": b.still_open}


def bucket_dict(b: Bucket) -> dict[str, Any]:
    out: dict[str, Any] = {"month": b.month} if b.month else {}
    out.update({name: getattr(b, name) for name in SCALARS})
    out["ack_on_time_share"] = _share(b.ack_on_time_share)
    out["assess_on_time_share"] = _share(b.assess_on_time_share)
    out["by_severity"] = dict(b.by_severity)
    out["by_close_reason"] = dict(b.by_close_reason)
    out["excluded"] = {k: b.excluded.get(k, 0) for k in EXCLUDED_KEYS}
    out["breaches"] = [breach_dict(x) for x in b.breaches]
    return out


def to_json_dict(f: Figures) -> dict[str, Any]:
    totals = bucket_dict(f.totals)
    totals["ack_business_days_distribution"] = {
        str(k): v for k, v in f.totals.ack_distribution().items()}
    return {
        "period": {"since": f.period.since.isoformat(), "until": f.period.until.isoformat()},
        "generated_at": _iso(f.generated_at),
        "timezone": f.timezone,
        "policy": {"ack_business_days": f.ack_business_days,
                   "assessment_business_days": f.assessment_business_days},
        "totals": totals,
        "months": [bucket_dict(b) for b in f.months],
        "at_risk": [{"case": a.case, "deadline": a.deadline, "due": _iso(a.due),
                     "stage": a.stage} for a in f.at_risk],
        "at_risk_total": f.at_risk_total,
    }


CSV_COLUMNS = (
    "section", "month", *SCALARS, "ack_on_time_share", "assess_on_time_share",
    *(f"severity_{k}" for k in SEVERITY_KEYS), *(f"closed_{k}" for k in CLOSE_KEYS),
    *(f"excluded_{k}" for k in EXCLUDED_KEYS), "breaches",
    "case", "deadline", "due", "late_by_hours", "still_open", "stage",
)


def _bucket_row(section: str, b: Bucket) -> dict[str, Any]:
    row: dict[str, Any] = {"section": section, "month": b.month or ""}
    row.update({name: getattr(b, name) for name in SCALARS})
    row["ack_on_time_share"] = _share(b.ack_on_time_share)
    row["assess_on_time_share"] = _share(b.assess_on_time_share)
    row.update({f"severity_{k}": b.by_severity.get(k, 0) for k in SEVERITY_KEYS})
    row.update({f"closed_{k}": b.by_close_reason.get(k, 0) for k in CLOSE_KEYS})
    row.update({f"excluded_{k}": b.excluded.get(k, 0) for k in EXCLUDED_KEYS})
    row["breaches"] = len(b.breaches)
    return row


def to_csv(f: Figures) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for b in f.months:
        writer.writerow(_bucket_row("month", b))
    writer.writerow(_bucket_row("total", f.totals))
    for x in f.totals.breaches:
        writer.writerow({"section": "breach", **breach_dict(x)})
    for a in f.at_risk:
        writer.writerow({"section": "at-risk", "case": a.case, "deadline": a.deadline,
                         "due": _iso(a.due), "stage": a.stage})
    return out.getvalue()
