"""From the health records to what ``mailbot health`` says (pure: a status and a time in)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbot.health.records import Status

# "Recently" is a few poll intervals: the safety-net poll reads the mailbox once per interval
# even under IDLE, and a long batch or a restart may hold up one or two of them.
POLL_INTERVALS = 3
MIN_WINDOW = timedelta(minutes=5)
SERVICE_NAMES = {"imap": "mailbox (IMAP)", "smtp": "sending (SMTP)"}


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    lines: list[str]


def window(poll_seconds: int) -> timedelta:
    return max(MIN_WINDOW, timedelta(seconds=POLL_INTERVALS * poll_seconds))


def judge(status: Status, *, now: datetime, host: str, poll_seconds: int) -> Verdict:
    """Healthy when this host's daemon is alive, someone read the mailbox within the window
    and nothing waits for a person to fix it."""
    limit = window(poll_seconds)
    healthy = True
    lines: list[str] = []

    beat = status.heartbeats.get(host)
    if beat is None:
        healthy = False
        lines.append(f"this host ({host}): no mailbot daemon has run here")
    elif now - beat > limit:
        healthy = False
        lines.append(f"this host ({host}): daemon silent for {_ago(now - beat)} "
                     f"(limit {_ago(limit)})")
    else:
        lines.append(f"this host ({host}): daemon alive, last ran its jobs {_ago(now - beat)} ago")

    why = ""
    if status.last_failure is not None:
        at, error = status.last_failure
        why = f"; the last try failed {_ago(now - at)} ago: {error}"
    if status.read_at is None:
        healthy = False
        lines.append(f"mailbox: nobody has read it yet{why}")
    elif now - status.read_at > limit:
        healthy = False
        lines.append(f"mailbox: nobody has read it for {_ago(now - status.read_at)} "
                     f"(limit {_ago(limit)}, {POLL_INTERVALS} poll intervals); "
                     f"last read by {status.read_by}{why}")
    else:
        lines.append(f"mailbox: read by {status.read_by} {_ago(now - status.read_at)} ago")

    for problem in status.problems:
        healthy = False
        name = SERVICE_NAMES.get(problem.service, problem.service)
        lines.append(f"{name}: failing since {problem.since:%Y-%m-%d %H:%M:%S %Z} "
                     f"(on {problem.host}): {problem.error}")
        lines.append(f"  to fix: {problem.key} (mailbot reads its config at start: restart it "
                     "after the change)")
    return Verdict(healthy=healthy, lines=lines)


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
