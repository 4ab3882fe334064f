"""``mailbot auth login``: the device-code flow (RFC 8628) that stores a refresh token.

For delegated access where app-only access is not allowed: mailbot shows a URL and a short code,
a person who may read the mailbox opens the URL anywhere, signs in and enters the code, and the
refresh token that comes back is written to ``oauth2.refresh_token_file`` (mode 0600).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mailbot.errors import ConfigError, TokenUnavailable
from mailbot.oauth2.files import write_secret
from mailbot.oauth2.http import ProviderSession
from mailbot.oauth2.problems import error_fields, refused, unreachable
from mailbot.oauth2.refresh import RefreshTokenFlow
from mailbot.oauth2.settings import OAuth2Settings

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL = 5  # seconds, when the provider does not say (RFC 8628 section 3.2)


def device_login(settings: OAuth2Settings, *, say: Callable[[str], None],
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """Run the flow once; the refresh token ends up in the file, never on the screen."""
    if not settings.device_authorization_url:
        raise ConfigError("oauth2.device_authorization_url",
                          "the provider's device authorization endpoint (for `mailbot auth login`)")
    flow = f"{settings.flow}, device code"
    grant = _authorize(settings, flow)
    uri = grant.get("verification_uri_complete") or grant.get("verification_uri") \
        or grant.get("verification_url")
    minutes = max(1, int(grant.get("expires_in", 900)) // 60)
    say(f"To let mailbot in, open {uri} in a browser, sign in as the mailbox (or a person "
        f"allowed to read it) and enter the code {grant['user_code']} (valid {minutes} min).")
    token = _poll(settings, flow, grant, sleep)
    refresh = token.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        raise TokenUnavailable(f"{flow}: the provider sent no refresh token; add offline_access "
                               "to the scope; check oauth2.scope", key="oauth2.scope")
    write_secret(settings.refresh_token_file, refresh)
    say(f"Saved the refresh token to {settings.refresh_token_file} (readable by this user only).")


def _authorize(settings: OAuth2Settings, flow: str) -> dict[str, Any]:
    import requests

    form = {"client_id": settings.client_id}
    if settings.scope:
        form["scope"] = settings.scope
    if settings.client_secret:
        form["client_secret"] = settings.client_secret
    key = "oauth2.device_authorization_url"
    with ProviderSession(settings.verify) as session:
        try:
            response = session.post(settings.device_authorization_url, data=form)
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise unreachable(flow, "the device authorization request", exc, key=key) from None
    error, description = error_fields(body)
    if error or not isinstance(body, dict):
        raise refused(flow, error or f"HTTP {response.status_code}", description,
                      secret_key=settings.client_secret_key, grant_key=key)
    if not all(isinstance(body.get(k), str) for k in ("device_code", "user_code")):
        raise unreachable(flow, "the device authorization request",
                          ValueError("the answer lacks device_code or user_code"), key=key)
    return body


def _poll(settings: OAuth2Settings, flow: str, grant: dict[str, Any],
          sleep: Callable[[float], None]) -> dict[str, Any]:
    import requests
    from authlib.integrations.base_client.errors import OAuthError

    interval = float(grant.get("interval") or DEFAULT_INTERVAL)
    deadline = time.monotonic() + float(grant.get("expires_in") or 900)
    session = RefreshTokenFlow(settings).session()
    try:
        while True:
            sleep(interval)
            if time.monotonic() > deadline:
                raise TokenUnavailable(f"{flow}: the code expired before it was entered; run "
                                       "`mailbot auth login` again",
                                       key="oauth2.device_authorization_url", code="expired_token")
            try:
                token: dict[str, Any] = session.fetch_token(
                    settings.token_url, grant_type=DEVICE_GRANT, device_code=grant["device_code"],
                    verify=settings.verify, timeout=30)
                return token
            except OAuthError as exc:
                if exc.error == "authorization_pending":
                    continue
                if exc.error == "slow_down":
                    interval += 5
                    continue
                raise refused(flow, exc.error or "error", exc.description,
                              secret_key=settings.client_secret_key,
                              grant_key="oauth2.device_authorization_url") from None
            except (requests.RequestException, ValueError) as exc:
                raise unreachable(flow, "the token request", exc, key="oauth2.token_url") from None
    finally:
        session.close()
