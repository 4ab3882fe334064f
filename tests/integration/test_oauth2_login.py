"""OAuth2 logins against real servers: Dovecot checking every token with the test suite's OAuth2
provider (token introspection), and the SMTP sink speaking AUTH XOAUTH2 / OAUTHBEARER.

The tokens come from the refresh-token flow (Authlib) against that same provider, over HTTPS.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import stat
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbot.app import idle_watch
from mailbot.clock import FixedClock
from mailbot.config import MailboxSettings, SmtpSettings
from mailbot.daemon import Daemon
from mailbot.errors import MailboxUnavailable, SmtpTemporaryError
from mailbot.mail.credentials import Login, sasl_initial_response
from mailbot.mail.imap import ImapMailbox
from mailbot.mail.smtp import SmtpTransport
from mailbot.oauth2.files import write_secret
from mailbot.oauth2.refresh import RefreshTokenFlow
from mailbot.oauth2.settings import OAuth2Settings
from mailbot.oauth2.tokens import TokenCache
from mailbot.oauth2.wiring import TokenCredentials, edge_credentials
from tests import factories
from tests.mailflow import Mailflow
from tests.servers.dovecot import ImapAccount
from tests.servers.oauth2 import TokenAuthority
from tests.servers.smtp_sink import SinkFactory, SmtpSink

CLIENT_ID, CLIENT_SECRET = "mailbot-test-client", "client-secret-value-1"


@dataclasses.dataclass
class Setup:
    provider: TokenAuthority
    account: ImapAccount
    oauth2: OAuth2Settings
    refresh_token_file: Path

    def cache(self, **kwargs: object) -> TokenCache:
        return TokenCache(RefreshTokenFlow(self.oauth2), **kwargs)  # type: ignore[arg-type]

    def credentials(self, cache: TokenCache | None = None, mechanism: str = "xoauth2"
                    ) -> TokenCredentials:
        return TokenCredentials(self.account.username, cache or self.cache(),
                                mechanism)  # type: ignore[arg-type]

    def mailbox_settings(self, **overrides: object) -> MailboxSettings:
        return self.account.mailbox_settings(auth="oauth2", oauth2=self.oauth2, password="",
                                             **overrides)

    def smtp_settings(self, sink: SmtpSink) -> SmtpSettings:
        return sink.smtp_settings(auth="oauth2", oauth2=self.oauth2,
                                  username=self.account.username)


@pytest.fixture
def setup(oauth2_provider: TokenAuthority, oauth2_account: ImapAccount,
          tmp_path: Path) -> Setup:
    oauth2_provider.add_client(CLIENT_ID, CLIENT_SECRET)
    refresh = oauth2_provider.add_refresh_token(CLIENT_ID, oauth2_account.username)
    path = tmp_path / "refresh-token"
    write_secret(path, refresh)
    oauth2 = OAuth2Settings(
        provider="refresh_token", token_url=oauth2_provider.token_url, client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET, refresh_token_file=str(path),
        ca_file=str(oauth2_provider.cert.cert),
    )
    return Setup(oauth2_provider, oauth2_account, oauth2, path)


@pytest.fixture
def token_sink(smtp_sink_factory: SinkFactory, oauth2_provider: TokenAuthority) -> SmtpSink:
    return smtp_sink_factory(token_check=oauth2_provider.valid_for)


def _deliver(account: ImapAccount, subject: str) -> None:
    assert account.server is not None
    account.server.deliver(account, factories.message(subject=subject))


# -- a good token -------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
def test_imap_reads_the_mailbox_with_a_token_dovecot_checked(setup: Setup, mechanism: str) -> None:
    _deliver(setup.account, "first report")
    mailbox = ImapMailbox(setup.mailbox_settings(),
                          credentials=setup.credentials(mechanism=mechanism))
    with mailbox:
        [batch] = list(mailbox.fetch_new("INBOX", 0, 10))
    assert b"first report" in batch[0].raw
    assert setup.provider.grants == ["refresh_token"]
    assert setup.provider.introspections == [(setup.account.username, True)]


def test_imap_refuses_a_token_the_provider_does_not_know(setup: Setup) -> None:
    cache = setup.cache()
    cache.token()
    setup.provider.revoke_all()
    setup.provider.add_refresh_token(CLIENT_ID, "someone-else@example.test")
    write_secret(setup.refresh_token_file, "rt-unknown-to-the-provider")

    mailbox = ImapMailbox(setup.mailbox_settings(), credentials=setup.credentials(cache))
    with pytest.raises(MailboxUnavailable) as raised:
        mailbox.connect()
    # The refused token was dropped and a new one asked for; the provider refused that request.
    assert "invalid_grant" in str(raised.value)
    assert "oauth2.refresh_token_file" in str(raised.value)
    assert setup.provider.refusals() == 1


@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
def test_smtp_sends_after_auth_with_a_token(setup: Setup, token_sink: SmtpSink,
                                            mechanism: str) -> None:
    transport = SmtpTransport(setup.smtp_settings(token_sink),
                              credentials=setup.credentials(mechanism=mechanism))

    async def send() -> None:
        async with transport.connection() as conn:
            await conn.send("", ["rita@reporter.example"], factories.message())

    asyncio.run(send())
    [mail] = token_sink.wait_for(1)
    assert mail.login == setup.account.username
    assert token_sink.token_refusals == 0


def test_smtp_refusing_a_fresh_token_too_is_temporary_and_says_what_to_check(
    setup: Setup, smtp_sink_factory: SinkFactory, tmp_path: Path
) -> None:
    sink = smtp_sink_factory(token_check=lambda user, token: False)  # no permission to send
    settings = factories.settings(tmp_path, setup.mailbox_settings(), setup.smtp_settings(sink))
    transport = SmtpTransport(settings.smtp,
                              credentials=edge_credentials(settings).smtp)

    async def connect() -> None:
        async with transport.connection():
            pass

    with pytest.raises(SmtpTemporaryError) as raised:
        asyncio.run(connect())
    assert raised.value.code == 535
    assert "mailbot auth login" in str(raised.value)
    assert sink.token_refusals == 2  # the cached token, then one fresh one
    assert setup.provider.grants == ["refresh_token"] * 2


# -- expiry, revocation, a provider that fails ---------------------------------------------------


def test_a_token_close_to_expiry_is_replaced_before_it_is_used(setup: Setup) -> None:
    clock = FixedClock(datetime.now(UTC))
    cache = setup.cache(clock=clock)
    first = cache.token()
    # An hour later, by the client's clock and the provider's alike.
    clock.advance(timedelta(minutes=56))
    setup.provider.expire_all()

    with ImapMailbox(setup.mailbox_settings(), credentials=setup.credentials(cache)):
        pass
    assert cache.fetches == 2
    assert cache.token() != first
    assert setup.provider.refusals() == 0  # the stale token was never shown to the server


def test_a_long_session_logs_in_again_before_its_token_runs_out(
    setup: Setup, token_sink: SmtpSink, tmp_path: Path
) -> None:
    settings = factories.settings(tmp_path, setup.mailbox_settings(),
                                  setup.smtp_settings(token_sink))
    app = factories.app(settings)
    clock = FixedClock(datetime.now(UTC))
    app.credentials = edge_credentials(settings, clock=clock)  # the tokens' clock, settable
    try:
        _deliver(setup.account, "one")
        app.read_mailbox()
        clock.advance(timedelta(minutes=56))  # the token expires in 4 minutes
        _deliver(setup.account, "two")
        report = app.read_mailbox()
    finally:
        app.close()
    assert report.opened == 1
    assert setup.provider.grants == ["refresh_token"] * 2
    assert len(setup.provider.introspections) == 2  # a second login, with the new token
    assert setup.provider.refusals() == 0


def test_the_idle_watcher_logs_in_again_before_its_token_runs_out(
    setup: Setup, token_sink: SmtpSink, tmp_path: Path
) -> None:
    settings = factories.settings(tmp_path, setup.mailbox_settings(),
                                  setup.smtp_settings(token_sink))
    app = factories.app(settings)
    clock = FixedClock(datetime.now(UTC))
    app.credentials = edge_credentials(settings, clock=clock)
    stop, mailbox_ok = threading.Event(), threading.Event()
    mailbox_ok.set()  # as after a good pass of the mailbox job
    watcher = threading.Thread(target=idle_watch,
                               args=(app, "INBOX", stop, lambda: None, mailbox_ok))
    watcher.start()
    try:
        _wait_until(lambda: len(setup.provider.introspections) >= 1)
        logins = len(setup.provider.introspections)
        clock.advance(timedelta(minutes=56))  # the token expires in 4 minutes
        # A new token is fetched and the watcher logs in with it (a busy machine may add a
        # reconnect of its own, hence "at least").
        _wait_until(lambda: len(setup.provider.grants) >= 2
                    and len(setup.provider.introspections) > logins)
    finally:
        stop.set()
        watcher.join(timeout=10)
        app.close()
    # The renewal at least; a loaded machine may drop a login and fetch once more.
    assert len(setup.provider.grants) >= 2
    assert set(setup.provider.grants) == {"refresh_token"}
    assert setup.provider.refusals() == 0


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_a_token_revoked_mid_run_is_refreshed_once_and_the_pass_completes(
    setup: Setup, token_sink: SmtpSink, tmp_path: Path
) -> None:
    settings = factories.settings(tmp_path, setup.mailbox_settings(),
                                  setup.smtp_settings(token_sink))
    app = factories.app(settings)
    flow = Mailflow(app, setup.account, token_sink)
    try:
        flow.report(subject="one")
        flow.report(subject="two")
        flow.run()
        assert len(flow.cases()) == 2
        assert setup.provider.grants == ["refresh_token"]  # IMAP and SMTP share the token

        setup.provider.revoke_all()
        flow.report(subject="three")
        report = flow.run()

        assert report.intake.opened == 1
        assert len(flow.cases()) == 3
        assert len(flow.mailed(3)) == 3  # one receipt per report, none twice
        assert setup.provider.grants == ["refresh_token"] * 2  # exactly one refresh
        assert setup.provider.refusals() == 1  # exactly one refused login
    finally:
        app.close()


def test_a_provider_outage_is_one_line_then_backoff_and_the_daemon_recovers(
    setup: Setup, token_sink: SmtpSink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = factories.settings(tmp_path, setup.mailbox_settings(idle=False),
                                  setup.smtp_settings(token_sink))
    app = factories.app(settings)
    flow = Mailflow(app, setup.account, token_sink)
    flow.report(subject="sent while the provider is down")
    setup.provider.outage = 503
    caplog.set_level(logging.INFO)
    stop = asyncio.Event()
    done = threading.Event()
    failures_seen = threading.Event()

    async def daemon() -> None:
        task = asyncio.create_task(Daemon(app).run(stop))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not done.is_set():
            if any("oauth2.token_url" in r.getMessage() for r in caplog.records):
                failures_seen.set()
                setup.provider.outage = None  # the provider answers again
            if failures_seen.is_set() and flow.cases():
                done.set()
            await asyncio.sleep(0.05)
        stop.set()
        await task

    try:
        asyncio.run(daemon())
    finally:
        app.close()
    assert failures_seen.is_set(), "the outage was never reported"
    assert done.is_set(), "the daemon did not recover once the provider answered"
    failures = [r for r in caplog.records if "oauth2.token_url" in r.getMessage()]
    assert failures[0].levelno >= logging.WARNING  # said where an operator looks
    assert "503" in failures[0].getMessage()
    for record in failures:
        assert "\n" not in record.getMessage()
        assert record.exc_info is None  # no traceback


# -- the refresh token itself ---------------------------------------------------------------------


def test_a_rotated_refresh_token_replaces_the_stored_one(setup: Setup) -> None:
    setup.provider.rotate = True
    old = setup.refresh_token_file.read_text().strip()
    cache = setup.cache()
    first = cache.token()
    new = setup.refresh_token_file.read_text().strip()
    assert new != old
    assert stat.S_IMODE(setup.refresh_token_file.stat().st_mode) == 0o600
    assert old not in setup.provider.refresh_tokens  # the provider retired it

    cache.invalidate(first.value)
    assert cache.token() != first  # the stored, rotated token works
    assert [p.name for p in setup.refresh_token_file.parent.iterdir()
            if p.name.startswith(".")] == []  # no temporary file left behind


# -- secrets stay secret -------------------------------------------------------------------------


def test_no_token_or_secret_reaches_a_log_line_or_an_error(
    setup: Setup, token_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # everything, imapclient's protocol trace included
    # ...even when an earlier test in this process ran the CLI, which quiets imapclient.
    caplog.set_level(logging.DEBUG, logger="imapclient")
    refresh = setup.refresh_token_file.read_text().strip()
    cache = setup.cache()
    credentials = setup.credentials(cache)
    with ImapMailbox(setup.mailbox_settings(), credentials=credentials):
        pass
    transport = SmtpTransport(setup.smtp_settings(token_sink), credentials=credentials)

    async def send() -> None:
        async with transport.connection() as conn:
            await conn.send("", ["rita@reporter.example"], factories.message())

    asyncio.run(send())
    token = cache.token().value
    # A refused token: the error message must not carry it either.
    setup.provider.revoke_all()
    setup.provider.outage = 400
    errors = []
    attempts: list[Callable[[], object]] = [
        lambda: ImapMailbox(setup.mailbox_settings(), credentials=credentials).connect(),
        lambda: asyncio.run(send()),
    ]
    for attempt in attempts:
        with pytest.raises((MailboxUnavailable, SmtpTemporaryError)) as raised:
            attempt()
        errors.append(str(raised.value))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "LOGOUT" in logged  # imaplib's protocol trace was really on
    user = setup.account.username
    sasl = [sasl_initial_response(Login(user, m, token)).decode()  # as sent on the wire
            for m in ("xoauth2", "oauthbearer")]
    for secret in (token, refresh, CLIENT_SECRET, *sasl):
        assert secret not in logged
        for error in errors:
            assert secret not in error

