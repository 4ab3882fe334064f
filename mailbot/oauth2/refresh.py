"""``provider = "refresh_token"``: trade a stored refresh token for an access token (Authlib).

Works with any provider that has a token endpoint. A provider that rotates refresh tokens sends a
new one with every access token; it replaces the stored one at once, atomically.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mailbot.oauth2.files import read_secret, write_secret
from mailbot.oauth2.problems import refused, unreachable
from mailbot.oauth2.settings import OAuth2Settings
from mailbot.oauth2.tokens import AccessToken

TIMEOUT_SECONDS = 30


class RefreshTokenFlow:
    def __init__(self, settings: OAuth2Settings) -> None:
        self.settings = settings
        self.flow = settings.flow

    def session(self) -> Any:
        """An Authlib session for the token endpoint (also used by ``mailbot auth login``)."""
        from authlib.integrations.requests_client import OAuth2Session

        s = self.settings
        session = OAuth2Session(
            client_id=s.client_id,
            client_secret=s.client_secret or None,
            token_endpoint_auth_method="client_secret_post" if s.client_secret else "none",
            scope=s.scope or None,
        )
        session.verify = s.verify  # and per request: REQUESTS_CA_BUNDLE would win over this
        return session

    def fetch(self) -> AccessToken:
        import requests
        from authlib.integrations.base_client.errors import OAuthError

        s = self.settings
        stored = read_secret(s.refresh_token_file)
        session = self.session()
        try:
            token = session.refresh_token(s.token_url, refresh_token=stored,
                                          timeout=TIMEOUT_SECONDS, verify=s.verify)
        except OAuthError as exc:
            raise refused(self.flow, exc.error or "error", exc.description,
                          secret_key=s.client_secret_key,
                          grant_key="oauth2.refresh_token_file") from None
        except (requests.RequestException, ValueError) as exc:
            raise unreachable(self.flow, "the token request", exc, key="oauth2.token_url") from None
        finally:
            session.close()
        rotated = token.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != stored:
            write_secret(s.refresh_token_file, rotated)
        try:
            return access_token(token)
        except ValueError as exc:
            raise unreachable(self.flow, "the token request", exc, key="oauth2.token_url") from None


def access_token(token: dict[str, Any]) -> AccessToken:
    """An ``AccessToken`` from a token endpoint's JSON answer."""
    value = token.get("access_token")
    if not isinstance(value, str) or not value:
        raise ValueError("the token response holds no access_token")
    expires_at: datetime | None = None
    if isinstance(token.get("expires_at"), int | float):
        expires_at = datetime.fromtimestamp(float(token["expires_at"]), UTC)
    elif isinstance(token.get("expires_in"), int | float | str):
        expires_at = datetime.now(UTC) + timedelta(seconds=float(token["expires_in"]))
    return AccessToken(value, expires_at)
