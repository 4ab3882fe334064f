"""What the app builds from ``[pgp]``: the intake's unwrapper and the outbox's sealer."""

from __future__ import annotations

from mailbot.clock import Clock
from mailbot.config import Settings
from mailbot.pgp.sealer import PgpSealer
from mailbot.pgp.unwrapper import PgpUnwrapper


def unwrapper(settings: Settings, clock: Clock) -> PgpUnwrapper | None:
    if not settings.pgp.configured:
        return None
    return PgpUnwrapper(settings.pgp, team_keys=settings.team.pgp_keys, clock=clock)


def sealer(settings: Settings) -> PgpSealer | None:
    if not settings.pgp.configured:
        return None
    return PgpSealer(settings.pgp, own_address=settings.own_address)
