"""``[team] pgp_keys`` (read through ``mailbot.config``); the ``[pgp]`` table itself is read in
``mailbot.config_sections``. GnuPG is not touched here: every command reads the config."""

from __future__ import annotations

import re
from typing import Protocol

from mailbot.config_sections import PgpSettings
from mailbot.errors import ConfigError

__all__ = ["PgpSettings", "fingerprint", "read_team_keys"]

_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$|^[0-9A-F]{64}$")


class KeyReader(Protocol):
    def str_list(self, key: str, default: list[str] | None = None) -> list[str]: ...


def fingerprint(value: str, key: str) -> str:
    """A fingerprint as GnuPG prints it (40 or 64 hex digits; spaces and ``0x`` allowed)."""
    cleaned = value.replace(" ", "").upper().removeprefix("0X")
    if not _FINGERPRINT.match(cleaned):
        raise ConfigError(key, "a full key fingerprint (40 hex digits)", value)
    return cleaned


def read_team_keys(r: KeyReader) -> tuple[str, ...]:
    """``[team] pgp_keys``: fingerprints whose good signatures prove team mail."""
    return tuple(fingerprint(v, "team.pgp_keys") for v in r.str_list("team.pgp_keys", []))
