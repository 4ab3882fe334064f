"""Who is on call at a given moment (pure).

A rotation, when configured, wins: its first entry is on call for ``rotation_days`` days from
``rotation_start``, then the next, and so on round the list. Shifts change at local midnight in the
team's timezone, because that is where the team's days begin. Without a rotation the fixed
``addresses`` are on call; without either, nobody is (the caller decides what that means).
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from mailbot.config import OncallSettings, Settings

__all__ = ["oncall_at", "people_to_tell"]


def oncall_at(settings: OncallSettings, at: datetime, tz: tzinfo) -> list[str]:
    """The addresses on call at the instant ``at`` (aware), judged on the local date in ``tz``."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"an aware datetime is needed, got the naive {at.isoformat()}")
    if settings.rotation:
        return [_rotation_member(settings, at, tz)]
    return list(settings.addresses)


def people_to_tell(settings: Settings, at: datetime, tz: tzinfo) -> list[str]:
    """Whoever is on call at ``at``; the team's addresses when no on-call is configured."""
    return oncall_at(settings.oncall, at, tz) or list(settings.team.addresses)


def _rotation_member(settings: OncallSettings, at: datetime, tz: tzinfo) -> str:
    if settings.rotation_days < 1:
        raise ValueError(f"rotation_days must be at least 1, got {settings.rotation_days}")
    start = settings.rotation_start
    today = at.astimezone(tz).date()
    # Before the rotation begins (or with no start at all) the first person covers, so that
    # reminders never go nowhere.
    if start is None or today < start:
        return settings.rotation[0]
    shift = (today - start).days // settings.rotation_days
    return settings.rotation[shift % len(settings.rotation)]
