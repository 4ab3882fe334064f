"""``provider = "microsoft"``: app-only access to a Microsoft 365 mailbox (MSAL).

The client-credentials flow with a client secret or a certificate; the scope
``https://outlook.office365.com/.default`` grants whatever IMAP.AccessAsApp / SMTP.SendAsApp the
app holds, and Exchange decides which mailboxes it may open (docs/oauth2.md).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mailbot.errors import TokenUnavailable
from mailbot.oauth2.http import ProviderSession
from mailbot.oauth2.problems import refused, unreachable
from mailbot.oauth2.settings import OAuth2Settings
from mailbot.oauth2.tokens import AccessToken

_PRIVATE_KEY = re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----",
                          re.DOTALL)
_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


class MicrosoftFlow:
    def __init__(self, settings: OAuth2Settings) -> None:
        self.settings = settings
        self.flow = settings.flow

    def _credential(self) -> str | dict[str, str]:
        s = self.settings
        if s.client_secret:
            return s.client_secret
        try:
            pem = Path(s.certificate_file).read_text("ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenUnavailable(f"{self.flow}: cannot read the certificate file ({exc}); "
                                   "check oauth2.certificate_file",
                                   key="oauth2.certificate_file") from None
        key = _PRIVATE_KEY.search(pem)
        certificate = _CERTIFICATE.search(pem)
        if key is None or certificate is None:
            raise TokenUnavailable(f"{self.flow}: the certificate file needs the private key and "
                                   "the certificate (PEM); check oauth2.certificate_file",
                                   key="oauth2.certificate_file")
        # MSAL works out the SHA-256 thumbprint from the certificate itself.
        return {"private_key": key.group(0), "public_certificate": certificate.group(0)}

    def _application(self) -> Any:
        import msal
        import requests

        s = self.settings
        try:
            # A fresh in-memory cache each time: refreshing is decided by mailbot's TokenCache,
            # and a token a server refused must not come back out of MSAL's.
            return msal.ConfidentialClientApplication(
                s.client_id,
                client_credential=self._credential(),
                authority=f"{s.authority}/{s.tenant_id}",
                instance_discovery=False,
                http_client=ProviderSession(s.verify),
                token_cache=msal.TokenCache(),
            )
        except ValueError as exc:  # the tenant's OpenID configuration could not be read
            raise self._no_tenant(exc) from None
        except requests.RequestException as exc:
            raise unreachable(self.flow, "tenant discovery", exc, key="oauth2.authority") from None

    def _no_tenant(self, exc: ValueError) -> TokenUnavailable:
        # MSAL's own message is a paragraph; the server's answer is in the error it replaced.
        said = f"{exc.__context__ or ''} {exc}"
        found = re.search(r"AADSTS\d+", said) or re.search(r"HTTP status: (\d+)", said)
        code = "" if found is None else found.group(0).replace("HTTP status: ", "HTTP ")
        s = self.settings
        return TokenUnavailable(
            f"{self.flow}: no tenant {s.tenant_id!r} at {s.authority}"
            + (f" ({code})" if code else "") + "; check oauth2.tenant_id",
            key="oauth2.tenant_id", code=code)

    def fetch(self) -> AccessToken:
        import requests

        s = self.settings
        app = self._application()
        try:
            result = app.acquire_token_for_client(scopes=[s.scope])
        except requests.RequestException as exc:
            raise unreachable(self.flow, "the token request", exc,
                              key="oauth2.authority") from None
        except ValueError as exc:  # a certificate MSAL cannot load
            raise unreachable(self.flow, "signing the client assertion", exc,
                              key="oauth2.certificate_file") from None
        value = result.get("access_token")
        if not isinstance(value, str) or not value:
            numbers = [int(n) for n in result.get("error_codes") or [] if str(n).isdigit()]
            raise refused(self.flow, str(result.get("error") or "error"),
                          result.get("error_description"), secret_key=s.client_secret_key,
                          grant_key="oauth2.client_id", numbers=numbers)
        expires_in = result.get("expires_in")
        expires_at = (datetime.now(UTC) + timedelta(seconds=int(expires_in))
                      if isinstance(expires_in, int | str) and str(expires_in).isdigit()
                      else None)
        return AccessToken(value, expires_at)
