"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1 that keeps what it receives.

Fixtures:

- ``smtp_sink`` (function): a plain sink (no TLS, no AUTH) on a free port.
- ``smtp_sink_factory`` (function): ``smtp_sink_factory(security="starttls", users={"u": "p"})``
  for STARTTLS or implicit TLS (``"tls"``) with a self-signed certificate, and AUTH;
  ``token_check=f`` adds AUTH XOAUTH2 and OAUTHBEARER, accepting a token when ``f(user, token)``.
- ``smtp_tls_cert`` (session): that certificate, made once with openssl.

Faults are switched on and off while the sink runs, from the test's thread::

    sink.fail(451, at="rcpt", count=2)          # the next 2 messages get 451 at RCPT
    sink.fail(550, at="rcpt", recipients={"nouser@example.test"})   # a partial refusal
    sink.hang(at="data")                        # never answer the end of DATA
    sink.drop(at="mail")                        # close the connection instead of answering
    sink.reset()                                # all faults off, hung sessions released
    sink.stop(); sink.start()                   # SMTP down, then back on the same port
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import email
import email.policy
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from mailbot.config import SmtpSettings
from tests.servers import free_port, server_missing

HOST = "127.0.0.1"
SINK_HOSTNAME = "sink.example.test"
DEFAULT_FROM = "Example Security <security@example.test>"
HANG_POLL_SECONDS = 0.02

Stage = Literal["mail", "rcpt", "data"]
Security = Literal["none", "starttls", "tls"]


@dataclasses.dataclass(frozen=True)
class TlsCert:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx


def make_self_signed_cert(directory: Path) -> TlsCert:
    """A 2-day self-signed certificate for localhost / 127.0.0.1, made by ``openssl req``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        server_missing("openssl is not installed: cannot make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return TlsCert(cert=cert, key=key)


@dataclasses.dataclass(frozen=True)
class ReceivedMail:
    """One message as the sink accepted it."""

    mail_from: str  # "<>" for the null reverse path
    rcpt_tos: tuple[str, ...]
    data: bytes
    message: EmailMessage
    connection: int  # which connection (1, 2, ...) it arrived on
    login: str | None  # the AUTH user, if the client logged in
    tls: bool  # whether the connection was encrypted when the message arrived


@dataclasses.dataclass
class _Fault:
    action: Literal["reply", "hang", "drop"]
    reply: str  # for "reply": the full reply line, such as "451 4.3.0 try later"
    remaining: int | None  # messages still to hit; None: until reset()
    recipients: frozenset[str] | None  # rcpt stage only: just these addresses (lower-case)
    hit_envelopes: list[object] = dataclasses.field(default_factory=list)


_DEFAULT_TEXT = {
    421: "4.3.2 service shutting down",
    450: "4.2.0 mailbox unavailable",
    451: "4.3.0 local error, try again later",
    452: "4.3.1 insufficient system storage",
    550: "5.1.1 mailbox unavailable",
    552: "5.3.4 message too big",
    553: "5.1.3 mailbox name not allowed",
    554: "5.7.1 transaction failed",
}


class _Handler:
    """aiosmtpd hooks. They run on the controller's loop thread; state lives in the SmtpSink."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self._sink._saw_connection(server)
        return responses

    async def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        session.host_name = hostname
        self._sink._saw_connection(server)
        return f"250 {SINK_HOSTNAME}"

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        refusal = await self._sink._apply_fault("mail", server, envelope, address)
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        refusal = await self._sink._apply_fault("rcpt", server, envelope, address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        refusal = await self._sink._apply_fault("data", server, envelope, None)
        if refusal:
            return refusal
        self._sink._keep(server, session, envelope)
        return "250 2.0.0 OK: queued"


TokenCheck = Callable[[str, str], bool]
_OAUTH_ERROR = base64.b64encode(b'{"status":"401","schemes":"bearer"}').decode()


class _OAuthHandler(_Handler):
    """Also AUTH XOAUTH2 / OAUTHBEARER; aiosmtpd offers every ``auth_*`` method of a handler."""

    def __init__(self, sink: SmtpSink, check: TokenCheck) -> None:
        super().__init__(sink)
        self._check = check

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "xoauth2")

    async def auth_OAUTHBEARER(self, server: Any, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "oauthbearer")

    async def _bearer(self, server: Any, args: list[str], mechanism: str) -> AuthResult:
        if len(args) < 2:
            return AuthResult(success=False, handled=False)
        try:
            text = base64.b64decode(args[1], validate=True).decode("utf-8")
        except ValueError:
            return AuthResult(success=False, handled=False)
        user, token = _parse_bearer(text, mechanism)
        if user and token and self._check(user, token):
            return AuthResult(success=True, auth_data=user)
        with self._sink._lock:
            self._sink._token_refusals += 1
        await server.challenge_auth(_OAUTH_ERROR, encode_to_b64=False)  # the client answers
        return AuthResult(success=False, handled=False)


