"""Reading a parsed TOML document key by key: typed values, secrets from the environment or a
file, and errors that name the key. ``mailbot.config`` (and the optional packages that read their
own tables, such as oauth2 and web) build the settings with it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from mailbot.errors import ConfigError

log = logging.getLogger("mailbot.config")


def as_date(key: str, value: object) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(key, "a date such as 2026-12-25", value)


class Reader:
    """Typed access to dotted keys, with errors that name the key."""

    def __init__(self, data: Mapping[str, Any], env: Mapping[str, str], base: Path) -> None:
        self._data = data
        self._env = env
        self._base = base

    @property
    def env(self) -> Mapping[str, str]:
        return self._env

    @property
    def base(self) -> Path:
        return self._base

    def raw(self, key: str) -> Any:
        section, _, name = key.partition(".")
        return self._data.get(section, {}).get(name)

    def text(self, key: str, default: str | None = None, *, allow_empty: bool = False) -> str:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise ConfigError(key, "a value (the key is required)")
            return default
        if not isinstance(value, str):
            raise ConfigError(key, "a string", value)
        if not value.strip() and not allow_empty:
            raise ConfigError(key, "a non-empty string", value)
        return value.strip()

    def integer(self, key: str, default: int, *, minimum: int | None = None) -> int:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, "a whole number", value)
        if minimum is not None and value < minimum:
            raise ConfigError(key, f"a whole number of at least {minimum}", value)
        return value

    def port(self, key: str, default: int) -> int:
        value = self.integer(key, default, minimum=1)
        if value > 65535:
            raise ConfigError(key, "a port number between 1 and 65535", value)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(key, "true or false", value)
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(key, default).lower()
        if value not in choices:
            raise ConfigError(key, "one of " + ", ".join(choices), value)
        return value

    def str_list(self, key: str, default: list[str] | None = None) -> list[str]:
        value = self.raw(key)
        if value is None:
            return list(default or [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, "a list of strings", value)
        return [v.strip() for v in value if v.strip()]

    def addresses(self, key: str) -> list[str]:
        out = []
        for value in self.str_list(key):
            addr = parseaddr(value)[1]
            if "@" not in addr or addr.count("@") != 1:
                raise ConfigError(key, "email addresses such as alice@example.com", value)
            out.append(addr)
        return out

    def date_list(self, key: str) -> list[date]:
        value = self.raw(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(key, "a list of dates such as [\"2026-12-25\"]", value)
        return [as_date(key, v) for v in value]

    def secret_key(self, section: str, prefix: str = "password") -> str:
        """The key a secret is read from, as ``secret`` picks it: for messages that say what to fix.

        ``mailbox.password_env (MAILBOT_IMAP_PASSWORD)``, ``smtp.password_file``, ...
        """
        env_name = self.raw(f"{section}.{prefix}_env")
        if env_name and (env_name in self._env or not (
                self.raw(f"{section}.{prefix}_file") or self.raw(f"{section}.{prefix}"))):
            return f"{section}.{prefix}_env ({env_name})"
        if self.raw(f"{section}.{prefix}_file"):
            return f"{section}.{prefix}_file"
        if self.raw(f"{section}.{prefix}") is not None:
            return f"{section}.{prefix}"
        return f"{section}.{prefix}_env"

    def secret(self, section: str, *, required: bool = True, prefix: str = "password") -> str:
        """``<prefix>_env`` names a variable, ``<prefix>_file`` a file, ``<prefix>`` is inline."""
        env_name = self.raw(f"{section}.{prefix}_env")
        file_name = self.raw(f"{section}.{prefix}_file")
        inline = self.raw(f"{section}.{prefix}")
        if env_name:
            if not isinstance(env_name, str):
                raise ConfigError(f"{section}.{prefix}_env", "the name of an environment variable",
                                  env_name)
            if env_name in self._env:
                return self._env[env_name]
            if required or not (file_name or inline):
                if required:
                    raise ConfigError(f"{section}.{prefix}_env",
                                      f"the environment variable {env_name} to be set")
                return ""
        if file_name:
            if not isinstance(file_name, str):
                raise ConfigError(f"{section}.{prefix}_file", "a path to a file", file_name)
            path = Path(file_name)
            if not path.is_absolute():
                path = self._base / path
            try:
                return path.read_text("utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{section}.{prefix}_file",
                                  f"a readable file ({exc.strerror})", file_name) from None
        if inline is not None:
            if not isinstance(inline, str):
                raise ConfigError(f"{section}.{prefix}", "a string", "<hidden>")
            log.warning("%s.%s is set in the config file itself; prefer %s_env or %s_file",
                        section, prefix, prefix, prefix)
            return inline
        if required:
            raise ConfigError(f"{section}.{prefix}_env",
                              f"one of {prefix}_env, {prefix}_file or {prefix} to be set")
        return ""
