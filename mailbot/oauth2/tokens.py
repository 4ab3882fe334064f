"""Access tokens and the cache the edges share.

A token is reused until ``REFRESH_MARGIN`` before it expires, so no login ever starts with a token
that runs out halfway; one whose lifetime the provider did not say is kept ``UNKNOWN_LIFETIME``.
When a server refuses a token the edge calls ``invalidate``, and the next ``token()`` asks the
provider again. The cache is shared by the IMAP threads and the SMTP loop, hence the lock.

Tokens never reach a log line or an exception: ``AccessToken``'s repr hides the value.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from mailbot.clock import Clock, SystemClock

log = logging.getLogger("mailbot.oauth2")

REFRESH_MARGIN = timedelta(minutes=5)
UNKNOWN_LIFETIME = timedelta(minutes=10)


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires_at: datetime | None  # aware; None when the provider did not say


class TokenProvider(Protocol):
    """One way of obtaining a fresh token from a provider (no caching of its own)."""

    @property
    def flow(self) -> str: ...

    def fetch(self) -> AccessToken:
        """A new access token; raises TokenUnavailable naming the key to look at."""
        ...


class TokenCache:
    """The current token of one provider, refreshed shortly before it expires."""

    def __init__(self, provider: TokenProvider, *, clock: Clock | None = None,
                 margin: timedelta = REFRESH_MARGIN) -> None:
        self.provider = provider
        self._clock: Clock = clock or SystemClock()
        self._margin = margin
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self._good_until: datetime | None = None
        self.fetches = 0  # how often the provider was asked (for check and the tests)

    @property
    def flow(self) -> str:
        return self.provider.flow

    def token(self) -> AccessToken:
        """The cached token while it has more than the margin left, else a fresh one."""
        with self._lock:
            now = self._clock.now()
            if self._token is not None and self._good_until is not None and now < self._good_until:
                return self._token
            token = self.provider.fetch()
            self.fetches += 1
            self._token = token
            if token.expires_at is None:
                self._good_until = now + UNKNOWN_LIFETIME
            else:
                self._good_until = token.expires_at - self._margin
            log.info("obtained an OAuth2 access token via %s, %s", self.flow,
                     f"valid until {token.expires_at:%Y-%m-%d %H:%M:%S %Z}"
                     if token.expires_at else "lifetime not given")
            return token

    def is_current(self, value: str) -> bool:
        """Whether ``value`` is the cached token and not yet due for renewal."""
        with self._lock:
            return (self._token is not None and self._token.value == value
                    and self._good_until is not None and self._clock.now() < self._good_until)

    def invalidate(self, value: str) -> None:
        """A server refused the token ``value``: forget it unless a newer one replaced it."""
        with self._lock:
            if self._token is not None and self._token.value == value:
                log.info("a server refused the OAuth2 access token; the next login gets a new one")
                self._token = None
                self._good_until = None
