"""Who may look: password users (argon2), a trusted proxy's header, signed session cookies.

Sessions live entirely in a signed cookie (itsdangerous): a forged or altered cookie fails the
signature, an old one fails the age check, and there is no server-side session id to fix.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from mailbot.web.settings import WebSettings

_hasher = PasswordHasher()
# Verified against when the name is unknown, so that a wrong name costs as long as a wrong
# password and the timing does not tell which names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@dataclass(frozen=True)
class Session:
    user: str  # "" before login
    csrf: str  # the token the login and logout forms must carry


class Access:
    def __init__(self, settings: WebSettings, session_key: bytes) -> None:
        self.settings = settings
        self._users = {u.name: u.password_hash for u in settings.users}
        self._proxies = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]
        self._cookies = URLSafeTimedSerializer(session_key, salt="mailbot.web.session")
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._limit = RateLimitItemPerMinute(settings.login_failures_per_minute)

    @property
    def passwords_enabled(self) -> bool:
        return bool(self._users)

    # -- passwords and the login limit --------------------------------------------------------

    def login_allowed(self, address: str) -> bool:
        """False once ``login_failures_per_minute`` wrong passwords came from this address in
        the last minute: the next try is refused before its password is even looked at."""
        return bool(self._limiter.test(self._limit, "login", address))

    def check_password(self, address: str, name: str, password: str) -> bool:
        stored = self._users.get(name)
        try:
            ok = _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if not ok:
            self._limiter.hit(self._limit, "login", address)
        return ok

    # -- the trusted header -------------------------------------------------------------------

    def proxy_user(self, peer: str | None, headers: Any) -> str | None:
        """The name a trusted proxy vouches for, or None (no header, or not from a proxy)."""
        name = self.settings.trusted_header
        if not name or peer is None or not self.is_trusted_proxy(peer):
            return None
        value = headers.get(name, "").strip()
        return value[:320] or None

    def is_trusted_proxy(self, peer: str) -> bool:
        try:
            ip = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(ip in net for net in self._proxies)

    # -- session cookies ----------------------------------------------------------------------

    @property
    def max_age(self) -> int:
        return self.settings.session_minutes * 60

    def new_session(self, user: str = "") -> Session:
        return Session(user=user, csrf=secrets.token_urlsafe(24))

    def seal(self, session: Session) -> str:
        return self._cookies.dumps({"u": session.user, "c": session.csrf})

    def open(self, cookie: str | None) -> Session | None:
        """The session in a cookie, or None when it is missing, forged, altered or expired."""
        if not cookie:
            return None
        try:
            data = self._cookies.loads(cookie, max_age=self.max_age)
        except BadSignature:  # SignatureExpired is a BadSignature too
            return None
        if not isinstance(data, dict):
            return None
        user, csrf = data.get("u"), data.get("c")
        if not isinstance(user, str) or not isinstance(csrf, str):
            return None
        if user and user not in self._users:  # a user removed from the config is logged out
            return None
        return Session(user=user, csrf=csrf)
