"""The SMTP edge: one connection per batch, aiosmtplib's errors translated into mailbot's.

    async with transport.connection() as smtp:      # SmtpTemporaryError if it cannot connect
        for row in batch:
            await smtp.send(envelope_from, recipients, data)

``send`` raises ``SmtpPermanentError`` (5xx: this message will never go) or
``SmtpTemporaryError`` (4xx, timeout, lost connection: try again later). ``code`` is the SMTP reply
code, or None when there was no reply at all; after such a connection-level failure, and after
421, the connection is gone and every further ``send`` on it raises ``SmtpTemporaryError`` at once
without touching the network, so the caller ends the batch and opens a new connection next time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import aiosmtplib

from mailbot.config import SmtpSettings
from mailbot.errors import (
    SmtpLoginRefused,
    SmtpPermanentError,
    SmtpTemporaryError,
    TokenUnavailable,
)
from mailbot.mail.credentials import SASL_ABORT, Credentials, Login, sasl_initial_response

log = logging.getLogger("mailbot.smtp")

_CLOSE_GRACE_SECONDS = 1.0

# aiosmtplib's own errors for a peer that vanished or never answered, plus the OS-level ones.
_CONNECTION_ERRORS = (
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPTimeoutError,
    TimeoutError,
    ConnectionError,
    OSError,
)


class Connection(Protocol):
    """One open session with a mail relay."""

    async def send(self, envelope_from: str, recipients: list[str], data: bytes) -> None:
        """Deliver ``data`` to ``recipients``; ``envelope_from=""`` is the null path ``<>``."""
        ...


class Transport(Protocol):
    """Something that can open a Connection for a batch of messages."""

    def connection(self) -> AbstractAsyncContextManager[Connection]: ...


class SmtpTransport:
    """The Transport that speaks SMTP to the relay in ``[smtp]``."""

    def __init__(self, settings: SmtpSettings, *, credentials: Credentials | None = None) -> None:
        if settings.auth == "oauth2" and credentials is None:
            raise ValueError("smtp.auth is oauth2: pass the OAuth2 credentials")
        self._settings = settings
        self._credentials = credentials

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[SmtpConnection]:
        """Connect, secure and log in; always QUIT or close on the way out."""
        s = self._settings
        token = self._credentials if s.auth == "oauth2" else None
        client = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            timeout=s.timeout_seconds,
            use_tls=s.security == "tls",
            # True insists on STARTTLS (an error when it is not offered); False never tries it.
            start_tls=s.security == "starttls",
            validate_certs=s.verify_tls,
            # With OAuth2, aiosmtplib only connects; _log_in_with_token does the AUTH.
            username=(s.username or None) if token is None else None,
            password=(s.password or None) if s.username and token is None else None,
        )
        await _connect(client, s)
        if token is not None:
            await _log_in_with_token(client, token, f"{s.host}:{s.port}")
        conn = SmtpConnection(client, f"{s.host}:{s.port}")
        try:
            yield conn
        finally:
            await conn.close()


async def _connect(client: aiosmtplib.SMTP, s: SmtpSettings) -> None:
    where = f"{s.host}:{s.port}"
    try:
        await client.connect()
    except aiosmtplib.SMTPAuthenticationError as exc:
        # Not the message's fault: it stays queued until the operator fixes the credentials.
        await _quit_quietly(client)
        if 400 <= exc.code < 500:  # 454 "temporary authentication failure": weather
            raise SmtpTemporaryError(
                f"SMTP login as {s.username!r} at {where} failed for now: "
                f"{exc.code} {exc.message}", code=exc.code) from exc
        raise SmtpLoginRefused(
            f"SMTP login refused by {where} for {s.username}: {exc.code} {exc.message}; "
            f"fix smtp.username or {s.password_key}",
            key=f"smtp.username / {s.password_key}",
            code=exc.code,
        ) from exc
    except aiosmtplib.SMTPResponseException as exc:
        await _quit_quietly(client)
        raise SmtpTemporaryError(
            f"SMTP server {where} refused the session: {exc.code} {exc.message}", code=exc.code
        ) from exc
    except (aiosmtplib.SMTPException, *_CONNECTION_ERRORS) as exc:
        # Also "STARTTLS not supported", "no AUTH mechanism", certificate failures.
        client.close()
        raise SmtpTemporaryError(f"cannot connect to SMTP server {where}: {exc}") from exc
    log.info(
        "connected to %s (security %s%s)",
        where,
        s.security,
        f", as {s.username}" if s.username else "",
    )


# -- logging in with an OAuth2 token: AUTH XOAUTH2 or OAUTHBEARER -----------------------------


async def _log_in_with_token(client: aiosmtplib.SMTP, credentials: Credentials,
                             where: str) -> None:
    """AUTH with the current token; a refused one is replaced once and tried again."""
    for attempt in (1, 2):
        try:
            login = await asyncio.to_thread(credentials.login)  # may ask the provider (HTTP)
        except TokenUnavailable as exc:
            await _quit_quietly(client)
            if exc.code:  # the provider refused: its answer names what to fix
                raise SmtpLoginRefused(f"SMTP login at {where}: {exc}", key=exc.key) from exc
            raise SmtpTemporaryError(f"SMTP login at {where}: {exc}") from exc
        try:
            code, message = await _sasl(client, login)
        except (aiosmtplib.SMTPException, *_CONNECTION_ERRORS) as exc:
            client.close()
            raise SmtpTemporaryError(f"SMTP login at {where} failed: "
                                     f"{_scrubbed(str(exc), login)}") from exc
        if code == 235:
            log.info("logged in to %s as %s (%s)", where, login.username, login.sasl_name)
            return
        if attempt == 1 and credentials.rejected(login):
            log.info("SMTP server %s refused the access token for %s (%d); trying a new one",
                     where, login.username, code)
            continue
        await _quit_quietly(client)
        # Not the message's fault: it stays queued until a token is accepted.
        text = (f"SMTP server {where} refused the access token for {login.username!r} "
                f"({code} {_scrubbed(message, login)}); {credentials.refusal_hint}")
        if 500 <= code < 600:
            raise SmtpLoginRefused(text, key=credentials.refusal_hint, code=code)
        raise SmtpTemporaryError(text, code=code)


async def _sasl(client: aiosmtplib.SMTP, login: Login) -> tuple[int, str]:
    if client.is_ehlo_or_helo_needed:  # connect() only says EHLO itself before STARTTLS
        await client.ehlo()
    if login.sasl_name.lower() not in client.server_auth_methods:
        raise aiosmtplib.SMTPException(f"the server does not offer AUTH {login.sasl_name}")
    response = await client.execute_command(b"AUTH", login.sasl_name.encode(),
                                            sasl_initial_response(login))
    if response.code == 334:  # an error challenge: end the exchange to get the final reply
        response = await client.execute_command(SASL_ABORT[login.mechanism])
    return response.code, response.message


def _scrubbed(text: str, login: Login) -> str:
    return text.replace(login.secret, "***") if login.secret else text


async def _quit_quietly(client: aiosmtplib.SMTP) -> None:
    """QUIT when the session still stands, so the server ends it cleanly; then close."""
    sock = _socket_of(client)
    if client.is_connected:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, *_CONNECTION_ERRORS):
            pass  # the session is over either way
    client.close()
    await _socket_closed(sock)


def _socket_of(client: aiosmtplib.SMTP) -> Any:
    try:
        return client.get_transport_info("socket")
    except aiosmtplib.SMTPException:
        return None


async def _socket_closed(sock: Any) -> None:
    # Closing a TLS transport takes a few more turns of the event loop (close_notify); a caller
    # that ends its loop right away (asyncio.run in `run --once`) would leak the socket.
    deadline = time.monotonic() + _CLOSE_GRACE_SECONDS
    while sock is not None and sock.fileno() != -1 and time.monotonic() < deadline:
        await asyncio.sleep(0.005)


class SmtpConnection:
    """An open SMTP session; ``send`` may be called many times."""

    def __init__(self, client: aiosmtplib.SMTP, where: str) -> None:
        self._client = client
        self._where = where
        self._lost: str | None = None
        self._sock = _socket_of(client)

    @property
    def usable(self) -> bool:
        """False once the connection failed; every later ``send`` raises SmtpTemporaryError."""
        return self._lost is None and self._client.is_connected

    async def send(self, envelope_from: str, recipients: list[str], data: bytes) -> None:
        if not self.usable:
            raise SmtpTemporaryError(
                f"SMTP connection to {self._where} was lost earlier in this batch"
                + (f" ({self._lost})" if self._lost else "")
            )
        if not recipients:
            raise SmtpPermanentError("a message without recipients cannot be sent")
        try:
            await self._transaction(envelope_from, recipients, data)
        except (SmtpTemporaryError, SmtpPermanentError):
            raise
        except ValueError as exc:
            # aiosmtplib refuses (before sending) an address that is not ASCII or could not go
            # safely on a command line; a transaction may already be open.
            await self._reset()
            raise SmtpPermanentError(f"unusable envelope address: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset()
            what = "SMTP server refused the message"
            raise self._reply_error(what, exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, *_CONNECTION_ERRORS) as exc:
            self._mark_lost(str(exc) or type(exc).__name__)
            raise SmtpTemporaryError(
                f"SMTP connection to {self._where} failed: {exc or type(exc).__name__}"
            ) from exc
        log.debug(
            "sent %d bytes to %d recipient(s) via %s", len(data), len(recipients), self._where
        )

    async def _transaction(self, envelope_from: str, recipients: list[str], data: bytes) -> None:
        client = self._client
        options = [f"SIZE={len(data)}"] if client.supports_extension("size") else []
        await client.mail(envelope_from, options=options)
        refused: dict[str, aiosmtplib.SMTPRecipientRefused] = {}
        for rcpt in recipients:
            try:
                await client.rcpt(rcpt)
            except aiosmtplib.SMTPRecipientRefused as exc:
                refused[rcpt] = exc
        if refused:
            # Abort before DATA, even when some recipients were accepted: a retry then resends to
            # everyone once, instead of twice to those who already got it.
            await self._reset()
            worst = max(refused.values(), key=lambda e: (e.code >= 500, e.code))
            listing = ", ".join(f"{r} ({e.code})" for r, e in refused.items())
            raise self._reply_error(
                f"SMTP server refused {len(refused)} of {len(recipients)} recipient(s): {listing}",
                worst.code,
                worst.message,
            )
        await client.data(data)

    async def _reset(self) -> None:
        """End a half-done transaction so the next MAIL FROM is not refused as nested."""
        if self._lost is not None or not self._client.is_connected:
            return
        try:
            await self._client.rset()
        except aiosmtplib.SMTPResponseException as exc:
            self._mark_lost(f"RSET answered {exc.code}")
        except (aiosmtplib.SMTPException, *_CONNECTION_ERRORS) as exc:
            self._mark_lost(f"RSET failed: {exc}")

    def _reply_error(
        self, what: str, code: int, message: str
    ) -> SmtpTemporaryError | SmtpPermanentError:
        if code == 421 or not self._client.is_connected:
            self._mark_lost(f"{code} {message}")
        text = f"{what}: {code} {message}"
        if 500 <= code < 600:
            return SmtpPermanentError(text, code=code)
        return SmtpTemporaryError(text, code=code)

    def _mark_lost(self, reason: str) -> None:
        if self._lost is None:
            log.warning("SMTP connection to %s is lost: %s", self._where, reason)
            self._lost = reason
        self._client.close()

    async def close(self) -> None:
        if self._lost is None:
            await _quit_quietly(self._client)
        sock = self._sock
        self._client.close()
        await _socket_closed(sock)
