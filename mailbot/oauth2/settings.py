"""The ``[oauth2]`` table, validated into a frozen value.

``mailbot.config`` hands in its key reader (the same one every other section uses, so errors name
the key the same way) and the table already merged with a ``[mailbox.oauth2]`` or
``[smtp.oauth2]`` override.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from mailbot.errors import ConfigError

PROVIDERS = ("microsoft", "google", "refresh_token", "command")
MECHANISMS = ("xoauth2", "oauthbearer")
OAUTH2_KEYS = frozenset({
    "provider", "mechanism", "scope", "ca_file",
    "authority", "tenant_id", "client_id", "client_secret", "client_secret_env",
    "client_secret_file", "certificate_file",
    "service_account_file", "subject",
    "token_url", "device_authorization_url", "refresh_token_file",
    "token_command",
})  # fmt: skip

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
DEFAULT_SCOPES = {
    "microsoft": "https://outlook.office365.com/.default",
    "google": "https://mail.google.com/",
}
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True, kw_only=True)
class OAuth2Settings:
    provider: str
    mechanism: str = "xoauth2"
    scope: str = ""
    ca_file: str = ""  # a CA bundle for the provider's HTTPS endpoints; "" = the system's
    # microsoft
    authority: str = MICROSOFT_AUTHORITY
    tenant_id: str = ""
    # microsoft and refresh_token
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    client_secret_key: str = "oauth2.client_secret_env"  # the key that held it, for messages
    certificate_file: str = ""  # PEM with the private key and its certificate
    # google
    service_account_file: str = ""
    subject: str = ""
    # refresh_token
    token_url: str = ""
    device_authorization_url: str = ""
    refresh_token_file: str = ""
    # command
    token_command: tuple[str, ...] = ()

    @property
    def verify(self) -> str | bool:
        """What ``requests`` should verify TLS against."""
        return self.ca_file or True

    @property
    def flow(self) -> str:
        """How the token is obtained, in words, for ``check`` and the logs."""
        return {
            "microsoft": "microsoft (client credentials, MSAL)",
            "google": "google (service account with domain-wide delegation)",
            "refresh_token": "refresh_token (stored refresh token)",
            "command": "command (token_command)",
        }[self.provider]


class KeyReader(Protocol):
    """The part of ``mailbot.config``'s reader used here."""

    def raw(self, key: str) -> Any: ...

    def text(self, key: str, default: str | None = None, *, allow_empty: bool = False) -> str: ...

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str: ...

    def secret(self, section: str, *, required: bool = True, prefix: str = "password") -> str: ...


def read_oauth2(r: KeyReader, *, base: Path, username: str) -> OAuth2Settings:
    """Validate the (merged) ``[oauth2]`` table; ``username`` is the edge's login user."""
    provider = r.text("oauth2.provider")
    if provider not in PROVIDERS:
        raise ConfigError("oauth2.provider", "one of " + ", ".join(PROVIDERS), provider)
    common: dict[str, Any] = {
        "provider": provider,
        "mechanism": r.choice("oauth2.mechanism", MECHANISMS, "xoauth2"),
        "scope": r.text("oauth2.scope", DEFAULT_SCOPES.get(provider, ""), allow_empty=True),
        "ca_file": _path(r, "oauth2.ca_file", base, must_exist=True),
    }
    if provider == "microsoft":
        return OAuth2Settings(**common, **_microsoft(r, base))
    if provider == "google":
        return OAuth2Settings(
            **common,
            service_account_file=_path(r, "oauth2.service_account_file", base, required=True,
                                       must_exist=True),
            subject=r.text("oauth2.subject", username),
        )
    if provider == "refresh_token":
        return OAuth2Settings(**common, **_refresh_token(r, base))
    return OAuth2Settings(**common, token_command=_command(r))


def _microsoft(r: KeyReader, base: Path) -> dict[str, Any]:
    authority = _url(r, "oauth2.authority", MICROSOFT_AUTHORITY).rstrip("/")
    secret, secret_key = _client_secret(r)
    certificate = _path(r, "oauth2.certificate_file", base, must_exist=True)
    if not secret and not certificate:
        raise ConfigError("oauth2.client_secret_env",
                          "client_secret_env, client_secret_file or certificate_file to be set")
    return {
        "authority": authority,
        "tenant_id": r.text("oauth2.tenant_id"),
        "client_id": r.text("oauth2.client_id"),
        "client_secret": secret,
        "client_secret_key": secret_key if secret else "oauth2.certificate_file",
        "certificate_file": certificate,
    }


def _refresh_token(r: KeyReader, base: Path) -> dict[str, Any]:
    secret, secret_key = _client_secret(r)
    device = r.text("oauth2.device_authorization_url", "", allow_empty=True)
    return {
        "token_url": _url(r, "oauth2.token_url"),
        "device_authorization_url": _url(r, "oauth2.device_authorization_url") if device else "",
        "client_id": r.text("oauth2.client_id"),
        "client_secret": secret,
        "client_secret_key": secret_key,
        "refresh_token_file": _path(r, "oauth2.refresh_token_file", base, required=True),
    }


def _command(r: KeyReader) -> tuple[str, ...]:
    value = r.raw("oauth2.token_command")
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, str) and v for v in value)):
        raise ConfigError("oauth2.token_command",
                          'a program and its arguments, such as ["oama", "access", "user"]',
                          value)
    return tuple(value)


def _client_secret(r: KeyReader) -> tuple[str, str]:
    """The client secret (possibly ""), and the key it came from."""
    secret = r.secret("oauth2", required=False, prefix="client_secret")
    env_name = r.raw("oauth2.client_secret_env")
    if env_name and not secret and not (r.raw("oauth2.client_secret_file")
                                        or r.raw("oauth2.client_secret")):
        raise ConfigError("oauth2.client_secret_env",
                          f"the environment variable {env_name} to be set")
    for key in ("client_secret_env", "client_secret_file", "client_secret"):
        if r.raw(f"oauth2.{key}"):
            return secret, f"oauth2.{key}"
    return secret, "oauth2.client_secret_env"


def _url(r: KeyReader, key: str, default: str | None = None) -> str:
    value = r.text(key, default)
    parts = urlsplit(value)
    if not parts.hostname or not (
        parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)
    ):
        raise ConfigError(key, "an https:// URL", value)
    return value


def _path(r: KeyReader, key: str, base: Path, *, required: bool = False,
          must_exist: bool = False) -> str:
    value = r.text(key, None if required else "", allow_empty=not required)
    if not value:
        return ""
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base / path
    if must_exist and not path.is_file():
        raise ConfigError(key, "a readable file", value)
    return str(path)
