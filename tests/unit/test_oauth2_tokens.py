"""The token cache, the SASL strings and the provider-error wording: pure code, no servers."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from mailbot.clock import FixedClock
from mailbot.errors import TokenUnavailable
from mailbot.mail.credentials import Login, sasl_initial_response
from mailbot.oauth2.problems import refused
from mailbot.oauth2.tokens import REFRESH_MARGIN, UNKNOWN_LIFETIME, AccessToken, TokenCache
from mailbot.oauth2.wiring import TokenCredentials

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class Provider:
    flow = "test flow"

    def __init__(self, clock: FixedClock, lifetime: timedelta | None = timedelta(hours=1)
                 ) -> None:
        self.clock, self.lifetime, self.calls = clock, lifetime, 0
        self.failing = False

    def fetch(self) -> AccessToken:
        if self.failing:
            raise TokenUnavailable("down", key="oauth2.token_url")
        self.calls += 1
        expiry = None if self.lifetime is None else self.clock.now() + self.lifetime
        return AccessToken(f"token-{self.calls}", expiry)


def test_a_token_is_reused_until_the_margin_before_expiry() -> None:
    clock = FixedClock(NOW)
    provider = Provider(clock)
    cache = TokenCache(provider, clock=clock)
    assert cache.token().value == "token-1"
    clock.advance(timedelta(hours=1) - REFRESH_MARGIN - timedelta(seconds=1))
    assert cache.token().value == "token-1"
    clock.advance(timedelta(seconds=1))
    assert cache.token().value == "token-2"


def test_a_token_without_a_lifetime_is_kept_for_a_while_only() -> None:
    clock = FixedClock(NOW)
    cache = TokenCache(Provider(clock, lifetime=None), clock=clock)
    cache.token()
    clock.advance(UNKNOWN_LIFETIME)
    assert cache.token().value == "token-2"


def test_only_the_refused_token_is_forgotten() -> None:
    clock = FixedClock(NOW)
    cache = TokenCache(Provider(clock), clock=clock)
    first = cache.token()
    cache.invalidate("some-older-token")  # another login already replaced it
    assert cache.token() == first
    credentials = TokenCredentials("u@example.com", cache, "xoauth2")
    assert credentials.rejected(credentials.login()) is True
    assert cache.token().value == "token-2"


def test_a_failed_fetch_is_not_cached() -> None:
    clock = FixedClock(NOW)
    provider = Provider(clock)
    cache = TokenCache(provider, clock=clock)
    provider.failing = True
    with pytest.raises(TokenUnavailable):
        cache.token()
    provider.failing = False
    assert cache.token().value == "token-1"


def test_the_token_never_shows_in_a_repr() -> None:
    token = AccessToken("eyJ-secret", NOW)
    login = Login("u@example.com", "xoauth2", "eyJ-secret")
    assert "eyJ-secret" not in repr(token) + repr(login)


def test_sasl_initial_responses() -> None:
    xoauth2 = sasl_initial_response(Login("u@example.com", "xoauth2", "tok"))
    assert base64.b64decode(xoauth2) == b"user=u@example.com\x01auth=Bearer tok\x01\x01"
    bearer = sasl_initial_response(Login("a,b=c@example.com", "oauthbearer", "tok"))
    assert base64.b64decode(bearer) == b"n,a=a=2Cb=3Dc@example.com,\x01auth=Bearer tok\x01\x01"


def test_a_provider_that_is_unavailable_is_weather_not_a_refusal() -> None:
    problem = refused("flow", "temporarily_unavailable", "try later", secret_key="s",
                      grant_key="g")
    assert problem.code == ""  # retried as for a network error, not as a refused login
    assert "temporarily_unavailable" in str(problem)


@pytest.mark.parametrize(("error", "numbers", "key"), [
    ("invalid_client", [7000215], "oauth2.client_secret_file"),
    ("invalid_client", [], "oauth2.client_secret_file"),
    ("unauthorized_client", [700016], "oauth2.client_id"),
    ("invalid_request", [90002], "oauth2.tenant_id"),
    ("invalid_client", [65001], "oauth2.client_id"),
    ("invalid_grant", [], "oauth2.refresh_token_file"),
    ("invalid_scope", [], "oauth2.scope"),
])
def test_provider_errors_point_at_a_key(error: str, numbers: list[int], key: str) -> None:
    problem = refused("flow", error, "AADSTS1: first line\nTrace ID: x\n",
                      secret_key="oauth2.client_secret_file",
                      grant_key="oauth2.refresh_token_file", numbers=numbers)
    assert problem.key == key
    assert str(problem).endswith(f"check {key}")
    assert "Trace ID" not in str(problem)
