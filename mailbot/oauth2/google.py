"""``provider = "google"``: a service account with domain-wide delegation (google-auth).

The account signs a JWT naming the mailbox as its subject; Google answers with a token for that
mailbox if the Workspace admin granted the account the ``https://mail.google.com/`` scope.
"""

from __future__ import annotations

from datetime import UTC

from mailbot.errors import TokenUnavailable
from mailbot.oauth2.http import ProviderSession
from mailbot.oauth2.problems import error_fields, refused, unreachable
from mailbot.oauth2.settings import OAuth2Settings
from mailbot.oauth2.tokens import AccessToken

KEY = "oauth2.service_account_file"


class GoogleFlow:
    def __init__(self, settings: OAuth2Settings) -> None:
        self.settings = settings
        self.flow = settings.flow

    def fetch(self) -> AccessToken:
        from google.auth import exceptions
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        s = self.settings
        try:
            credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                s.service_account_file, scopes=[s.scope], subject=s.subject)
        except (OSError, ValueError) as exc:
            raise TokenUnavailable(f"{self.flow}: the service account key file is unusable "
                                   f"({type(exc).__name__}); check {KEY}", key=KEY) from None
        session = ProviderSession(s.verify)
        try:
            credentials.refresh(Request(session))
        except exceptions.RefreshError as exc:
            body = exc.args[1] if len(exc.args) > 1 else None
            error, description = error_fields(body)
            if not error:
                raise unreachable(self.flow, "the token request", exc, key=KEY) from None
            # unauthorized_client: the admin console does not grant this account the scope.
            raise refused(self.flow, error, description, secret_key=KEY,
                          grant_key="oauth2.subject", client_key=KEY) from None
        except exceptions.TransportError as exc:
            raise unreachable(self.flow, "the token request", exc, key=KEY) from None
        finally:
            session.close()
        expiry = credentials.expiry  # naive UTC
        return AccessToken(str(credentials.token),
                           expiry.replace(tzinfo=UTC) if expiry is not None else None)
