"""Properties of the whole intake for any input whatsoever, on SQLite without IMAP.

- Arbitrary bytes through parse -> classify -> correlate never raise.
- A message with any sign of automatic mail (RFC 3834 and friends), or of being our own, is never
  answered: ``pipeline.process`` queues no receipt for it, while the same message without that
  sign, from a fresh sender, is answered.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from mailbot.app import App
from mailbot.cases.models import Outbox
from mailbot.config import MailboxSettings, SmtpSettings
from mailbot.intake.classify import classify
from mailbot.intake.correlate import correlate
from mailbot.intake.pipeline import Outcome, process
from mailbot.mail.message import LOOP_HEADER, FetchedMessage
from mailbot.mail.parse import parse_message
from tests import factories

OWN = "security@example.test"
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
_uids = itertools.count(1)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    tmp: Path = tmp_path_factory.mktemp("hostile-properties")
    instance = factories.app(
        factories.settings(
            tmp,
            MailboxSettings(host="127.0.0.1", username=OWN),
            SmtpSettings(host="127.0.0.1", from_address=f"Example Security <{OWN}>"),
            # Hundreds of examples from fresh senders each expect a receipt: no hourly limit.
            receipts_per_hour=1_000_000,
        )
    )
    # One case to correlate against, by thread id and by tag.
    with instance.db.session() as s:
        process(s, fetched(b"From: r@reporter.example\nMessage-ID: <seed@r>\n\nhi\n"),
                instance.intake)  # fmt: skip
    yield instance
    instance.close()


def fetched(raw: bytes, folder: str = "INBOX") -> FetchedMessage:
    return FetchedMessage(
        raw=raw, folder=folder, uidvalidity=1, uid=next(_uids), internal_date=datetime.now(UTC)
    )


# ---------------------------------------------------------------------------------------------
# Arbitrary bytes never raise

FRAGMENTS = [
    b"From: a@b.example\r\n",
    b"From: alice@team.example.test\r\n",
    b"From: =?utf-8?q?x=40y?= <c@d.example>\r\n",
    b"From: j\xc3\xbcrgen@reporter.example\r\n",
    b"From: rita@-bad-.example\r\n",
    b"From: Ja <j@xn--bcher-kva.example>\r\n",
    b"Subject: [SEC-2026-0001] =?utf-8?b?w6k=?=\r\n",
    b"In-Reply-To: <seed@r>\r\n",
    b"References: <SEC-2026-0001.receipt.n.0123456789abcdef@example.test>\r\n",
    b"Authentication-Results: mx.example.test; dmarc=pass header.from=team.example.test\r\n",
    b"Auto-Submitted: auto-replied\r\n",
    b"Content-Type: multipart/mixed; boundary=X\r\n",
    b"Content-Type: message/rfc822\r\n",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=X\r\n",
    b"Content-Type: text/html; charset=bogus\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Disposition: attachment; filename*=utf-8''..%2F..%00x\r\n",
    b"--X\r\n",
    b"--X--\r\n",
    b"\r\n",
    b"\n",
    b"\r",
    b" folded\r\n",
    b"=?",
    b"/close spam\r\n",
    b"<script>alert(1)</script>",
    b"\x00\xff\xfe\xe2\x80\xa8",
]
mail_like = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=40)), max_size=40
).map(b"".join)
anything = st.one_of(st.binary(max_size=3000), mail_like)


@PROPERTY
@given(raw=anything, folder=st.sampled_from(["INBOX", "Sent"]))
def test_arbitrary_bytes_through_parse_classify_and_correlate_never_raise(
    app: App, raw: bytes, folder: str
) -> None:
    msg = parse_message(raw, max_bytes=app.settings.policy.max_message_bytes)
    facts = classify(msg, folder, app.settings)
    with app.db.session() as session:
        where = correlate(
            session,
            msg,
            trusted_team=facts.trusted_team.yes,
            case_prefix=app.settings.policy.case_prefix,
            token_key=app.writer.token_key,
        )
        session.rollback()
    assert where.case_id is None or where.case_id.startswith("SEC-")
    assert isinstance(facts.flags(), list)


# ---------------------------------------------------------------------------------------------
# Automatic mail is never answered

cased = st.sampled_from([str.lower, str.upper, str.title, lambda s: s])
auto_submitted = st.builds(
    lambda keyword, how, tail: ("Auto-Submitted", how(keyword) + tail),
    st.sampled_from(["auto-replied", "auto-generated", "auto-notified", "x-mine", "yes", ""]),
    cased,
    st.sampled_from(["", " (vacation)", "; owner-email=o@lists.example", " ;x=y"]),
)
precedence = st.builds(
    lambda keyword, how, tail: ("Precedence", how(keyword) + tail),
    st.sampled_from(["bulk", "junk", "list"]),
    cased,
    st.sampled_from(["", " (mass mail)", ";x"]),
)
list_field = st.builds(
    lambda suffix, value: (f"List-{suffix}", value),
    st.sampled_from(["Id", "Unsubscribe", "Post", "Help", "Subscribe", "Owner", "Archive", "X"]),
    st.sampled_from(["<announce.lists.example>", "<mailto:x@lists.example>", "NO", ""]),
)
suppress = st.sampled_from(["All", "OOF", "DR, RN, NRN", "AutoReply"]).map(
    lambda v: ("X-Auto-Response-Suppress", v)
)
null_return_path = st.sampled_from(["<>", " <> ", "<> (bounce)"]).map(lambda v: ("Return-Path", v))
machine_from = st.builds(
    lambda local, how, domain: ("From", f"{how(local)}@{domain}"),
    st.sampled_from(["mailer-daemon", "postmaster", "MAILER-DAEMON", "noreply"]),
    cased,
    st.sampled_from(["mx.reporter.example", "example.test", "a.b.c.example"]),
)
loop = st.just((LOOP_HEADER, OWN))
own_from = st.sampled_from([OWN, f"Example Security <{OWN}>", OWN.upper()]).map(
    lambda v: ("From", v)
)
AUTOMATIC_SIGN = st.one_of(
    auto_submitted, precedence, list_field, suppress, null_return_path, machine_from, loop, own_from
)
REPORT_BODY = (
    b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; "
    b'boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n'
    b"--b\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n\r\n--b--\r\n"
)
subject = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=60).map(
    lambda s: "".join(" " if c in "\r\n" else c for c in s)
)
_senders = itertools.count(1)


def build(sender: str, subject_text: str, fields: list[tuple[str, str]], report: bool) -> bytes:
    has_from = any(name == "From" for name, _ in fields)
    lines = [] if has_from else [f"From: {sender}"]
    lines += [f"{name}: {value}" for name, value in fields]
    lines += [
        f"To: {OWN}",
        f"Subject: {subject_text}",
        f"Message-ID: <m{next(_uids)}@reporter.example>",
    ]
    head = "\r\n".join(lines).encode("utf-8", "surrogatepass") + b"\r\n"
    return head + (REPORT_BODY if report else b"\r\nThe login form reflects it.\r\n")


def receipts(app: App) -> int:
    with app.db.session() as s:
        return int(s.scalar(select(func.count()).where(Outbox.kind == "receipt")) or 0)


def run(app: App, raw: bytes) -> Outcome:
    with app.db.session() as session:
        return process(session, fetched(raw), app.intake)


@PROPERTY
@given(
    signs=st.lists(AUTOMATIC_SIGN, min_size=1, max_size=3),
    report=st.booleans(),
    subject_text=subject,
)
def test_a_message_classified_automatic_is_never_answered(
    app: App, signs: list[tuple[str, str]], report: bool, subject_text: str
) -> None:
    sender = f"r{next(_senders)}@reporter.example"
    before = receipts(app)
    # The same report without any sign, from a fresh sender, is answered: the pipeline is live.
    assert run(app, build(sender, subject_text, [], report=False)) is Outcome.OPENED
    assert receipts(app) == before + 1

    automatic = build(f"other-{sender}", subject_text, signs, report)
    msg = parse_message(automatic)
    facts = classify(msg, "INBOX", app.settings)
    assert facts.automatic.yes or facts.own.yes
    outcome = run(app, automatic)

    assert outcome is Outcome.OPENED
    assert receipts(app) == before + 1


@PROPERTY
@given(raw=anything, folder=st.sampled_from(["INBOX", "Sent"]))
def test_the_whole_pipeline_never_raises_on_arbitrary_mail(
    app: App, raw: bytes, folder: str
) -> None:
    with app.db.session() as session:
        outcome = process(session, fetched(raw, folder), app.intake)

    assert outcome in (Outcome.OPENED, Outcome.ADDED, Outcome.DUPLICATE)


@PROPERTY
@given(raw=anything)
def test_whatever_is_classified_automatic_gets_no_receipt(app: App, raw: bytes) -> None:
    msg = parse_message(raw)
    facts = classify(msg, "INBOX", app.settings)
    before = receipts(app)

    run(app, raw)

    if facts.automatic.yes or facts.own.yes or msg.sender is None:
        assert receipts(app) == before
