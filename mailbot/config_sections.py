"""The settings of the reporting, metrics, security.txt and PGP sections, and their parsing.

Kept apart from ``mailbot.config`` (which calls these parsers with its typed key reader, the only
reader of the file) so that module stays small. Every error names the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from mailbot.errors import ConfigError

__all__ = [
    "MetricsSettings",
    "PgpSettings",
    "ReportSettings",
    "SecurityTxtSettings",
    "listen_address",
    "pgp_settings",
    "securitytxt_settings",
    "team_pgp_keys",
]

_HTTPS_URL = re.compile(r"^https://[^\s/]+\S*$")
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")


class Reader(Protocol):
    """What ``mailbot.config``'s key reader offers (dotted keys, errors that name them)."""

    def raw(self, key: str) -> Any: ...
    def text(self, key: str, default: str | None = None, *, allow_empty: bool = False) -> str: ...
    def integer(self, key: str, default: int, *, minimum: int | None = None) -> int: ...
    def boolean(self, key: str, default: bool) -> bool: ...
    def str_list(self, key: str, default: list[str] | None = None) -> list[str]: ...
    def secret(self, section: str, *, required: bool = True, prefix: str = "password") -> str: ...


@dataclass(frozen=True, kw_only=True)
class ReportSettings:
    monthly_to: tuple[str, ...] = ()  # who gets last month's SLA report; () = nobody


@dataclass(frozen=True, kw_only=True)
class MetricsSettings:
    listen: tuple[str, int] | None = None  # (host, port) of the Prometheus endpoint; None = off


@dataclass(frozen=True, kw_only=True)
class SecurityTxtSettings:
    expires_days: int = 180
    policy: str = ""
    acknowledgments: str = ""
    preferred_languages: tuple[str, ...] = ()
    canonical: tuple[str, ...] = ()
    encryption: str = ""  # URL of the team's public key
    hiring: str = ""
    path: str = ""  # the published copy, checked for expiry by `mailbot check`


@dataclass(frozen=True, kw_only=True)
class PgpSettings:
    home: str = ""  # a GnuPG home that mailbot owns
    key: str = ""  # fingerprint of the team key
    passphrase: str = field(default="", repr=False)
    attach_public_key: bool = True
    encrypt_to_reporters: bool = True
    timeout_seconds: float = 20.0  # per gpg call (mailbot.pgp)
    max_key_bytes: int = 64 * 1024  # a reporter's key larger than this is ignored

    @property
    def configured(self) -> bool:
        return bool(self.home and self.key)


def listen_address(r: Reader, key: str) -> tuple[str, int] | None:
    value = r.text(key, "", allow_empty=True)
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(key, 'HOST:PORT such as "127.0.0.1:9108" or "[::1]:9108"', value)
    return host, int(port)


def _url(r: Reader, key: str) -> str:
    value = r.text(key, "", allow_empty=True)
    if value and not _HTTPS_URL.match(value):
        raise ConfigError(key, 'an https:// URL such as "https://example.com/security-policy"',
                          value)
    return value


def securitytxt_settings(r: Reader) -> SecurityTxtSettings:
    days = r.integer("securitytxt.expires_days", 180, minimum=1)
    if days > 365:  # RFC 9116 section 2.5.5: less than a year is recommended
        raise ConfigError("securitytxt.expires_days", "at most 365 (RFC 9116: under a year)",
                          days)
    languages = r.str_list("securitytxt.preferred_languages")
    for lang in languages:
        if not _LANGUAGE_TAG.match(lang):
            raise ConfigError("securitytxt.preferred_languages", 'language tags such as "en"',
                              lang)
    canonical = r.raw("securitytxt.canonical")
    urls = [canonical] if isinstance(canonical, str) else r.str_list("securitytxt.canonical")
    for url in urls:
        if not _HTTPS_URL.match(url):
            raise ConfigError("securitytxt.canonical", "https:// URLs", url)
    return SecurityTxtSettings(
        expires_days=days,
        policy=_url(r, "securitytxt.policy"),
        acknowledgments=_url(r, "securitytxt.acknowledgments"),
        preferred_languages=tuple(languages),
        canonical=tuple(u.strip() for u in urls if u.strip()),
        encryption=_url(r, "securitytxt.encryption"),
        hiring=_url(r, "securitytxt.hiring"),
        path=r.text("securitytxt.path", "", allow_empty=True),
    )


def pgp_settings(r: Reader) -> PgpSettings:
    home = r.text("pgp.home", "", allow_empty=True)
    key = r.text("pgp.key", "", allow_empty=True).replace(" ", "").upper()
    if bool(home) != bool(key):
        raise ConfigError("pgp.key" if home else "pgp.home",
                          "both pgp.home and pgp.key, or neither")
    if key and not re.match(r"^[0-9A-F]{16,40}$", key):
        raise ConfigError("pgp.key", "the key's fingerprint (40 hex digits)", key)
    return PgpSettings(
        home=home,
        key=key,
        passphrase=r.secret("pgp", required=False, prefix="passphrase"),
        attach_public_key=r.boolean("pgp.attach_public_key", True),
        encrypt_to_reporters=r.boolean("pgp.encrypt_to_reporters", True),
        timeout_seconds=float(r.integer("pgp.timeout_seconds", 20, minimum=1)),
        max_key_bytes=r.integer("pgp.max_key_bytes", 64 * 1024, minimum=1024),
    )


_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$|^[0-9A-F]{64}$")


def fingerprint(value: str, key: str) -> str:
    """A fingerprint as GnuPG prints it (40 or 64 hex digits; spaces and ``0x`` allowed)."""
    cleaned = value.replace(" ", "").upper().removeprefix("0X")
    if not _FINGERPRINT.match(cleaned):
        raise ConfigError(key, "a full key fingerprint (40 hex digits)", value)
    return cleaned


def team_pgp_keys(r: Reader) -> tuple[str, ...]:
    """``[team] pgp_keys``: fingerprints whose good signatures prove team mail."""
    return tuple(fingerprint(v, "team.pgp_keys") for v in r.str_list("team.pgp_keys", []))
