"""The SMTP edge against a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import pytest

from mailbot.config import SmtpSettings
from mailbot.errors import SmtpLoginRefused, SmtpPermanentError, SmtpTemporaryError
from mailbot.mail.compose import compose
from mailbot.mail.smtp import SmtpTransport
from tests.servers.smtp_sink import SinkFactory, SmtpSink

REPORTER = "reporter@example.org"


def message(n: int = 0, body: str = "hello") -> bytes:
    return (
        f"From: security@example.test\r\nTo: {REPORTER}\r\nSubject: test {n}\r\n"
        f"Message-ID: <m{n}@example.test>\r\n\r\n{body} {n}\r\n"
    ).encode()


Outcome = str  # "sent", or the name and code of the error


async def _send_all(
    settings: SmtpSettings, batch: list[tuple[str, list[str], bytes]]
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    async with SmtpTransport(settings).connection() as smtp:
        for envelope_from, recipients, data in batch:
            try:
                await smtp.send(envelope_from, recipients, data)
            except (SmtpTemporaryError, SmtpPermanentError) as exc:
                outcomes.append(f"{type(exc).__name__} {exc.code}")
            else:
                outcomes.append("sent")
    return outcomes


def send_all(settings: SmtpSettings, batch: list[tuple[str, list[str], bytes]]) -> list[Outcome]:
    return asyncio.run(_send_all(settings, batch))


def one(n: int = 0, recipients: list[str] | None = None) -> tuple[str, list[str], bytes]:
    return ("", recipients or [REPORTER], message(n))


def test_a_batch_goes_over_one_connection(smtp_sink: SmtpSink) -> None:
    outcomes = send_all(smtp_sink.smtp_settings(), [one(n) for n in range(5)])

    assert outcomes == ["sent"] * 5
    received = smtp_sink.wait_for(5)
    assert [m.message["Subject"] for m in received] == [f"test {n}" for n in range(5)]
    assert smtp_sink.connections == 1
    assert {m.connection for m in received} == {1}


def test_each_batch_opens_its_own_connection(smtp_sink: SmtpSink) -> None:
    send_all(smtp_sink.smtp_settings(), [one(0)])
    send_all(smtp_sink.smtp_settings(), [one(1)])

    assert smtp_sink.connections == 2


def test_null_sender_arrives_as_empty_reverse_path(smtp_sink: SmtpSink) -> None:
    send_all(smtp_sink.smtp_settings(), [("", [REPORTER], message())])

    (received,) = smtp_sink.wait_for(1)
    assert received.mail_from == "<>"
    assert received.rcpt_tos == (REPORTER,)


def test_a_named_sender_is_used_as_the_envelope_sender(smtp_sink: SmtpSink) -> None:
    send_all(smtp_sink.smtp_settings(), [("bounces@example.test", [REPORTER], message())])

    assert smtp_sink.wait_for(1)[0].mail_from == "bounces@example.test"


def test_the_data_arrives_byte_for_byte(smtp_sink: SmtpSink) -> None:
    data = message(body=".leading dot and\r\n.\r\na lone dot line")
    send_all(smtp_sink.smtp_settings(), [("", [REPORTER], data)])

    assert smtp_sink.wait_for(1)[0].data == data


@pytest.mark.parametrize(
    ("code", "stage", "expected"),
    [
        (451, "rcpt", "SmtpTemporaryError 451"),
        (450, "rcpt", "SmtpTemporaryError 450"),
        (550, "rcpt", "SmtpPermanentError 550"),
        (451, "data", "SmtpTemporaryError 451"),
        (554, "data", "SmtpPermanentError 554"),
        (451, "mail", "SmtpTemporaryError 451"),
        (553, "mail", "SmtpPermanentError 553"),
    ],
)
def test_refusals_are_told_apart_by_their_code(
    smtp_sink: SmtpSink, code: int, stage: str, expected: str
) -> None:
    smtp_sink.fail(code, at=stage, count=1)  # type: ignore[arg-type]

    outcomes = send_all(smtp_sink.smtp_settings(), [one(0), one(1)])

    # The refusal is about one message: the connection goes on with the next.
    assert outcomes == [expected, "sent"]
    assert [m.message["Subject"] for m in smtp_sink.wait_for(1)] == ["test 1"]
    assert smtp_sink.connections == 1


def test_partial_refusal_sends_to_nobody_and_reports_the_refusal(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail(550, at="rcpt", recipients={"gone@example.org"})

    outcomes = send_all(
        smtp_sink.smtp_settings(),
        [one(0, [REPORTER, "gone@example.org"]), one(1, [REPORTER])],
    )

    assert outcomes == ["SmtpPermanentError 550", "sent"]
    # Nobody got message 0, so a retry can never give the accepted recipient a second copy.
    assert [m.message["Subject"] for m in smtp_sink.wait_for(1)] == ["test 1"]


def test_partial_temporary_refusal_is_temporary(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail(452, at="rcpt", recipients={"full@example.org"})

    outcomes = send_all(smtp_sink.smtp_settings(), [one(0, [REPORTER, "full@example.org"])])

    assert outcomes == ["SmtpTemporaryError 452"]
    assert smtp_sink.received == []


def test_partial_refusal_is_judged_by_the_worst_code(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail(550, at="rcpt", recipients={"gone@example.org"})
    batch = [one(0, ["full@example.org", REPORTER, "gone@example.org"])]

    async def scenario() -> SmtpPermanentError:
        async with SmtpTransport(smtp_sink.smtp_settings()).connection() as smtp:
            with pytest.raises(SmtpPermanentError) as caught:
                await smtp.send(*batch[0])
            return caught.value

    error = asyncio.run(scenario())
    assert error.code == 550
    assert "gone@example.org" in str(error)


def test_a_server_that_stops_answering_times_out_as_temporary(smtp_sink: SmtpSink) -> None:
    smtp_sink.hang(at="data")
    settings = smtp_sink.smtp_settings(timeout_seconds=1)

    started = time.monotonic()
    outcomes = send_all(settings, [one(0), one(1)])
    elapsed = time.monotonic() - started

    # The first times out; the second is refused at once: the connection is gone.
    assert outcomes == ["SmtpTemporaryError None", "SmtpTemporaryError None"]
    assert elapsed < 3


def test_after_a_connection_failure_the_connection_says_stop(smtp_sink: SmtpSink) -> None:
    smtp_sink.drop(at="rcpt", count=1)

    async def scenario() -> tuple[bool, bool, SmtpTemporaryError]:
        async with SmtpTransport(smtp_sink.smtp_settings()).connection() as smtp:
            usable_before = smtp.usable
            with pytest.raises(SmtpTemporaryError):
                await smtp.send(*one(0))
            with pytest.raises(SmtpTemporaryError) as second:
                await smtp.send(*one(1))
            return usable_before, smtp.usable, second.value

    usable_before, usable_after, second = asyncio.run(scenario())
    assert (usable_before, usable_after) == (True, False)
    assert second.code is None
    assert smtp_sink.received == []


def test_421_ends_the_batch(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail(421, at="mail", count=1)

    outcomes = send_all(smtp_sink.smtp_settings(), [one(0), one(1)])

    assert outcomes == ["SmtpTemporaryError 421", "SmtpTemporaryError None"]


def test_smtp_down_is_temporary_and_back_up_works(smtp_sink: SmtpSink) -> None:
    settings = smtp_sink.smtp_settings()
    smtp_sink.stop()

    with pytest.raises(SmtpTemporaryError) as caught:
        send_all(settings, [one(0)])
    assert caught.value.code is None

    smtp_sink.start()
    assert send_all(settings, [one(1)]) == ["sent"]
    assert smtp_sink.wait_for(1)[0].message["Subject"] == "test 1"


def test_smtp_going_down_mid_batch_is_temporary(smtp_sink: SmtpSink) -> None:
    async def scenario() -> list[Outcome]:
        outcomes = []
        async with SmtpTransport(smtp_sink.smtp_settings()).connection() as smtp:
            await smtp.send(*one(0))
            outcomes.append("sent")
            smtp_sink.stop()
            try:
                await smtp.send(*one(1))
            except SmtpTemporaryError as exc:
                outcomes.append(f"SmtpTemporaryError {exc.code}")
        return outcomes

    assert asyncio.run(scenario()) == ["sent", "SmtpTemporaryError None"]


def test_starttls_with_auth(smtp_sink_factory: SinkFactory) -> None:
    sink = smtp_sink_factory(security="starttls", users={"mailbot": "s3cret"})

    assert send_all(sink.smtp_settings(), [one(0)]) == ["sent"]

    (received,) = sink.wait_for(1)
    assert received.tls
    assert received.login == "mailbot"


def test_implicit_tls_with_auth(smtp_sink_factory: SinkFactory) -> None:
    sink = smtp_sink_factory(security="tls", users={"mailbot": "s3cret"})

    assert send_all(sink.smtp_settings(), [one(0)]) == ["sent"]

    (received,) = sink.wait_for(1)
    assert received.tls
    assert received.login == "mailbot"


def test_no_login_without_a_username(smtp_sink_factory: SinkFactory) -> None:
    sink = smtp_sink_factory(security="tls", users={"mailbot": "s3cret"})

    send_all(sink.smtp_settings(username="", password=""), [one(0)])

    assert sink.wait_for(1)[0].login is None


def test_a_refused_login_is_a_login_refusal_naming_the_key(smtp_sink_factory: SinkFactory) -> None:
    sink = smtp_sink_factory(security="starttls", users={"mailbot": "s3cret"})

    with pytest.raises(SmtpLoginRefused) as caught:
        send_all(sink.smtp_settings(password="wrong"), [one(0)])

    assert isinstance(caught.value, SmtpTemporaryError)  # the mail stays queued meanwhile
    assert caught.value.code == 535
    assert caught.value.key == "smtp.username / smtp.password_env"
    assert "login refused" in str(caught.value)
    assert "wrong" not in str(caught.value)


def test_starttls_is_never_skipped_when_the_server_lacks_it(smtp_sink: SmtpSink) -> None:
    with pytest.raises(SmtpTemporaryError, match="STARTTLS"):
        send_all(smtp_sink.smtp_settings(security="starttls"), [one(0)])

    assert smtp_sink.received == []


def test_a_self_signed_certificate_fails_verification(smtp_sink_factory: SinkFactory) -> None:
    sink = smtp_sink_factory(security="tls")

    with pytest.raises(SmtpTemporaryError, match="certificate"):
        send_all(sink.smtp_settings(verify_tls=True), [one(0)])


def test_passwords_and_bodies_never_reach_the_log(
    smtp_sink_factory: SinkFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sink = smtp_sink_factory(security="starttls", users={"mailbot": "pw-do-not-log"})
    caplog.set_level(logging.DEBUG, logger="mailbot")

    send_all(sink.smtp_settings(), [("", [REPORTER], message(body="secret-body-text"))])
    with pytest.raises(SmtpTemporaryError):
        send_all(sink.smtp_settings(password="pw-wrong-do-not-log"), [one(1)])

    mailbot_lines = [r.getMessage() for r in caplog.records if r.name.startswith("mailbot")]
    assert mailbot_lines, "the SMTP edge should log what it does"
    for line in mailbot_lines:
        assert "do-not-log" not in line
        assert "secret-body-text" not in line


def test_a_composed_receipt_arrives_intact(smtp_sink: SmtpSink) -> None:
    data = compose(
        from_address="Example Security <security@example.test>",
        to=["Zoë Reporter <zoe@example.org>"],
        subject="Re: XSS in login\r\nBcc: victim@evil.test [SEC-2026-0001]",
        text="Thank you. Dank je. Спасибо.\n",
        html=None,
        message_id="<SEC-2026-0001.receipt.n1.0123456789abcdef@example.test>",
        in_reply_to="<report-1@example.org>",
        references=["<report-1@example.org>"],
        auto_submitted="auto-replied",
        date=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
    )

    send_all(smtp_sink.smtp_settings(), [("", ["zoe@example.org"], data)])

    (received,) = smtp_sink.wait_for(1)
    msg = received.message
    assert received.mail_from == "<>"
    assert msg["Subject"] == "Re: XSS in login Bcc: victim@evil.test [SEC-2026-0001]"
    assert msg["Bcc"] is None
    assert msg["In-Reply-To"] == "<report-1@example.org>"
    assert msg.get_content().splitlines() == ["Thank you. Dank je. Спасибо."]
