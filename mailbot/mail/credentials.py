"""Who the mail edges log in as, and with what: a password, or an OAuth2 access token.

The IMAP and SMTP edges receive a ``Credentials`` and never learn where a token comes from::

    login = credentials.login()          # may raise TokenUnavailable
    ... LOGIN / AUTHENTICATE XOAUTH2 / AUTHENTICATE OAUTHBEARER with login ...
    if refused and credentials.rejected(login):
        login = credentials.login()      # a fresh token; exactly one more try

``mailbot.oauth2`` provides the token-backed kind; a password never earns a second try.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Literal, Protocol

Mechanism = Literal["password", "xoauth2", "oauthbearer"]
SASL_NAMES: dict[Mechanism, str] = {
    "password": "LOGIN",
    "xoauth2": "XOAUTH2",
    "oauthbearer": "OAUTHBEARER",
}


@dataclass(frozen=True)
class Login:
    """One attempt's user, mechanism and secret (a password or an access token)."""

    username: str
    mechanism: Mechanism
    secret: str = field(repr=False)

    @property
    def sasl_name(self) -> str:
        return SASL_NAMES[self.mechanism]


class Credentials(Protocol):
    @property
    def username(self) -> str: ...

    @property
    def mechanism(self) -> Mechanism: ...

    @property
    def refusal_hint(self) -> str:
        """What to check when the server refuses even a fresh login."""
        ...

    def login(self) -> Login:
        """What to log in with now; raises TokenUnavailable when no token can be had."""
        ...

    def rejected(self, login: Login) -> bool:
        """The server refused ``login``; True when a fresh ``login()`` is worth one more try."""
        ...

    def current(self, login: Login) -> bool:
        """False once ``login``'s token is due for renewal: a long session should log in again."""
        ...


@dataclass(frozen=True)
class PasswordCredentials:
    username: str
    password: str = field(repr=False)
    mechanism: Mechanism = "password"
    refusal_hint: str = "check the username and the password"

    def login(self) -> Login:
        return Login(self.username, "password", self.password)

    def rejected(self, login: Login) -> bool:
        return False  # the same password again would be refused again

    def current(self, login: Login) -> bool:
        return True


def sasl_initial_response(login: Login) -> bytes:
    """The base64 initial response of AUTH XOAUTH2 / OAUTHBEARER (RFC 7628 for the latter)."""
    if login.mechanism == "xoauth2":
        text = f"user={login.username}\x01auth=Bearer {login.secret}\x01\x01"
    elif login.mechanism == "oauthbearer":
        authzid = login.username.replace("=", "=3D").replace(",", "=2C")
        text = f"n,a={authzid},\x01auth=Bearer {login.secret}\x01\x01"
    else:
        raise ValueError(f"no SASL initial response for {login.mechanism}")
    return base64.b64encode(text.encode("utf-8"))


# After a refusal the server sends an error challenge; the client ends the exchange with an empty
# line (XOAUTH2) or a single %x01 (OAUTHBEARER, RFC 7628 section 3.2.3), then gets the final NO.
SASL_ABORT: dict[Mechanism, bytes] = {"xoauth2": b"", "oauthbearer": base64.b64encode(b"\x01")}
