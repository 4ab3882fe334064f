"""An OAuth2 provider on loopback for the tests, and a Dovecot that checks tokens with it.

``TokenAuthority`` answers, over HTTPS with the suite's self-signed certificate:

- ``POST /token`` and ``POST /<tenant>/oauth2/v2.0/token``: the grants ``refresh_token``,
  ``client_credentials`` (a client secret, or a certificate-signed client assertion as MSAL sends
  it), ``urn:ietf:params:oauth:grant-type:jwt-bearer`` (a Google service account's signed JWT,
  checked against its public key) and the device-code grant;
- ``GET /<tenant>/v2.0/.well-known/openid-configuration`` (MSAL's tenant discovery);
- ``POST /device``: a device authorization (RFC 8628);

and over plain HTTP ``POST /introspect``, RFC 7662 token introspection as Dovecot's ``oauth2``
passdb asks for it. Tokens are random strings it remembers; tests revoke, expire and count them.

An app-only token (client credentials) belongs to the app, not to a mailbox; as Exchange does, the
authority lets it open only the mailbox the app was granted (``add_app(mailboxes=...)``), so
introspection names that mailbox, and Dovecot refuses a login as any other.

Fixtures: ``token_authority`` (session; reset for each test by ``oauth2_provider``),
``oauth2_dovecot`` (session) and ``oauth2_account`` (a fresh mailbox on it).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography import x509

from tests.servers import server_missing
from tests.servers.dovecot import DovecotServer, ImapAccount, doveadm_binary, dovecot_binary
from tests.servers.smtp_sink import TlsCert

HOST = "127.0.0.1"
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_SCOPE = "https://mail.google.com/"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"


@dataclasses.dataclass
class Issued:
    user: str
    expires_at: float  # time.time()
    active: bool = True


@dataclasses.dataclass
class Device:
    user_code: str
    client_id: str
    approved_for: str | None = None  # the user who entered the code
    approve_after_polls: int | None = None
    polls: int = 0


class OAuth2Refusal(Exception):
    def __init__(self, status: int, error: str, description: str, codes: list[int] | None = None):
        super().__init__(error)
        self.status, self.error, self.description, self.codes = status, error, description, codes


class TokenAuthority:
    """A small OAuth2 provider. State changes come from the test's thread, under one lock."""

    def __init__(self, cert: TlsCert) -> None:
        self.cert = cert
        self.lock = threading.Lock()
        self.reset()
        self._https = ThreadingHTTPServer((HOST, 0), _handler(self, tls=True))
        context = cert.server_context()
        self._https.socket = context.wrap_socket(self._https.socket, server_side=True)
        self._http = ThreadingHTTPServer((HOST, 0), _handler(self, tls=False))
        self._threads = [threading.Thread(target=srv.serve_forever, daemon=True)
                         for srv in (self._https, self._http)]
        for t in self._threads:
            t.start()

    def reset(self) -> None:
        with self.lock:
            self.clients: dict[str, str] = {}  # client id -> secret ("" = a public client)
            self.client_certs: dict[str, Any] = {}  # client id -> certificate public key
            self.app_mailboxes: dict[str, set[str]] = {}  # app (client id) -> mailboxes it may use
            self.tenants: set[str] = set()
            self.service_accounts: dict[str, tuple[Any, set[str]]] = {}  # email -> (key, domains)
            self.refresh_tokens: dict[str, tuple[str, str]] = {}  # token -> (client id, user)
            self.tokens: dict[str, Issued] = {}
            self.devices: dict[str, Device] = {}
            # (user, polls): each new device code is approved for user after that many polls
            self.auto_approve: tuple[str, int] | None = None
            self.slow_down = False  # answer the first poll of each device code with slow_down
            self.lifetime = 3600
            self.rotate = False
            self.outage: int | None = None  # answer every token request with this HTTP status
            self.grants: list[str] = []  # grant types of the token requests, in order
            self.introspections: list[tuple[str, bool]] = []  # (user or "", accepted)

    # -- the test's controls --------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self._https.server_address[1]}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def device_url(self) -> str:
        return f"{self.url}/device"

    @property
    def introspection_url(self) -> str:
        return f"http://{HOST}:{self._http.server_address[1]}/introspect"

    def add_client(self, client_id: str, secret: str = "") -> None:
        with self.lock:
            self.clients[client_id] = secret

    def add_refresh_token(self, client_id: str, user: str) -> str:
        token = "rt-" + secrets.token_urlsafe(24)
        with self.lock:
            self.refresh_tokens[token] = (client_id, user)
        return token

    def add_app(self, tenant: str, client_id: str, *, secret: str = "",
                certificate_pem: bytes | None = None, mailboxes: tuple[str, ...] = ()) -> None:
        """An Entra app registration with IMAP.AccessAsApp for ``mailboxes``."""
        with self.lock:
            self.tenants.add(tenant)
            self.clients[client_id] = secret
            if certificate_pem is not None:
                cert = x509.load_pem_x509_certificate(certificate_pem)
                self.client_certs[client_id] = cert.public_key()
            self.app_mailboxes[client_id] = set(mailboxes)

    def add_service_account(self, email: str, public_key: Any, domains: tuple[str, ...]) -> None:
        """A Google service account, delegated for the mailboxes of ``domains``."""
        with self.lock:
            self.service_accounts[email] = (public_key, set(domains))

    def revoke(self, token: str) -> None:
        with self.lock:
            self.tokens[token].active = False

    def revoke_all(self) -> None:
        with self.lock:
            for issued in self.tokens.values():
                issued.active = False

    def expire_all(self) -> None:
        with self.lock:
            for issued in self.tokens.values():
                issued.expires_at = 0.0

    def valid_for(self, user: str, token: str) -> bool:
        """Whether ``token`` is live and was issued for ``user`` (the SMTP sink asks this)."""
        with self.lock:
            return self._user_of(token) == user

    def refusals(self) -> int:
        with self.lock:
            return sum(1 for _, ok in self.introspections if not ok)

    def stop(self) -> None:
        for srv in (self._https, self._http):
            srv.shutdown()
            srv.server_close()

    # -- what the endpoints do (called on the server's threads) -----------------------------

    def _user_of(self, token: str) -> str | None:
        issued = self.tokens.get(token)
        if issued is None or not issued.active or issued.expires_at < time.time():
            return None
        if issued.user.startswith("app:"):
            granted = sorted(self.app_mailboxes.get(issued.user[4:], ()))
            return granted[0] if granted else None
        return issued.user

    def issue(self, user: str) -> str:
        """An access token for ``user``, as a helper program would have obtained it."""
        with self.lock:
            return str(self._issue(user)["access_token"])

    def introspect(self, token: str) -> dict[str, str]:
        with self.lock:
            user = self._user_of(token)
            self.introspections.append((user or "", user is not None))
        if user is None:
            return {"active": "false"}
        return {"active": "true", "username": user}

    def _issue(self, user: str) -> dict[str, Any]:
        token = "at-" + secrets.token_urlsafe(24)
        self.tokens[token] = Issued(user, time.time() + self.lifetime)
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime}

    def token_request(self, path: str, form: dict[str, str], basic: tuple[str, str] | None,
                      ) -> dict[str, Any]:
        with self.lock:
            grant = form.get("grant_type", "")
            self.grants.append(grant)
            if self.outage is not None:
                raise OAuth2Refusal(self.outage, "temporarily_unavailable", "the test said so")
            if grant == "refresh_token":
                return self._refresh(form, basic)
            if grant == "client_credentials":
                return self._client_credentials(path, form)
            if grant == JWT_BEARER:
                return self._jwt_bearer(form)
            if grant == DEVICE_CODE:
                return self._device_code(form, basic)
            raise OAuth2Refusal(400, "unsupported_grant_type", grant)

    def _client(self, form: dict[str, str], basic: tuple[str, str] | None) -> str:
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        if client_id not in self.clients or self.clients[client_id] != secret:
            raise OAuth2Refusal(401, "invalid_client", "Client authentication failed.")
        return client_id

    def _refresh(self, form: dict[str, str], basic: tuple[str, str] | None) -> dict[str, Any]:
        client_id = self._client(form, basic)
        held = self.refresh_tokens.get(form.get("refresh_token", ""))
        if held is None or held[0] != client_id:
            raise OAuth2Refusal(400, "invalid_grant", "The refresh token is invalid or expired.")
        answer = self._issue(held[1])
        if self.rotate:
            del self.refresh_tokens[form["refresh_token"]]
            new = "rt-" + secrets.token_urlsafe(24)
            self.refresh_tokens[new] = held
            answer["refresh_token"] = new
        return answer

    def _client_credentials(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        tenant = path.strip("/").split("/")[0]
        if tenant not in self.tenants:
            raise OAuth2Refusal(400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not "
                                "found.\nTrace ID: 1", [90002])
        client_id = form.get("client_id", "")
        if client_id not in self.clients:
            raise OAuth2Refusal(400, "unauthorized_client", "AADSTS700016: Application with "
                                f"identifier '{client_id}' was not found.", [700016])
        assertion = form.get("client_assertion")
        if assertion is not None:
            key = self.client_certs.get(client_id)
            try:
                if key is None:
                    raise TypeError(f"no certificate for {client_id}")
                jwt.decode(assertion, key, algorithms=["RS256", "PS256"],
                           audience=f"{self.url}/{tenant}/oauth2/v2.0/token")
            except (jwt.PyJWTError, TypeError):
                raise OAuth2Refusal(401, "invalid_client", "AADSTS700027: Client assertion "
                                    "failed signature validation.", [700027]) from None
        elif self.clients[client_id] != form.get("client_secret"):
            raise OAuth2Refusal(401, "invalid_client", "AADSTS7000215: Invalid client secret "
                                "provided.\nTrace ID: 2\nTimestamp: now", [7000215])
        if form.get("scope") != MICROSOFT_SCOPE:
            raise OAuth2Refusal(400, "invalid_scope", "AADSTS1002012: bad scope", [1002012])
        return self._issue(f"app:{client_id}")

    def _jwt_bearer(self, form: dict[str, str]) -> dict[str, Any]:
        assertion = form.get("assertion", "")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            key, domains = self.service_accounts[unverified["iss"]]
            # google-auth names Google's endpoint as the audience wherever it posts the JWT.
            claims = jwt.decode(assertion, key, algorithms=["RS256"], leeway=30,
                                audience="https://oauth2.googleapis.com/token")
        except (jwt.PyJWTError, KeyError):
            raise OAuth2Refusal(400, "invalid_grant", "Invalid JWT Signature.") from None
        subject = str(claims.get("sub", ""))
        if subject.rpartition("@")[2] not in domains or claims.get("scope") != GOOGLE_SCOPE:
            raise OAuth2Refusal(401, "unauthorized_client", "Client is unauthorized to retrieve "
                                "access tokens using this method, or client not authorized for "
                                "any of the scopes requested.")
        return self._issue(subject)

    def device_authorization(self, form: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            if form.get("client_id") not in self.clients:
                raise OAuth2Refusal(400, "invalid_client", "unknown client")
            code = secrets.token_urlsafe(16)
            self.devices[code] = Device(user_code=secrets.token_hex(4).upper(),
                                        client_id=form["client_id"])
            if self.auto_approve is not None:
                self.devices[code].approved_for, self.devices[code].approve_after_polls = (
                    self.auto_approve)
            return {"device_code": code, "user_code": self.devices[code].user_code,
                    "verification_uri": f"{self.url}/device-login", "expires_in": 600,
                    "interval": 1}

    def approve_devices(self, user: str, *, after_polls: int = 0) -> None:
        """The person opens the URL and enters the code, once the client has polled so often."""
        with self.lock:
            for device in self.devices.values():
                device.approve_after_polls = after_polls
                device.approved_for = user

    def _device_code(self, form: dict[str, str], basic: tuple[str, str] | None
                     ) -> dict[str, Any]:
        client_id = self._client(form, basic)
        device = self.devices.get(form.get("device_code", ""))
        if device is None or device.client_id != client_id:
            raise OAuth2Refusal(400, "invalid_grant", "unknown device code")
        device.polls += 1
        if self.slow_down and device.polls == 1:
            raise OAuth2Refusal(400, "slow_down", "polling too fast")
        ready = (device.approved_for is not None
                 and device.polls > (device.approve_after_polls or 0))
        if not ready:
            raise OAuth2Refusal(400, "authorization_pending", "the user has not yet finished")
        assert device.approved_for is not None
        del self.devices[form["device_code"]]
        answer = self._issue(device.approved_for)
        refresh = "rt-" + secrets.token_urlsafe(24)
        self.refresh_tokens[refresh] = (client_id, device.approved_for)
        answer["refresh_token"] = refresh
        return answer

    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        with self.lock:
            if tenant not in self.tenants:
                raise OAuth2Refusal(400, "invalid_tenant", f"AADSTS90002: Tenant '{tenant}' "
                                    "not found.", [90002])
        base = f"{self.url}/{tenant}"
        return {"issuer": f"{base}/v2.0", "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode"}


def _handler(authority: TokenAuthority, *, tls: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

        def _basic(self) -> tuple[str, str] | None:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return None
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return user, password

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            try:
                if tls and path.endswith("/v2.0/.well-known/openid-configuration"):
                    self._answer(200, authority.openid_configuration(path.split("/")[1]))
                else:
                    self._answer(404, {"error": "not_found"})
            except OAuth2Refusal as r:
                self._answer(r.status, {"error": r.error, "error_description": r.description})

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            form = self._form()
            try:
                if not tls and path == "/introspect":
                    self._answer(200, authority.introspect(form.get("token", "")))
                elif tls and (path == "/token" or path.endswith("/oauth2/v2.0/token")):
                    self._answer(200, authority.token_request(path, form, self._basic()))
                elif tls and path == "/device":
                    self._answer(200, authority.device_authorization(form))
                else:
                    self._answer(404, {"error": "not_found"})
            except OAuth2Refusal as r:
                body: dict[str, Any] = {"error": r.error, "error_description": r.description}
                if r.codes:
                    body["error_codes"] = r.codes
                self._answer(r.status, body)

    return Handler


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def token_authority(smtp_tls_cert: TlsCert) -> Iterator[TokenAuthority]:
    authority = TokenAuthority(smtp_tls_cert)
    try:
        yield authority
    finally:
        authority.stop()


@pytest.fixture
def oauth2_provider(token_authority: TokenAuthority) -> TokenAuthority:
    """The session's authority with nothing registered."""
    token_authority.reset()
    return token_authority


@pytest.fixture(scope="session")
def oauth2_dovecot(token_authority: TokenAuthority) -> Iterator[DovecotServer]:
    """A Dovecot that accepts OAuth2 tokens only when the authority says they are live."""
    if dovecot_binary() is None or doveadm_binary() is None:
        server_missing("dovecot is not installed (apt install dovecot-imapd dovecot-lmtpd)")
    server = DovecotServer(tls=False, oauth2_introspection_url=token_authority.introspection_url)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def oauth2_account(oauth2_dovecot: DovecotServer) -> ImapAccount:
    return oauth2_dovecot.add_user()
