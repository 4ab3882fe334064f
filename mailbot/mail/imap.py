"""The mailbox edge: the security@ folders over IMAP, read-only except when asked to flag.

Blocking (imapclient); the daemon calls it from a worker thread. Reads use EXAMINE and
``BODY.PEEK[]``, so mailbot never marks a message as read. Every library, socket or TLS error
leaves this module as ``MailboxUnavailable`` and closes the session; the caller connects again
(``reconnect()`` does so with backoff).
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

import tenacity
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from mailbot.config import MailboxSettings
from mailbot.errors import MailboxLoginRefused, MailboxUnavailable, TokenUnavailable
from mailbot.mail.credentials import Credentials, Login, PasswordCredentials
from mailbot.mail.imap_wire import (
    announces_new_mail,
    as_utc,
    quiet_imaplib,
    readable,
    reason_of,
    stopped,
    temporary_refusal,
    wait,
)
from mailbot.mail.mailbox import FolderState, Mailbox
from mailbot.mail.message import FetchedMessage

__all__ = ["FolderState", "ImapMailbox", "Mailbox"]

log = logging.getLogger("mailbot.imap")

# RFC 2177 lets a server drop an IDLE client after 30 minutes; renew well before that, since NATs
# and proxies often forget a silent connection sooner.
IDLE_RENEW_SECONDS = 10 * 60
# The longest a blocking wait goes without looking at the stop event.
STOP_CHECK_SECONDS = 0.5
# Without IDLE, how often a NOOP asks the server for news while waiting.
NOOP_EVERY_SECONDS = 5.0
# While mail is coming in (``linger``), how often a NOOP asks for more: a server may announce news
# in IDLE late (Dovecot gathers changes for 500 ms); a NOOP makes it look at once.
LINGER_NOOP_SECONDS = 0.05
# A batch is also cut by size, so a run of large messages is never held in memory at once.
MAX_BATCH_BYTES = 16 * 1024 * 1024

_FAILURES = (imaplib.IMAP4.error, OSError, EOFError)
_BODY = b"BODY[]"


class ImapMailbox:
    """One IMAP session to the mailbox in ``settings``. Not thread-safe: one caller at a time."""

    def __init__(
        self,
        settings: MailboxSettings,
        *,
        credentials: Credentials | None = None,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self.settings = settings
        if credentials is None:
            if settings.auth != "password":
                raise ValueError("mailbox.auth is oauth2: pass the OAuth2 credentials")
            credentials = PasswordCredentials(settings.username, settings.password)
        self.credentials = credentials
        self._secrets: set[str] = {settings.password} if settings.password else set()
        self._login: Login | None = None  # what the open session logged in with
        self.max_batch_bytes = max_batch_bytes
        self._client: Any = None  # IMAPClient; imapclient has no type hints
        self._idle_supported = False
        self._missing_logged: set[str] = set()
        # (uidvalidity, highest UID handed out) per folder, so that wait_for_news can tell at once
        # that mail arrived between the last fetch and the start of IDLE.
        self._handed_out: dict[str, tuple[int, int]] = {}
        self._selected: tuple[str, bool, FolderState] | None = None  # folder, read-only, state

    # -- session ---------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def tls_version(self) -> str | None:
        """``"TLSv1.3"`` and the like while the session is encrypted, else None."""
        if self._client is None:
            return None
        sock = self._client.socket()
        return sock.version() if isinstance(sock, ssl.SSLSocket) else None

    def connect(self) -> None:
        """Open a new session (TLS, STARTTLS or plain as configured) and log in."""
        self.close()
        s = self.settings
        with self._translated("connect"):
            client = IMAPClient(
                s.host,
                port=s.port,
                ssl=s.security == "tls",
                ssl_context=self._ssl_context() if s.security == "tls" else None,
                timeout=s.timeout_seconds,
            )
            self._client = client
            client.normalise_times = False  # aware INTERNALDATEs, whatever the host's TZ
            quiet_imaplib(client)
            if s.security == "starttls":
                client.starttls(self._ssl_context())
            mechanism = self._log_in_or_refuse(client)
            self._idle_supported = bool(client.has_capability("IDLE"))
        log.info(
            "connected to %s (%s) as %s%s; IDLE %s",
            self.where,
            self.tls_version or "plain text",
            s.username,
            "" if mechanism == "LOGIN" else f" ({mechanism})",
            "in use" if self._idle_supported and s.idle else "not used",
        )

    # -- logging in: LOGIN with a password, or AUTHENTICATE with an OAuth2 token -------------

    def _log_in_or_refuse(self, client: Any) -> str:
        """``_log_in``; a refusal is MailboxLoginRefused (a person must fix the config named in
        it), not weather. A link that broke during LOGIN, or a server that says "later"
        (RFC 5530 UNAVAILABLE and the like), stays an ordinary failure."""
        try:
            return self._log_in(client)
        except LoginError as exc:
            if isinstance(exc.__context__, imaplib.IMAP4.abort) or temporary_refusal(exc):
                raise
            self._drop()
            reason = reason_of(exc).removeprefix("login failed: ").rstrip(". ")
            reason = reason.removeprefix("authenticate failed: ")
            for secret in self._secrets:
                reason = reason.replace(secret, "***")
            s = self.settings
            if s.auth == "oauth2":  # the reason ends with the credentials' hint already
                key = self.credentials.refusal_hint
                text = f"IMAP login refused by {self.where} for {s.username}: {reason}"
            else:
                key = f"mailbox.username / {s.password_key}"
                text = f"IMAP login refused by {self.where} for {s.username}: {reason}; fix {key}"
            raise MailboxLoginRefused(text, key=key) from exc

    def _log_in(self, client: Any) -> str:
        """Log in as the credentials say; a refused token is replaced once and tried again.

        Returns the mechanism used. A refusal after that (or of a password) leaves as a
        LoginError, which ``_log_in_or_refuse`` turns into MailboxLoginRefused.
        """
        login = self._next_login()
        try:
            self._authenticate(client, login)
        except LoginError:
            if not self.credentials.rejected(login):
                raise
            log.info("IMAP server %s refused the access token for %s; trying a new one",
                     self.where, login.username)
            login = self._next_login()
            try:
                self._authenticate(client, login)
            except LoginError as exc:  # a fresh token refused too: it is the permission
                raise LoginError(f"{exc}; {self.credentials.refusal_hint}") from exc
        self._login = login
        return login.sasl_name

    def login_current(self) -> bool:
        """False when the session's token is due for renewal (servers end such sessions)."""
        login = self._login
        return self._client is None or login is None or self.credentials.current(login)

    def _next_login(self) -> Login:
        try:
            login = self.credentials.login()
        except TokenUnavailable as exc:
            self._drop()
            text = f"IMAP login at {self.where} as {self.settings.username}: {exc}"
            if exc.code:  # the provider refused: its answer names what to fix
                raise MailboxLoginRefused(text, key=exc.key) from exc
            raise MailboxUnavailable(text) from exc
        self._secrets = {x for x in (self.settings.password, login.secret) if x}
        return login

    def _authenticate(self, client: Any, login: Login) -> None:
        imap = client._imap
        saved, imap.debug = imap.debug, 0  # imaplib's protocol trace must not see the secret
        try:
            if login.mechanism == "password":
                client.login(login.username, login.secret)
            elif login.mechanism == "xoauth2":
                client.oauth2_login(login.username, login.secret)
            else:
                client.oauthbearer_login(login.username, login.secret)
        finally:
            imap.debug = saved

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.settings.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def close(self) -> None:
        """Log out, or at least drop the socket; never raises."""
        client, self._client = self._client, None
        self._selected = None
        if client is None:
            return
        try:
            client.logout()
        except Exception:
            with contextlib.suppress(Exception):
                client.shutdown()

    def _drop(self) -> None:
        """Close the socket without a LOGOUT, which could wait out the timeout on a dead link."""
        client, self._client = self._client, None
        self._selected = None
        if client is not None:
            with contextlib.suppress(Exception):
                client.shutdown()

    def reconnect(self, stop: threading.Event | None = None, attempts: int | None = None) -> None:
        """``connect()`` until it works, waiting 1 s, 2 s, 4 s ... up to 60 s between tries.

        Gives up with the last MailboxUnavailable after ``attempts`` tries or once ``stop`` is set,
        and at once on a refused login (MailboxLoginRefused): retrying that every minute is how
        accounts get locked; the daemon retries it on its own slow schedule.
        """

        def should_stop(state: tenacity.RetryCallState) -> bool:
            if stop is not None and stop.is_set():
                return True
            return attempts is not None and state.attempt_number >= attempts

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning("reconnect to %s in %.0f s after: %s", self.where, wait, error)

        retrying = tenacity.Retrying(
            retry=(tenacity.retry_if_exception_type(MailboxUnavailable)
                   & tenacity.retry_if_not_exception_type(MailboxLoginRefused)),
            wait=tenacity.wait_exponential(multiplier=1, min=1, max=60),
            stop=should_stop,
            sleep=lambda seconds: wait(stop, seconds),
            before_sleep=before_sleep,
            reraise=True,
        )
        retrying(self.connect)

    def __enter__(self) -> ImapMailbox:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------------

    def folder_state(self, folder: str) -> FolderState | None:
        state = self._select(folder)
        if state is not None:
            log.debug(
                "folder %s: uidvalidity=%d uidnext=%d exists=%d",
                folder,
                state.uidvalidity,
                state.uidnext,
                state.exists,
            )
        return state

    def arrival_dates(self, folder: str, after_uid: int) -> dict[int, datetime]:
        if self._select(folder) is None:
            return {}
        uids, found = self._uids_after(folder, after_uid), {}
        for start in range(0, len(uids), 1000):
            with self._translated(f"UID FETCH INTERNALDATE in {folder}"):
                response = self._require().fetch(uids[start : start + 1000], ["INTERNALDATE"])
            found.update({uid: as_utc(data[b"INTERNALDATE"]) for uid, data in response.items()
                          if isinstance(data.get(b"INTERNALDATE"), datetime)})
        return found

    def search_uids(self, folder: str) -> list[int]:
        if self._select(folder) is None:
            return []
        with self._translated(f"UID SEARCH in {folder}"):
            return sorted(int(uid) for uid in self._require().search(["ALL"]))

    def fetch_new(
        self, folder: str, after_uid: int, batch_size: int
    ) -> Iterator[list[FetchedMessage]]:
        """Yield the messages above ``after_uid`` in ascending UID order, batch by batch."""
        state = self._select(folder)
        if state is None:
            return
        self._handed_out[folder] = (state.uidvalidity, after_uid)
        if state.uidnext and state.uidnext <= after_uid + 1:
            return  # nothing can be newer; saves the SEARCH
        uids = self._uids_after(folder, after_uid)
        for batch in self._batches(folder, uids, batch_size):
            messages = self._fetch(folder, state.uidvalidity, batch)
            if messages:
                self._handed_out[folder] = (state.uidvalidity, messages[-1].uid)
                log.info(
                    "fetched %d message(s) from %s, uids %d..%d",
                    len(messages),
                    folder,
                    messages[0].uid,
                    messages[-1].uid,
                )
                yield messages

    def fetch_uids(self, folder: str, uids: Sequence[int]) -> list[FetchedMessage]:
        state = self._select(folder)
        if state is None or not uids:
            return []
        out: list[FetchedMessage] = []
        for batch in self._batches(folder, sorted(set(uids)), self.settings.batch_size):
            out.extend(self._fetch(folder, state.uidvalidity, batch))
        return out

    def add_flags(self, folder: str, uids: Sequence[int], flags: Sequence[str]) -> None:
        """Set flags or keywords (``\\Flagged``, ``$MailbotCase``) on messages; the only write."""
        if not uids or not flags:
            return  # imapclient sends a malformed command for an empty list
        if self._select(folder, readonly=False) is None:
            return
        with self._translated(f"UID STORE in {folder}"):
            self._require().add_flags(list(uids), list(flags), silent=True)

    def _uids_after(self, folder: str, after_uid: int) -> list[int]:
        # "n:*" also matches the highest UID when that is below n, so filter.
        with self._translated(f"UID SEARCH in {folder}"):
            found = self._require().search(["UID", f"{after_uid + 1}:*"])
        return sorted(int(uid) for uid in found if int(uid) > after_uid)

    def _batches(self, folder: str, uids: list[int], batch_size: int) -> Iterator[list[int]]:
        """Cut by count, then by RFC822.SIZE so that one batch stays within max_batch_bytes."""
        for start in range(0, len(uids), max(1, batch_size)):
            chunk = uids[start : start + max(1, batch_size)]
            with self._translated(f"UID FETCH RFC822.SIZE in {folder}"):
                sizes = self._require().fetch(chunk, ["RFC822.SIZE"])
            batch: list[int] = []
            total = 0
            for uid in chunk:
                size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
                if batch and total + size > self.max_batch_bytes:
                    yield batch
                    batch, total = [], 0
                batch.append(uid)
                total += size
            if batch:
                yield batch

    def _fetch(self, folder: str, uidvalidity: int, uids: list[int]) -> list[FetchedMessage]:
        with self._translated(f"UID FETCH in {folder}"):
            response = self._require().fetch(uids, ["BODY.PEEK[]", "INTERNALDATE"])
        out = []
        for uid in uids:
            data = response.get(uid)
            raw = data.get(_BODY) if data is not None else None
            if not isinstance(raw, bytes):
                log.info("uid %d in %s vanished before it could be fetched", uid, folder)
                continue
            arrived = data.get(b"INTERNALDATE")
            if not isinstance(arrived, datetime):
                problem = imaplib.IMAP4.error(f"uid {uid} came without INTERNALDATE")
                self._fail(f"UID FETCH in {folder}", problem)
            out.append(
                FetchedMessage(
                    raw=raw,
                    folder=folder,
                    uidvalidity=uidvalidity,
                    uid=uid,
                    internal_date=as_utc(arrived),
                )
            )
        return out

    # -- waiting ---------------------------------------------------------------------------------

    def wait_for_news(
        self, folder: str, timeout: float, stop: threading.Event | None = None,
        *, linger: float = 0.0,
    ) -> bool:
        """Wait until mail may have arrived in ``folder``.

        With IDLE: True as soon as the server announces a new message, and at once when mail came
        in since this session's previous wait or since ``fetch_new`` last handed out messages
        (IDLE itself only reports what happens while it runs); False after ``timeout`` or once
        ``stop`` is set. Without IDLE (or with ``idle = false``): NOOP now and then, True after
        ``timeout`` (time to look), False when stopped.

        ``linger``: for this many seconds first, ask with a NOOP every ``LINGER_NOOP_SECONDS``
        instead of waiting in IDLE (the caller passes it while mail is coming in).
        """
        deadline = time.monotonic() + timeout
        state = self._still_selected(folder)
        if state is None:
            state = self._select(folder)
            if state is None:
                wait(stop, timeout)
                return False
        elif self._news_pending(folder):
            return True
        if self._arrived_since_fetch(folder, state):
            return True
        if self._idle_supported and self.settings.idle:
            if linger > 0 and self._linger(folder, min(deadline, time.monotonic() + linger),
                                           stop):
                return True
            return self._idle_until(folder, deadline, stop)
        return self._poll_until(folder, deadline, stop)

    def _still_selected(self, folder: str) -> FolderState | None:
        """The folder's state if this session has it open read-only already.

        Staying in the folder matters: a new SELECT counts mail that arrived since the last IDLE
        into its EXISTS answer, and IDLE would then never announce it.
        """
        if self._selected is None:
            return None
        name, readonly, state = self._selected
        return state if name == folder and readonly else None

    def _news_pending(self, folder: str) -> bool:
        """NOOP: the server tells an open session what changed since its last command."""
        with self._translated(f"NOOP on {folder}"):
            _, responses = self._require().noop()
        pending = self._take_exists()
        return pending or announces_new_mail(responses)

    def _arrived_since_fetch(self, folder: str, state: FolderState) -> bool:
        handed_out = self._handed_out.get(folder)
        if handed_out is None or handed_out[0] != state.uidvalidity:
            return False
        found = bool(self._uids_after(folder, handed_out[1]))
        return self._take_exists() or found

    def _idle_until(self, folder: str, deadline: float, stop: threading.Event | None) -> bool:
        client = self._require()
        while not stopped(stop) and time.monotonic() < deadline:
            renew_at = min(deadline, time.monotonic() + IDLE_RENEW_SECONDS)
            log.debug("idle on %s", folder)
            with self._translated(f"IDLE on {folder}"):
                client.idle()
                self._wait_in_idle(client, renew_at, stop)
                # Whatever the server said is read by DONE's blocking reader, which copes with a
                # line split across packets; idle_check() does not (it raises on half a line).
                _, responses = client.idle_done()
            pending = self._take_exists()
            if pending or announces_new_mail(responses):
                log.debug("idle on %s: new mail announced", folder)
                return True
        return False

    def _linger(self, folder: str, until: float, stop: threading.Event | None) -> bool:
        """NOOP every LINGER_NOOP_SECONDS until ``until``: True as soon as one finds news."""
        while not stopped(stop) and time.monotonic() < until:
            wait(stop, LINGER_NOOP_SECONDS)
            if not stopped(stop) and self._news_pending(folder):
                log.debug("news on %s found by NOOP", folder)
                return True
        return False

    def _wait_in_idle(self, client: Any, until: float, stop: threading.Event | None) -> None:
        """Return once the server sends something, at ``until``, or soon after ``stop``."""
        sock = client.socket()
        if self._has_buffered_input(client):
            return
        while not stopped(stop):
            left = until - time.monotonic()
            if left <= 0 or readable(sock, min(STOP_CHECK_SECONDS, left)):
                return

    def _has_buffered_input(self, client: Any) -> bool:
        """Whether bytes already sit in imaplib's reader (poll() on the socket cannot see them)."""
        reader = getattr(getattr(client, "_imap", None), "file", None)
        if reader is None:
            return False
        sock = client.socket()
        sock.setblocking(False)
        try:
            return bool(reader.peek(1))
        except (BlockingIOError, ssl.SSLWantReadError):
            return False
        finally:
            sock.settimeout(self.settings.timeout_seconds)

    def _poll_until(self, folder: str, deadline: float, stop: threading.Event | None) -> bool:
        while True:
            left = deadline - time.monotonic()
            if left > 0:
                wait(stop, min(NOOP_EVERY_SECONDS, left))
            if stopped(stop):
                return False
            if self._news_pending(folder) or time.monotonic() >= deadline:
                return True
                return True

    def _farewell(self) -> str:
        """The text of a BYE the server sent before hanging up, if imaplib kept one."""
        responses = getattr(getattr(self._client, "_imap", None), "untagged_responses", None)
        byes = responses.get("BYE") if isinstance(responses, dict) else None
        if not byes:
            return ""
        last = byes[-1]
        return last.decode("utf-8", "replace") if isinstance(last, bytes) else str(last)

    def _take_exists(self) -> bool:
        """Whether an EXISTS came with an earlier command's answer (imaplib keeps it aside)."""
        pending = getattr(self._require(), "_imap", None)
        responses = getattr(pending, "untagged_responses", None)
        return isinstance(responses, dict) and bool(responses.pop("EXISTS", None))

    # -- plumbing --------------------------------------------------------------------------------

    def _require(self) -> Any:
        if self._client is None:
            raise MailboxUnavailable(f"not connected to IMAP server {self.where}")
        return self._client

    def _select(self, folder: str, *, readonly: bool = True) -> FolderState | None:
        """SELECT/EXAMINE ``folder`` afresh (so UIDVALIDITY is current); None if it is missing."""
        client = self._require()
        self._selected = None
        try:
            response = client.select_folder(folder, readonly=readonly)
        except imaplib.IMAP4.abort as exc:
            self._fail(f"SELECT {folder}", exc)
        except imaplib.IMAP4.error as exc:
            with self._translated(f"LIST {folder}"):
                exists = client.folder_exists(folder)
            if exists:
                self._fail(f"SELECT {folder}", exc)
            if folder not in self._missing_logged:
                self._missing_logged.add(folder)
                log.warning("folder %r does not exist on %s; skipping it", folder, self.where)
            return None
        except _FAILURES as exc:
            self._fail(f"SELECT {folder}", exc)
        self._missing_logged.discard(folder)
        self._take_exists()  # the count is in the answer; later EXISTS responses mean news
        with self._translated(f"SELECT {folder}"):
            uidnext = response.get(b"UIDNEXT")
            if uidnext is None:  # optional in a SELECT answer before IMAP4rev2
                uidnext = client.folder_status(folder, ["UIDNEXT"])[b"UIDNEXT"]
            state = FolderState(
                uidvalidity=int(response[b"UIDVALIDITY"]),
                uidnext=int(uidnext),
                exists=int(response[b"EXISTS"]),
            )
        self._selected = (folder, readonly, state)
        return state

    @contextlib.contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            yield
        except _FAILURES as exc:
            self._fail(action, exc)

    def _fail(self, action: str, exc: BaseException) -> NoReturn:
        """Close the session and raise MailboxUnavailable naming what failed and why."""
        reason = reason_of(exc)
        farewell = self._farewell()
        if farewell and farewell not in reason:
            reason += f" (the server said BYE: {farewell})"
        self._drop()
        for secret in self._secrets:  # no server should echo one; no log line may ever show it
            reason = reason.replace(secret, "***")
        message = f"IMAP {action} at {self.where} as {self.settings.username} failed: {reason}"
        raise MailboxUnavailable(message) from exc


if TYPE_CHECKING:
    _conforms: type[Mailbox] = ImapMailbox  # mypy proves the class meets the protocol
