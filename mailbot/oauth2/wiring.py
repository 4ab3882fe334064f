"""The ``Credentials`` the IMAP and SMTP edges log in with, built from the settings.

When both edges use OAuth2 with the same ``[oauth2]`` settings they share one token cache, so one
token serves both and a refusal seen by either makes both fetch a new one.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailbot.clock import Clock
from mailbot.config import Settings
from mailbot.errors import TokenUnavailable
from mailbot.mail.credentials import Credentials, Login, Mechanism, PasswordCredentials
from mailbot.oauth2.settings import OAuth2Settings
from mailbot.oauth2.tokens import TokenCache, TokenProvider


def provider_for(settings: OAuth2Settings) -> TokenProvider:
    if settings.provider == "microsoft":
        from mailbot.oauth2.microsoft import MicrosoftFlow

        return MicrosoftFlow(settings)
    if settings.provider == "google":
        from mailbot.oauth2.google import GoogleFlow

        return GoogleFlow(settings)
    if settings.provider == "refresh_token":
        from mailbot.oauth2.refresh import RefreshTokenFlow

        return RefreshTokenFlow(settings)
    from mailbot.oauth2.command import CommandFlow

    return CommandFlow(settings)


# When the server refuses a token just issued, the grant is missing on the mail side.
REFUSAL_HINTS = {
    "microsoft": "the app may not open this mailbox: grant it to oauth2.client_id "
                 "(New-ServicePrincipal, Add-MailboxPermission; docs/oauth2.md)",
    "google": "oauth2.subject must be this mailbox, and the service account delegated "
              "https://mail.google.com/ (docs/oauth2.md)",
    "refresh_token": "the account that signed in (mailbot auth login) may not use this mailbox, "
                     "or oauth2.scope lacks the IMAP/SMTP permission",
    "command": "the token oauth2.token_command prints is not for this mailbox",
}


class TokenCredentials:
    """Log in as ``username`` with the cache's current token."""

    def __init__(self, username: str, tokens: TokenCache, mechanism: Mechanism,
                 refusal_hint: str = "check the [oauth2] settings (docs/oauth2.md)") -> None:
        self.username = username
        self.tokens = tokens
        self.mechanism: Mechanism = mechanism
        self.refusal_hint = refusal_hint

    def login(self) -> Login:
        return Login(self.username, self.mechanism, self.tokens.token().value)

    def rejected(self, login: Login) -> bool:
        self.tokens.invalidate(login.secret)
        return True

    def current(self, login: Login) -> bool:
        return self.tokens.is_current(login.secret)


@dataclass(frozen=True)
class EdgeCredentials:
    imap: Credentials
    smtp: Credentials
    caches: tuple[TokenCache, ...]  # one per distinct [oauth2] setting in use


def edge_credentials(settings: Settings, *, clock: Clock | None = None) -> EdgeCredentials:
    caches: dict[OAuth2Settings, TokenCache] = {}

    def cache(oauth2: OAuth2Settings) -> TokenCache:
        if oauth2 not in caches:
            caches[oauth2] = TokenCache(provider_for(oauth2), clock=clock)
        return caches[oauth2]

    mb, smtp = settings.mailbox, settings.smtp
    imap_creds: Credentials
    smtp_creds: Credentials
    if mb.oauth2 is not None:
        imap_creds = TokenCredentials(mb.username, cache(mb.oauth2), _mechanism(mb.oauth2),
                                      REFUSAL_HINTS[mb.oauth2.provider])
    else:
        imap_creds = PasswordCredentials(mb.username, mb.password)
    if smtp.oauth2 is not None:
        smtp_creds = TokenCredentials(smtp.username, cache(smtp.oauth2),
                                      _mechanism(smtp.oauth2), REFUSAL_HINTS[smtp.oauth2.provider])
    else:
        smtp_creds = PasswordCredentials(smtp.username, smtp.password)
    return EdgeCredentials(imap=imap_creds, smtp=smtp_creds, caches=tuple(caches.values()))


def _mechanism(settings: OAuth2Settings) -> Mechanism:
    return "oauthbearer" if settings.mechanism == "oauthbearer" else "xoauth2"


__all__ = ["EdgeCredentials", "TokenCredentials", "TokenUnavailable", "edge_credentials",
           "provider_for"]