def _parse_bearer(text: str, mechanism: str) -> tuple[str, str]:
    fields = text.split("\x01")
    user = token = ""
    if mechanism == "oauthbearer" and fields:
        gs2 = fields[0].split(",")
        if len(gs2) > 1 and gs2[1].startswith("a="):
            user = gs2[1][2:].replace("=2C", ",").replace("=3D", "=")
        fields = fields[1:]
    for f in fields:
        if f.startswith("user="):
            user = f[5:]
        elif f.startswith("auth=Bearer "):
            token = f[len("auth=Bearer "):]
    return user, token


class SmtpSink:
    """An SMTP server on 127.0.0.1 that records every message and can be told to misbehave."""

    def __init__(
        self,
        *,
        security: Security = "none",
        users: Mapping[str, str] | None = None,
        cert: TlsCert | None = None,
        port: int | None = None,
        token_check: TokenCheck | None = None,
    ) -> None:
        if security != "none" and cert is None:
            raise ValueError(f"security={security!r} needs a certificate")
        self.host = HOST
        self.port = port or free_port()
        self.security: Security = security
        self.users = dict(users or {})
        self.token_check = token_check
        self._token_refusals = 0
        self._cert = cert
        self._lock = threading.Condition()
        self._received: list[ReceivedMail] = []
        self._connections: list[object] = []  # the aiosmtpd SMTP objects, in order of arrival
        self._faults: dict[str, _Fault] = {}
        self._generation = 0  # bumped by reset()/stop() to release hung sessions
        self._controller: Controller | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Listen (again) on the same port."""
        if self._controller is not None:
            return
        handler = (_Handler(self) if self.token_check is None
                   else _OAuthHandler(self, self.token_check))
        controller = Controller(
            handler,
            hostname=HOST,
            port=self.port,
            server_hostname=SINK_HOSTNAME,
            **self._smtp_options(),
        )
        deadline = time.monotonic() + 5
        while True:
            try:
                controller.start()
                break
            except OSError:
                # The previous listener's socket may take a moment to be released.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._controller = controller

    def stop(self) -> None:
        """Go down: stop listening and cut every open connection (clients see a disconnect)."""
        controller = self._controller
        if controller is None:
            return
        with self._lock:
            self._generation += 1
            servers = list(self._connections)
        for server in servers:
            transport = getattr(server, "transport", None)
            if transport is not None:
                controller.loop.call_soon_threadsafe(transport.close)
        controller.stop()
        self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def _smtp_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.security == "starttls":
            assert self._cert is not None
            options.update(tls_context=self._cert.server_context(), require_starttls=True)
        elif self.security == "tls":
            assert self._cert is not None
            options.update(ssl_context=self._cert.server_context())
        if self.users or self.token_check is not None:
            # aiosmtpd cannot tell that an implicit-TLS connection is encrypted, so there (and on
            # a plain sink) AUTH must be offered without TLS; aiosmtpd then warns about requiring
            # it, so it is only required together with STARTTLS. Every message records its login.
            starttls = self.security == "starttls"
            options.update(
                authenticator=self._authenticate,
                auth_required=starttls,
                auth_require_tls=starttls,
            )
        return options

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)  # handled=False: aiosmtpd answers 535
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = login in self.users and self.users[login] == password
        if not ok:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=login)

    # -- faults -----------------------------------------------------------------------------

    def fail(
        self,
        code: int,
        *,
        at: Stage = "rcpt",
        count: int | None = None,
        recipients: Collection[str] | None = None,
        text: str | None = None,
    ) -> None:
        """Answer ``code`` at ``at`` for the next ``count`` messages (None: until ``reset()``).

        ``recipients`` (rcpt only) limits the refusal to those addresses: a partial refusal.
        """
        reply = f"{code} {text or _DEFAULT_TEXT.get(code, 'refused by the test sink')}"
        self._set_fault(at, _Fault("reply", reply, count, _lowered(recipients)))

    def hang(self, *, at: Stage = "data", count: int | None = None) -> None:
        """Never answer at ``at`` (until ``reset()`` or ``stop()``): the client must time out."""
        self._set_fault(at, _Fault("hang", "", count, None))

    def drop(self, *, at: Stage = "data", count: int | None = None) -> None:
        """Close the connection at ``at`` without answering."""
        self._set_fault(at, _Fault("drop", "", count, None))

    def reset(self) -> None:
        """All faults off; hung sessions are released (they answer 451)."""
        with self._lock:
            self._faults.clear()
            self._generation += 1

    def _set_fault(self, stage: Stage, fault: _Fault) -> None:
        if stage not in ("mail", "rcpt", "data"):
            raise ValueError(f"unknown stage {stage!r}")
        if fault.recipients is not None and stage != "rcpt":
            raise ValueError("recipients= only applies at the rcpt stage")
        with self._lock:
            self._faults[stage] = fault

    def _take_fault(self, stage: str, envelope: object, address: str | None) -> _Fault | None:
        with self._lock:
            fault = self._faults.get(stage)
            if fault is None:
                return None
            if fault.recipients is not None and (address or "").lower() not in fault.recipients:
                return None
            # Count messages, not commands: several refused RCPTs of one envelope are one hit.
            if not any(e is envelope for e in fault.hit_envelopes):
                fault.hit_envelopes.append(envelope)
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self._faults[stage]
            return fault

    async def _apply_fault(
        self, stage: str, server: Any, envelope: object, address: str | None
    ) -> str | None:
        fault = self._take_fault(stage, envelope, address)
        if fault is None:
            return None
        if fault.action == "reply":
            return fault.reply
        if fault.action == "drop":
            server.transport.close()
            await asyncio.Event().wait()  # cancelled by connection_lost
        with self._lock:
            generation = self._generation
        while True:
            await asyncio.sleep(HANG_POLL_SECONDS)
            with self._lock:
                if self._generation != generation:
                    return "451 4.3.0 released by the test sink"

    # -- what arrived -----------------------------------------------------------------------

    def _saw_connection(self, server: object) -> None:
        with self._lock:
            if not any(s is server for s in self._connections):
                self._connections.append(server)

    def _keep(self, server: Any, session: Any, envelope: Any) -> None:
        data = bytes(envelope.original_content or b"")
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            number = next((i + 1 for i, s in enumerate(self._connections) if s is server), 0)
            self._received.append(
                ReceivedMail(
                    mail_from=envelope.mail_from,
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    data=data,
                    message=message,
                    connection=number,
                    login=session.auth_data if session.authenticated else None,
                    tls=session.ssl is not None or self.security == "tls",
                )
            )
            self._lock.notify_all()

    @property
    def received(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._received)

    @property
    def token_refusals(self) -> int:
        """How many AUTH XOAUTH2 / OAUTHBEARER attempts were refused."""
        with self._lock:
            return self._token_refusals

    @property
    def connections(self) -> int:
        """How many SMTP sessions (that said EHLO or HELO) this sink has seen."""
        with self._lock:
            return len(self._connections)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()
            self._connections.clear()

    def wait_for(self, n: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """All messages once at least ``n`` have arrived; AssertionError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._received) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"SMTP sink: expected {n} message(s) within {timeout}s, "
                        f"got {len(self._received)}"
                    )
                self._lock.wait(left)
            return list(self._received)

    # -- for mailbot -------------------------------------------------------------------------

    def smtp_settings(self, **overrides: Any) -> SmtpSettings:
        """SmtpSettings that reach this sink: its security mode, its first user, a 2 s timeout."""
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "security": self.security,
            "from_address": DEFAULT_FROM,
            "timeout_seconds": 2,
            "verify_tls": False,  # the certificate is self-signed
        }
        if self.users:
            username, password = next(iter(self.users.items()))
            values.update(username=username, password=password)
        values.update(overrides)
        return SmtpSettings(**values)


def _lowered(addresses: Collection[str] | None) -> frozenset[str] | None:
    return None if addresses is None else frozenset(a.lower() for a in addresses)


# ---------------------------------------------------------------------------------------------
# Fixtures

SinkFactory = Callable[..., SmtpSink]


@pytest.fixture(scope="session")
def smtp_tls_cert(tmp_path_factory: pytest.TempPathFactory) -> TlsCert:
    return make_self_signed_cert(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def smtp_sink_factory(request: pytest.FixtureRequest) -> Iterator[SinkFactory]:
    sinks: list[SmtpSink] = []

    def make(
        *,
        security: Security = "none",
        users: Mapping[str, str] | None = None,
        token_check: TokenCheck | None = None,
    ) -> SmtpSink:
        cert = request.getfixturevalue("smtp_tls_cert") if security != "none" else None
        sink = SmtpSink(security=security, users=users, cert=cert, token_check=token_check)
        sinks.append(sink)
        sink.start()
        return sink

    yield make
    for sink in sinks:
        sink.stop()


@pytest.fixture
def smtp_sink(smtp_sink_factory: SinkFactory) -> SmtpSink:
    return smtp_sink_factory()
