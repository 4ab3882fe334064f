"""Encrypted reports in, encrypted answers out: real Dovecot, a real SMTP sink, real GnuPG keys
made by the test suite (ed25519/cv25519 and RSA-3072)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest

from mailbot.app import App
from mailbot.cases.models import Message
from mailbot.intake.pipeline import reread
from mailbot.pgp.settings import PgpSettings
from mailbot.web.casepage import message_bytes
from tests import factories
from tests.mailflow import Mailflow
from tests.pgpkeys import Home
from tests.pgpmail import (
    TEAM,
    Keys,
    Person,
    inner_text,
    pgp_mime,
    pgp_settings,
    pgp_signed,
)
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink

RITA = "rita@reporter.example"


def make_flow(tmp_path: Path, account: ImapAccount, sink: SmtpSink, pgp: PgpSettings,
              **team: object) -> Mailflow:
    settings = factories.settings(tmp_path, account.mailbox_settings(), sink.smtp_settings())
    team_settings = dataclasses.replace(settings.team, **team)  # type: ignore[arg-type]
    settings = dataclasses.replace(settings, pgp=pgp, team=team_settings)
    return Mailflow(factories.app(settings), account, sink)


@pytest.fixture
def flow(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink, team_home: Home,
         pgp_keys: Keys) -> Iterator[Mailflow]:
    made = make_flow(tmp_path, imap_account, smtp_sink, pgp_settings(team_home, pgp_keys))
    yield made
    made.app.close()


def headers(sender: str, subject: str = "...") -> list[tuple[str, str]]:
    return [("From", f"Reporter <{sender}>"), ("To", TEAM), ("Subject", subject),
            ("Date", format_datetime(datetime.now(UTC))),
            ("Message-ID", make_msgid(domain="reporter.example"))]


def encrypted_part(message: EmailMessage) -> bytes:
    """The armored block of a PGP/MIME message (its second part)."""
    parts = list(message.iter_parts())
    assert len(parts) == 2 and parts[0].get_content_type() == "application/pgp-encrypted"
    data = parts[1].get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


def readable_text(app: App, message: Message) -> bytes:
    with app.db.session() as s:
        return app.db.raw_store.get(s, message.details["readable_raw_id"])


def test_encrypted_signed_report_with_key_opens_a_readable_case_and_gets_an_encrypted_receipt(
    flow: Mailflow, people: dict[str, Person], pgp_keys: Keys
) -> None:
    rita = people[RITA]
    secret_text = "The login form at /admin trusts X-Forwarded-For.\n"
    inner = inner_text(secret_text, subject="Auth bypass in admin login", key=rita.public())
    armored = rita.home.encrypt(inner, to=pgp_keys.team_fpr, sign_as=rita.fpr)
    raw = pgp_mime(headers(RITA), armored)
    flow.deliver(raw, envelope_from=RITA)
    flow.run()

    [case] = flow.cases()
    assert case.subject == "Auth bypass in admin login"  # the protected Subject
    [report] = flow.inbound(case.id)
    assert {"encrypted", "signed"} <= set(report.flags)
    assert "undecryptable" not in case.flags
    pgp = report.details["pgp"]
    assert pgp["signature"] == {"status": "good", "fingerprint": rita.fpr, "key_known": True}
    assert [k["result"] for k in pgp["keys"]] == ["recorded"]
    assert secret_text.replace("\n", "\r\n").encode() in readable_text(flow.app, report)
    with flow.app.db.session() as s:  # the raw bytes are kept exactly as they arrived
        assert raw in flow.app.db.raw_store.get(s, report.raw_id or 0)
        shown = message_bytes(s, report, flow.app.db.raw_store)  # what the case view reads
        assert shown is not None and b"/admin trusts" in shown

    [receipt] = flow.mailed(1)
    assert receipt.message.get_content_type() == "multipart/encrypted"
    assert secret_text.encode() not in receipt.data and case.id.encode() in receipt.data
    armored_receipt = encrypted_part(receipt.message)
    clear, status = rita.home.status("--decrypt", data=armored_receipt)
    assert f"VALIDSIG {pgp_keys.team_fpr}" in status and "GOODSIG" in status
    assert case.id.encode() in clear and b"received it" in clear

    # A second report, no key attached: answered encrypted all the same.
    again = rita.home.encrypt(inner_text("Another one.\n"), to=pgp_keys.team_fpr)
    flow.deliver(pgp_mime(headers(RITA, "second"), again), envelope_from=RITA)
    flow.run()
    second = flow.mailed(2)[1]
    assert second.message.get_content_type() == "multipart/encrypted"
    clear, status = rita.home.status("--decrypt", data=encrypted_part(second.message))
    assert "GOODSIG" in status and b"Your report was encrypted" not in clear


def test_undecryptable_report_is_flagged_alerted_once_and_reread_after_the_key_is_fixed(
    flow: Mailflow, people: dict[str, Person], pgp_keys: Keys, team_home: Home
) -> None:
    rob = people["rob@reporter.example"]
    other = pgp_keys.reporters["other@elsewhere.example"][2]
    team_home.import_(pgp_keys.reporters["other@elsewhere.example"][1])
    inner = inner_text("Only the other key can read this.\n", subject="Hidden subject")
    rob.home.import_(pgp_keys.reporters["other@elsewhere.example"][1])
    raw = pgp_mime(headers(rob.address, "..."), rob.home.encrypt(inner, to=other))
    flow.deliver(raw, envelope_from=rob.address)
    flow.run()

    [case] = flow.cases()
    assert "undecryptable" in case.flags
    [report] = flow.inbound(case.id)
    assert "not encrypted to the team key" in report.details["pgp"]["problem"]
    mailed = flow.mailed(2)  # the receipt (in clear, with our key) and one alert
    kinds = sorted(m.message["To"] for m in mailed)
    assert kinds == ["oncall@team.example.test", rob.address]
    receipt = next(m for m in mailed if m.rcpt_tos == (rob.address,))
    assert b"Your report was encrypted" in receipt.data
    assert b"BEGIN PGP PUBLIC KEY BLOCK" in receipt.data and receipt.message["Autocrypt"]

    flow.run()  # nothing new
    assert len(flow.sink.received) == 2

    # The operator gives mailbot the key the report was encrypted to; retry-decrypt reads it.
    team_home.import_(pgp_keys.reporters["other@elsewhere.example"][0])
    with flow.app.db.session() as s:
        message = s.get(Message, report.id)
        assert message is not None
        assert reread(s, message, flow.app.intake) is None
    case = flow.case(case.id)
    assert "undecryptable" not in case.flags and case.subject == "Hidden subject"
    [report] = flow.inbound(case.id)
    assert b"Only the other key" in readable_text(flow.app, report)
    flow.run()
    assert len(flow.sink.received) == 2 and len(flow.cases()) == 1



ALICE = "alice@team.example.test"
FAIL = "mx.example.test; dmarc=fail header.from=team.example.test"


@pytest.mark.parametrize("how, obeyed", [
    ("signed", True),  # no Authentication-Results at all: the signature proves Alice
    ("altered", False),  # a bad signature is never trust
    ("dmarc-fail", False),  # a good signature never overrules a failed DMARC
])
def test_a_team_reply_signed_by_a_listed_team_key_is_obeyed_and_only_then(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink, team_home: Home,
    pgp_keys: Keys, people: dict[str, Person], how: str, obeyed: bool,
) -> None:
    alice = people[ALICE]
    team_home.import_(pgp_keys.reporters[ALICE][1])
    flow = make_flow(tmp_path, imap_account, smtp_sink, pgp_settings(team_home, pgp_keys),
                     pgp_keys=(alice.fpr,))
    try:
        case, report_id = flow.open_report()
        entity = inner_text("/assess severity=high target=2026-12-31\n")
        signature = alice.home.sign_detached(entity, signer=alice.fpr)
        if how == "altered":
            entity = entity.replace(b"high", b"low")
        fields = [("From", f"Alice <{ALICE}>"), ("To", TEAM), ("Subject", f"Re: [{case.id}]"),
                  ("In-Reply-To", report_id), ("References", report_id),
                  ("Message-ID", make_msgid(domain="team.example.test"))]
        if how == "dmarc-fail":
            fields.insert(0, ("Authentication-Results", FAIL))
        flow.deliver(pgp_signed(fields, entity, signature), envelope_from=ALICE)
        flow.run()
        case = flow.case(case.id)
        [_, reply] = flow.inbound(case.id)
        assert (case.severity == "high") is obeyed
        assert (reply.kind == "team") is obeyed
        assert ("bad-signature" in reply.flags) is (how == "altered")
        if obeyed:
            assert reply.details["trust"] == f"good PGP signature by team key {alice.fpr}"
        else:
            assert "unauthenticated-team" in case.flags
    finally:
        flow.app.close()
