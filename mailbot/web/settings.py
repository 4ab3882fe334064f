"""The ``[web]`` table, validated into frozen settings (read through ``mailbot.config``).

No web framework is imported here: the config is read by every command, the case view's
dependencies are an extra.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Protocol

from mailbot.errors import ConfigError

WEB_KEYS = ("listen", "users", "trusted_header", "trusted_proxies", "session_key",
            "session_key_env", "session_key_file", "session_minutes", "login_failures_per_minute")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True, kw_only=True)
class WebUser:
    name: str
    password_hash: str = field(repr=False)  # argon2, from `mailbot web hash-password`


@dataclass(frozen=True, kw_only=True)
class WebSettings:
    """The read-only case view (``mailbot web``)."""

    host: str = "127.0.0.1"
    port: int = 8025
    users: tuple[WebUser, ...] = ()
    trusted_header: str = ""  # e.g. "X-Forwarded-User", believed only from trusted_proxies
    trusted_proxies: tuple[str, ...] = ()  # addresses or networks
    session_key: bytes = field(default=b"", repr=False)  # b"" = generated, kept in the database
    session_minutes: int = 480
    login_failures_per_minute: int = 10

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS


class KeyReader(Protocol):
    """The part of ``mailbot.config``'s reader used here."""

    def raw(self, key: str) -> Any: ...

    def text(self, key: str, default: str | None = None, *, allow_empty: bool = False) -> str: ...

    def str_list(self, key: str, default: list[str] | None = None) -> list[str]: ...

    def integer(self, key: str, default: int, *, minimum: int | None = None) -> int: ...

    def secret(self, section: str, *, required: bool = True, prefix: str = "password") -> str: ...


def read_web(r: KeyReader) -> WebSettings:
    host, port = parse_listen("web.listen", r.text("web.listen", "127.0.0.1:8025"))
    users = []
    raw_users = r.raw("web.users") or []
    if not isinstance(raw_users, list):
        raise ConfigError("web.users", 'a list such as [{name = "alice", password_hash = "..."}]')
    for entry in raw_users:
        name = entry.get("name") if isinstance(entry, dict) else None
        hashed = entry.get("password_hash") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name.strip() or not isinstance(hashed, str):
            raise ConfigError("web.users", "tables with a name and a password_hash", "<hidden>")
        if not hashed.startswith("$argon2"):
            raise ConfigError("web.users", f"an argon2 password_hash for {name!r} "
                              "(made by `mailbot web hash-password`)", "<hidden>")
        users.append(WebUser(name=name.strip(), password_hash=hashed))
    proxies = r.str_list("web.trusted_proxies")
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError("web.trusted_proxies", "IP addresses or networks such as "
                              '"127.0.0.1" or "10.0.0.0/8"', proxy) from None
    header = r.text("web.trusted_header", "", allow_empty=True)
    if header and not proxies:
        raise ConfigError("web.trusted_proxies", "the proxies whose web.trusted_header to "
                          "believe (the header alone would let anyone claim any name)", [])
    return WebSettings(
        host=host,
        port=port,
        users=tuple(users),
        trusted_header=header,
        trusted_proxies=tuple(proxies),
        session_key=r.secret("web", required=False, prefix="session_key").encode("utf-8"),
        session_minutes=r.integer("web.session_minutes", 480, minimum=1),
        login_failures_per_minute=r.integer("web.login_failures_per_minute", 10, minimum=1),
    )


def parse_listen(key: str, value: str) -> tuple[str, int]:
    """``127.0.0.1:8025`` or ``[::1]:8025`` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(key, 'HOST:PORT such as "127.0.0.1:8025"', value)
    return host, int(port)
