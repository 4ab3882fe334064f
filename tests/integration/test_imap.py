"""The IMAP edge against a real server (Dovecot; pymap where a test says so)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailbot.errors import MailboxLoginRefused, MailboxUnavailable
from mailbot.mail.imap import ImapMailbox
from mailbot.mail.message import FetchedMessage
from tests.servers import free_port
from tests.servers.dovecot import ImapAccount, ImapTestServer, PymapServer

pytestmark = pytest.mark.servers


def report(n: int, body: str = "The login form accepts any password.") -> bytes:
    return (
        f"From: Reporter {n} <reporter{n}@example.net>\r\n"
        "To: security@example.test\r\n"
        f"Subject: Vulnerability report {n}\r\n"
        f"Message-ID: <report-{n}@example.net>\r\n"
        "Date: Mon, 02 Nov 2026 10:00:00 +0100\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()


def flatten(batches: Iterator[list[FetchedMessage]]) -> list[FetchedMessage]:
    return [m for batch in batches for m in batch]


def later(seconds: float, action: Callable[[], object]) -> threading.Thread:
    def act() -> None:
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def server(imap_account: ImapAccount) -> ImapTestServer:
    return imap_account.server


@pytest.fixture
def mailbox(imap_account: ImapAccount) -> Iterator[ImapMailbox]:
    with ImapMailbox(imap_account.mailbox_settings()) as mb:
        yield mb


# -- fetching ------------------------------------------------------------------------------------


def test_fetch_new_returns_delivered_messages_in_uid_order_in_batches(
    mailbox: ImapMailbox, imap_account: ImapAccount, server: ImapTestServer
) -> None:
    for n in range(5):
        server.deliver(imap_account, report(n))

    batches = list(mailbox.fetch_new("INBOX", after_uid=0, batch_size=2))

    assert [len(b) for b in batches] == [2, 2, 1]
    messages = flatten(iter(batches))
    uids = [m.uid for m in messages]
    assert uids == sorted(uids) and len(set(uids)) == 5
    state = mailbox.folder_state("INBOX")
    assert state is not None
    for n, message in enumerate(messages):
        # LMTP puts Return-Path, Delivered-To and Received on top; the rest is as sent.
        assert message.raw.endswith(report(n))
        assert message.folder == "INBOX"
        assert message.uidvalidity == state.uidvalidity


def test_fetch_new_keeps_the_raw_bytes_exactly(
    mailbox: ImapMailbox, imap_account: ImapAccount, server: ImapTestServer
) -> None:
    raw = (
        b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.net>\r\n"
        b"Subject: 8-bit \xc3\xa9 and trailing space \r\n"
        b"Content-Type: text/plain; charset=latin-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        b"caf\xe9 \t\r\n"
        b"." + b"x" * 990 + b"\r\n"
        b"\r\n"
    )
    uid = server.append(imap_account, "INBOX", raw)

    (message,) = flatten(mailbox.fetch_new("INBOX", after_uid=0, batch_size=10))

    assert message.raw == raw
    if uid:
        assert message.uid == uid


def test_internal_date_is_the_arrival_time_in_aware_utc(
    mailbox: ImapMailbox, imap_account: ImapAccount, server: ImapTestServer
) -> None:
    arrived = datetime(2026, 3, 27, 23, 30, 5, tzinfo=timezone(timedelta(hours=-5)))
    server.append(imap_account, "INBOX", report(1), internal_date=arrived)
    before = datetime.now(UTC).replace(microsecond=0)
    server.deliver(imap_account, report(2))

    filed, delivered = flatten(mailbox.fetch_new("INBOX", after_uid=0, batch_size=10))

    assert filed.internal_date == arrived
    assert filed.internal_date.utcoffset() == timedelta(0)
    assert filed.internal_date.isoformat() == "2026-03-28T04:30:05+00:00"
    assert delivered.internal_date.tzinfo is not None
    assert before - timedelta(seconds=2) <= delivered.internal_date <= datetime.now(UTC)


def test_fetching_does_not_mark_messages_as_read(
    mailbox: ImapMailbox, imap_account: ImapAccount, server: ImapTestServer
) -> None:
    server.deliver(imap_account, report(1))
    server.append(imap_account, "INBOX", report(2))

    fetched = flatten(mailbox.fetch_new("INBOX", after_uid=0, batch_size=10))
    again = mailbox.fetch_uids("INBOX", [m.uid for m in fetched])

    assert len(fetched) == len(again) == 2
    with imap_account.client() as c:
        c.select_folder("INBOX", readonly=True)
        flags = c.get_flags([m.uid for m in fetched])
    assert all(b"\\Seen" not in f for f in flags.values()), flags


def test_fetch_new_after_the_cursor_returns_only_newer_messages(
    mailbox: ImapMailbox, imap_account: ImapAccount, server: ImapTestServer
) -> None:
    for n in range(3):
        server.deliver(imap_account, report(n))
    first = flatten(mailbox.fetch_new("INBOX", after_uid=0, batch_size=10))

    newer = flatten(mailbox.fetch_new("INBOX", after_uid=first[0].uid, batch_size=10))

    assert [m.uid for m in newer] == [m.uid for m in first[1:]]


def test_nothing_new_yields_no_batches(
    mailbox: ImapMailbox, imap_account: ImapAccount, server: ImapTestServer
) -> None:
    server.deliver(imap_account, report(1))
    (only,) = flatten(mailbox.fetch_new("INBOX", after_uid=0, batch_size=10))

    assert list(mailbox.fetch_new("INBOX", after_uid=only.uid, batch_size=10)) == []
    assert list(mailbox.fetch_new("Sent", after_uid=0, batch_size=10)) == []


def test_nothing_new_when_the_newest_message_was_expunged_unseen(
    mailbox: ImapMailbox, imap_account: ImapAccount, server: ImapTestServer
) -> None:
    # "UID SEARCH n:*" answers with the highest UID when every UID is below n.
    for n in range(3):
        server.deliver(imap_account, report(n))
    with imap_account.client() as c:
        c.select_folder("INBOX")
        first, second, third = c.search(["ALL"])
        c.delete_messages([third])
        c.expunge()

    assert list(mailbox.fetch_new("INBOX", after_uid=second, batch_size=10)) == []
    assert mailbox.search_uids("INBOX") == [first, second]


def test_batches_are_cut_by_size_so_large_messages_come_alone(
    imap_account: ImapAccount, server: ImapTestServer
) -> None:
    for n in range(3):
        server.deliver(imap_account, report(n, body="A" * 3000))
    server.deliver(imap_account, report(3, body="short"))

    with ImapMailbox(imap_account.mailbox_settings(), max_batch_bytes=4000) as mb:
        batches = list(mb.fetch_new("INBOX", after_uid=0, batch_size=100))

    assert [len(b) for b in batches] == [1, 1, 2]


def test_sent_folder_exists_and_its_copies_are_fetched(
    mailbox: ImapMailbox, imap_account: ImapAccount, server: ImapTestServer
) -> None:
    reply = b"From: alice@example.test\r\nSubject: Re: report\r\n\r\nThanks, looking.\r\n"
    server.append(imap_account, "Sent", reply)

    (copy,) = flatten(mailbox.fetch_new("Sent", after_uid=0, batch_size=10))

    assert copy.raw == reply and copy.folder == "Sent"
    assert flatten(mailbox.fetch_new("INBOX", after_uid=0, batch_size=10)) == []


def test_folder_names_with_spaces_and_accents_work(
    mailbox: ImapMailbox, imap_account: ImapAccount, server: ImapTestServer
) -> None:
    folder = "Éléments envoyés"  # sent as modified UTF-7 with quoting
    with imap_account.client() as c:
        c.create_folder(folder)
    server.append(imap_account, folder, report(1))

    (message,) = flatten(mailbox.fetch_new(folder, after_uid=0, batch_size=10))

    assert message.folder == folder and message.raw == report(1)


def test_a_missing_folder_is_reported_once_and_read_as_empty(
    mailbox: ImapMailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mailbot.imap")

    assert mailbox.folder_state("Archive/Nowhere") is None
    assert list(mailbox.fetch_new("Archive/Nowhere", after_uid=0, batch_size=10)) == []
    assert mailbox.search_uids("Archive/Nowhere") == []

    warnings = [r for r in caplog.records if "does not exist" in r.getMessage()]
    assert len(warnings) == 1
    assert mailbox.folder_state("INBOX") is not None  # the session is still usable


def test_add_flags_sets_a_keyword_and_leaves_seen_alone(
    mailbox: ImapMailbox, imap_account: ImapAccount, server: ImapTestServer
) -> None:
    server.deliver(imap_account, report(1))
    (message,) = flatten(mailbox.fetch_new("INBOX", after_uid=0, batch_size=10))

    mailbox.add_flags("INBOX", [message.uid], ["$MailbotCase", "\\Flagged"])

    with imap_account.client() as c:
        c.select_folder("INBOX", readonly=True)
        flags = c.get_flags([message.uid])[message.uid]
    assert b"\\Flagged" in flags and b"\\Seen" not in flags
    if server.name != "pymap":  # pymap drops keywords silently
        assert b"$MailbotCase" in flags


# -- UIDVALIDITY ---------------------------------------------------------------------------------


def test_folder_state_shows_a_new_uidvalidity(
    mailbox: ImapMailbox, imap_account: ImapAccount, server: ImapTestServer
) -> None:
    server.deliver(imap_account, report(1))
    before = mailbox.folder_state("INBOX")
    assert before is not None and before.exists == 1 and before.uidnext > 1

    new_value = server.change_uidvalidity(imap_account, "INBOX")

    try:
        after = mailbox.folder_state("INBOX")
    except MailboxUnavailable:  # a server may end sessions that had the folder open
        mailbox.connect()
        after = mailbox.folder_state("INBOX")
    assert after is not None
    assert after.uidvalidity == new_value != before.uidvalidity
    (message,) = flatten(mailbox.fetch_new("INBOX", after_uid=0, batch_size=10))
    assert message.uidvalidity == new_value


# -- waiting -------------------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["none", "tls"])
def test_idle_announces_an_lmtp_delivery_within_a_few_seconds(
    imap_account: ImapAccount, server: ImapTestServer, security: str
) -> None:
    with ImapMailbox(imap_account.mailbox_settings(security=security)) as mailbox:
        assert list(mailbox.fetch_new("INBOX", after_uid=0, batch_size=10)) == []
        later(0.3, lambda: server.deliver(imap_account, report(1)))
        started = time.monotonic()

        news = mailbox.wait_for_news("INBOX", timeout=20)

        assert news is True
        assert time.monotonic() - started < 5
        (message,) = flatten(mailbox.fetch_new("INBOX", after_uid=0, batch_size=10))
        assert message.raw.endswith(report(1))


def test_wait_for_news_returns_false_after_the_timeout_when_nothing_arrives(
    mailbox: ImapMailbox,
) -> None:
    started = time.monotonic()

    assert mailbox.wait_for_news("INBOX", timeout=1.5) is False

    assert 1.4 <= time.monotonic() - started < 3.5
    assert mailbox.folder_state("INBOX") is not None  # IDLE was ended cleanly


def test_wait_for_news_reports_mail_that_arrived_since_the_last_fetch(
    mailbox: ImapMailbox, imap_account: ImapAccount, server: ImapTestServer
) -> None:
    # Mail that lands between a fetch and the next IDLE is never announced by IDLE itself.
    server.deliver(imap_account, report(1))
    fetched = flatten(mailbox.fetch_new("INBOX", after_uid=0, batch_size=10))
    server.deliver(imap_account, report(2))
    started = time.monotonic()

    assert mailbox.wait_for_news("INBOX", timeout=10) is True

    assert time.monotonic() - started < 1
    newer = flatten(mailbox.fetch_new("INBOX", after_uid=fetched[-1].uid, batch_size=10))
    assert len(newer) == 1
    assert mailbox.wait_for_news("INBOX", timeout=0.5) is False


def test_a_watch_only_session_hears_of_mail_that_came_between_two_waits(
    imap_account: ImapAccount, server: ImapTestServer
) -> None:
    # The daemon may keep one session for IDLE alone and read with another.
    with ImapMailbox(imap_account.mailbox_settings()) as watcher:
        later(0.3, lambda: server.deliver(imap_account, report(1)))
        assert watcher.wait_for_news("INBOX", timeout=10) is True
        server.deliver(imap_account, report(2))  # while the daemon handles the first one
        started = time.monotonic()

        assert watcher.wait_for_news("INBOX", timeout=8) is True

        assert time.monotonic() - started < 2
        assert watcher.wait_for_news("INBOX", timeout=1) is False


def test_while_mail_is_coming_in_a_noop_finds_it_before_idle_would(
    imap_account: ImapAccount, server: ImapTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Dovecot announces news in IDLE half a second late; right after news the watcher lingers,
    # asking with NOOPs, so the next message of a burst is seen as soon as it is stored.
    with ImapMailbox(imap_account.mailbox_settings()) as watcher:
        later(0.3, lambda: server.deliver(imap_account, report(1)))
        assert watcher.wait_for_news("INBOX", timeout=10) is True
        later(0.3, lambda: server.deliver(imap_account, report(2)))
        with caplog.at_level(logging.DEBUG, logger="mailbot.imap"):
            assert watcher.wait_for_news("INBOX", timeout=10, linger=5) is True
        assert "news on INBOX found by NOOP" in caplog.text
        assert watcher.wait_for_news("INBOX", timeout=1, linger=0.5) is False


def test_wait_for_news_stops_within_a_second_of_the_stop_event(mailbox: ImapMailbox) -> None:
    stop = threading.Event()
    later(0.3, stop.set)
    started = time.monotonic()

    assert mailbox.wait_for_news("INBOX", timeout=30, stop=stop) is False

    assert time.monotonic() - started < 1.8
    assert mailbox.folder_state("INBOX") is not None


def test_without_idle_wait_for_news_polls_and_says_look_after_the_timeout(
    imap_account: ImapAccount, server: ImapTestServer
) -> None:
    with ImapMailbox(imap_account.mailbox_settings(idle=False)) as mb:
        started = time.monotonic()
        assert mb.wait_for_news("INBOX", timeout=1.0) is True
        assert 0.9 <= time.monotonic() - started < 3

        stop = threading.Event()
        later(0.2, stop.set)
        started = time.monotonic()
        assert mb.wait_for_news("INBOX", timeout=30, stop=stop) is False
        assert time.monotonic() - started < 1.8


# -- security modes and failures -----------------------------------------------------------------


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_connects_over_tls_with_a_self_signed_certificate(
    imap_account: ImapAccount, server: ImapTestServer, security: str
) -> None:
    server.deliver(imap_account, report(1))
    settings = imap_account.mailbox_settings(security=security, verify_tls=False)

    with ImapMailbox(settings) as mb:
        assert mb.tls_version is not None and mb.tls_version.startswith("TLS")
        assert len(flatten(mb.fetch_new("INBOX", after_uid=0, batch_size=10))) == 1


def test_plain_connection_is_not_encrypted(mailbox: ImapMailbox) -> None:
    assert mailbox.tls_version is None


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_certificate_verification_rejects_an_untrusted_certificate(
    imap_account: ImapAccount, server: ImapTestServer, security: str
) -> None:
    settings = imap_account.mailbox_settings(security=security, verify_tls=True)
    mb = ImapMailbox(settings)

    with pytest.raises(MailboxUnavailable, match=r"(?i)certificate"):
        mb.connect()
    assert not mb.connected


def test_a_bad_password_is_a_refused_login_naming_the_key_without_showing_it(
    imap_account: ImapAccount, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + imap_account.password
    mb = ImapMailbox(imap_account.mailbox_settings(password=wrong,
                                                   password_key="mailbox.password_file"))

    with pytest.raises(MailboxLoginRefused) as failure:
        mb.connect()

    assert isinstance(failure.value, MailboxUnavailable)  # nothing is lost: mail waits
    assert imap_account.username in str(failure.value)
    assert "login refused" in str(failure.value)
    assert failure.value.key == "mailbox.username / mailbox.password_file"
    assert wrong not in str(failure.value) and wrong not in caplog.text
    assert not mb.connected


def test_an_unreachable_server_raises_mailbox_unavailable(imap_account: ImapAccount) -> None:
    mb = ImapMailbox(imap_account.mailbox_settings(port=free_port(), timeout_seconds=2))

    with pytest.raises(MailboxUnavailable, match="refused"):
        mb.connect()


def test_a_server_that_never_answers_times_out(imap_account: ImapAccount) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) and never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        mb = ImapMailbox(imap_account.mailbox_settings(port=port, timeout_seconds=1))
        started = time.monotonic()

        with pytest.raises(MailboxUnavailable, match="timed out"):
            mb.connect()

        assert time.monotonic() - started < 3


def test_a_dropped_connection_raises_and_connect_again_works(
    mailbox: ImapMailbox, imap_account: ImapAccount, server: ImapTestServer
) -> None:
    assert mailbox.folder_state("INBOX") is not None

    server.drop_connections(imap_account)

    with pytest.raises(MailboxUnavailable, match="Server shutting down"):
        mailbox.folder_state("INBOX")
    assert not mailbox.connected
    with pytest.raises(MailboxUnavailable, match="not connected"):
        mailbox.search_uids("INBOX")
    mailbox.connect()
    server.deliver(imap_account, report(1))
    assert len(flatten(mailbox.fetch_new("INBOX", after_uid=0, batch_size=10))) == 1


def test_a_connection_dropped_during_idle_raises_promptly(
    mailbox: ImapMailbox, imap_account: ImapAccount, server: ImapTestServer
) -> None:
    server.require_faults()
    later(0.5, lambda: server.drop_connections(imap_account))
    started = time.monotonic()

    with pytest.raises(MailboxUnavailable) as failure:
        mailbox.wait_for_news("INBOX", timeout=30)
    assert "Server shutting down" in str(failure.value)  # the server's own reason, kept

    assert time.monotonic() - started < 5
    mailbox.reconnect(attempts=3)
    assert mailbox.folder_state("INBOX") is not None


def test_reconnect_gives_up_at_once_on_a_refused_login(imap_account: ImapAccount) -> None:
    mb = ImapMailbox(imap_account.mailbox_settings(password="wrong"))
    tries = 0
    real_connect = mb.connect

    def counting_connect() -> None:
        nonlocal tries
        tries += 1
        real_connect()

    mb.connect = counting_connect  # type: ignore[method-assign]
    with pytest.raises(MailboxLoginRefused):
        mb.reconnect(attempts=5)
    assert tries == 1  # each failed login counts towards an account lockout


def test_a_connection_that_dies_without_bye_during_idle_raises_promptly(
    mailbox: ImapMailbox, imap_account: ImapAccount, server: ImapTestServer
) -> None:
    server.require_faults()
    later(0.5, lambda: server.kill_sessions(imap_account))
    started = time.monotonic()

    with pytest.raises(MailboxUnavailable):
        mailbox.wait_for_news("INBOX", timeout=30)

    assert time.monotonic() - started < 5
    mailbox.connect()
    assert mailbox.folder_state("INBOX") is not None


def test_reconnect_gives_up_once_stopped(imap_account: ImapAccount) -> None:
    mb = ImapMailbox(imap_account.mailbox_settings(port=free_port(), timeout_seconds=2))
    stop = threading.Event()
    later(0.2, stop.set)
    started = time.monotonic()

    with pytest.raises(MailboxUnavailable):
        mb.reconnect(stop=stop)

    assert time.monotonic() - started < 2.5


# -- the pymap fallback --------------------------------------------------------------------------


def test_pymap_serves_as_a_fallback_server(pymap_server: PymapServer) -> None:
    account = pymap_server.add_user()
    pymap_server.deliver(account, report(1))

    with ImapMailbox(account.mailbox_settings()) as mb:
        (first,) = flatten(mb.fetch_new("INBOX", after_uid=0, batch_size=10))
        assert first.raw == report(1)
        later(0.3, lambda: pymap_server.deliver(account, report(2)))
        assert mb.wait_for_news("INBOX", timeout=10) is True
        (second,) = flatten(mb.fetch_new("INBOX", after_uid=first.uid, batch_size=10))
        assert second.uid > first.uid
        assert mb.folder_state("Sent") is not None
