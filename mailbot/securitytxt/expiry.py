"""``mailbot check``: is the published security.txt about to expire?"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

__all__ = ["WARN_BEFORE", "expiry_problem", "read_expires"]

WARN_BEFORE = timedelta(days=30)
_EXPIRES = re.compile(r"^Expires:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)


def read_expires(text: str) -> datetime | None:
    """The ``Expires`` of a security.txt (signed or not), or None when it has none or a bad one."""
    match = _EXPIRES.search(text)
    if match is None:
        return None
    try:
        value = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def expiry_problem(path: str, now: datetime) -> tuple[str, str] | None:
    """("problem" or "warning", what to say) about the file at ``path``; None when all is well."""
    try:
        text = Path(path).read_text("utf-8", errors="replace")
    except OSError as exc:
        return "problem", f"cannot read {path}: {exc.strerror}"
    expires = read_expires(text)
    if expires is None:
        return "problem", f"{path} has no valid Expires field"
    if expires <= now:
        return "problem", (f"{path} expired on {expires:%Y-%m-%d}; publish a new one "
                           "(mailbot security-txt)")
    if expires - now <= WARN_BEFORE:
        days = (expires - now).days
        return "warning", (f"{path} expires on {expires:%Y-%m-%d}, in {days} days; publish a new "
                           "one (mailbot security-txt)")
    return None
