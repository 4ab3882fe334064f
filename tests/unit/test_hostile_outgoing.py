"""Reporter text in every field of every message mailbot writes: receipts, alerts, reminders,
escalations and the digest. Whatever the text holds (CR, LF, CRLF, NUL, bare CR, U+2028, encoded
words that decode to any of them), the composed bytes have exactly the header fields mailbot
sets, and the body has exactly the lines the template has."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.header import Header
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest

from mailbot.cases.models import Case
from mailbot.config import (
    MailboxSettings,
    OncallSettings,
    PolicySettings,
    SecretsSettings,
    Settings,
    SmtpSettings,
)
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.deadlines.watch import Deadline, DigestEntry
from mailbot.mail.message import LOOP_HEADER
from mailbot.mail.parse import parse_message
from mailbot.outbox import OutgoingMail
from mailbot.outgoing import Writer, alert, digest, receipt, reminder

NOW = datetime(2026, 11, 4, 10, 0, tzinfo=UTC)
ONCALL = ["oncall@example.test"]
COMPOSED = sorted(
    h.lower()
    for h in (
        *("From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", LOOP_HEADER),
        *("X-Auto-Response-Suppress", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"),
    )
)
# Each payload tries to end the line it is put on and start a header or a body line of its own.
PAYLOADS = {
    "crlf": "x\r\nBcc: victim@evil.test\r\nX-INJECTED: crlf",
    "lf": "x\nX-INJECTED: lf",
    "bare-cr": "x\rX-INJECTED: cr",
    "blank-line": "x\r\n\r\nINJECTED body line",
    "nul": "x\x00X-INJECTED: nul",
    "u2028-u2029": "x\u2028X-INJECTED: ls\u2029X-INJECTED: ps",
    "nel-vt-ff": "x\x85X-INJECTED: nel\x0bX-INJECTED: vt\x0cX-INJECTED: ff",
    "encoded-word-crlf": "=?utf-8?q?x=0D=0AX-INJECTED:_ew?=",
    "encoded-word-nul": "=?utf-8?b?eABYLUlOSkVDVEVEOiBudWw=?=",
    "nested-encoded-word": "=?utf-8?q?=3D=3Futf-8=3Fq=3Fx=3D0D=3D0AX-INJECTED=3A=5Fn=3F=3D?=",
    "rtl-override": "x \u202eX-INJECTED: rtl\u202c",
}


def writer() -> Writer:
    settings = Settings(
        mailbox=MailboxSettings(host="127.0.0.1", username="security@example.test"),
        smtp=SmtpSettings(
            host="127.0.0.1", from_address="Example Security <security@example.test>"
        ),
        policy=PolicySettings(timezone="Europe/Amsterdam"),
        oncall=OncallSettings(addresses=tuple(ONCALL)),
        secrets=SecretsSettings(token_key=b"k"),
    )
    return Writer(
        settings=settings, calendar=BusinessCalendar.from_policy(settings.policy), token_key=b"k"
    )


def case(text: str, name: str | None = None) -> Case:
    return Case(
        id="SEC-2026-0042",
        status="new",
        reporter="rita@reporter.example",
        reporter_name=f"Rita {text}" if name is None else name,
        subject=f"XSS {text}",
        flags=[],
        received_at=NOW - timedelta(days=3),
        created_at=NOW - timedelta(days=3),
        updated_at=NOW,
        ack_due=NOW + timedelta(hours=10),
        credit=None,
    )


def report(text: str) -> bytes:
    # The reporter's own ids too: answering them threads our mail, so they reach our headers.
    subject = Header(f"XSS {text}", "utf-8").encode()
    return (
        f"From: Rita <rita@reporter.example>\r\nSubject: {subject}\r\n"
        "Message-ID: <r1@reporter.example>\r\n"
        "References: <a@b>\r\n <c@d>X-INJECTED:<e@f>\r\n\r\nbody\r\n"
    ).encode()


def build_all(text: str, name: str | None = None) -> dict[str, OutgoingMail]:
    w, c = writer(), case(text, name)
    due = NOW + timedelta(hours=10)
    built = {
        "receipt": receipt(w, c, parse_message(report(text)), "d" * 64, NOW),
        "reminder": reminder(
            w, c, deadline="ack", due=due, stage="at-risk", recipients=ONCALL,
            report_message_id="<r1@reporter.example>", now=NOW,
        ),
        "escalation": reminder(
            w, c, deadline="ack", due=NOW - timedelta(hours=1), stage="overdue",
            recipients=ONCALL, report_message_id=f"<r1@reporter.example>{text}", now=NOW,
        ),
        "digest": digest(
            w, day=date(2026, 11, 4), total=2, recipients=ONCALL, now=NOW,
            entries=[DigestEntry(c, Deadline("ack", due), "at-risk"), DigestEntry(c, None, None)],
        ),
    }  # fmt: skip
    alerted = alert(
        w, recipients=ONCALL, case_id=c.id, what="A message could not be processed",
        details={"folder": f"INBOX {text}", "error": f"ValueError: {text}"}, cause="x", now=NOW,
    )  # fmt: skip
    assert alerted is not None
    built["alert"] = alerted
    return built


def parsed(mail: OutgoingMail) -> EmailMessage:
    msg = message_from_bytes(mail.data, policy=default_policy)
    assert isinstance(msg, EmailMessage)
    return msg


def body_lines(mail: OutgoingMail) -> list[str]:
    part = parsed(mail).get_body(("plain",))
    assert part is not None
    return str(part.get_content()).splitlines()


BENIGN = build_all("plain words")
# Where reporter text may appear in a body: the one line the template gives it.
ALLOWED_LINES = ("Hello Rita", "Reporter:", "Subject:", "Rita", "folder:", "error:")


@pytest.mark.parametrize("kind", sorted(BENIGN))
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_header_injection_into_any_template_field_adds_no_header_and_no_line(
    kind: str, payload: str
) -> None:
    mail = build_all(PAYLOADS[payload])[kind]
    benign = BENIGN[kind]

    msg = parsed(mail)
    names = sorted(name.lower() for name in msg)
    assert names == sorted(name.lower() for name in parsed(benign))  # exactly the same fields
    assert set(names) - {"in-reply-to", "references"} == set(COMPOSED)
    assert [a.addr_spec for a in msg["To"].addresses] == mail.recipients
    assert "INJECTED" not in str(msg["Subject"])
    assert not msg.defects
    lines, benign_lines = body_lines(mail), body_lines(benign)
    assert len(lines) == len(benign_lines)
    for line, benign_line in zip(lines, benign_lines, strict=True):
        if line != benign_line:
            assert line.strip().startswith(ALLOWED_LINES), repr(line)
            assert benign_line.strip().startswith(ALLOWED_LINES), repr(benign_line)
    for raw_line in mail.data.split(b"\r\n"):
        assert b"\r" not in raw_line and b"\n" not in raw_line and b"\x00" not in raw_line
        assert not raw_line.upper().startswith((b"X-INJECTED", b"BCC"))


def test_the_receipt_never_echoes_the_report_subject() -> None:
    """The "Ticket Trick": the subject may be a third party's secret, and the receipt goes to
    whatever address the From names."""
    mail = build_all("code 493817", name="Service")["receipt"]

    assert parsed(mail)["Subject"] == "Re: your security report [SEC-2026-0042]"
    assert b"493817" not in mail.data
    assert "493817" not in "\n".join(body_lines(mail))


def test_the_receipt_names_the_reporter_on_one_line_at_most() -> None:
    lines = body_lines(build_all(PAYLOADS["blank-line"])["receipt"])

    assert [line for line in lines if "INJECTED" in line] == ["Hello Rita x INJECTED body line,"]


def test_reporter_ids_that_are_not_message_ids_never_reach_our_threading_headers() -> None:
    for payload in PAYLOADS.values():
        for kind in ("receipt", "escalation"):
            msg = parsed(build_all(payload)[kind])
            for name in ("In-Reply-To", "References"):
                value = str(msg.get(name, ""))
                assert "INJECTED" not in value
                assert all(i.startswith("<") and i.endswith(">") for i in value.split())
