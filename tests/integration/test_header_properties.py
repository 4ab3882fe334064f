"""No value in any header field keeps a message from becoming a case, on SQLite and PostgreSQL.

Hypothesis writes header fields byte for byte (any name mailbot reads, any value: dates out of
range, ids thousands of characters long, controls, 8-bit junk, encoded words, case tags that
overflow their column) above a body that may carry the team's commands with any argument, and
sends each message through the whole intake (parse, classify, correlate, apply, receipt) into
the database, committed. Every message must end up stored on a case, and nothing may raise.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from mailbot.app import App
from mailbot.cases.models import Case, Message
from mailbot.config import MailboxSettings, SmtpSettings
from mailbot.intake.pipeline import process
from mailbot.mail.message import FetchedMessage
from mailbot.mail.parse import dedupe_key
from tests import factories
from tests.mailflow import PASS

OWN = "security@example.test"
PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
_uids = itertools.count(1)

NAMES = [
    "From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To",
    "References", "Content-Type", "Content-Disposition", "Content-Transfer-Encoding",
    "Authentication-Results", "Auto-Submitted", "Precedence", "List-Id", "Return-Path",
    "X-Mailbot-Loop", "MIME-Version", "X-Anything",
]
DATES = [
    "Fri, 31 Dec 9999 23:59:59 -1400", "Mon, 01 Jan 0000 00:00:00 +0000",
    "Thu, 01 Jan 1970 00:00:00 +0001", "Wed, 31 Dec 1969 23:59:59 +0000",
    "Sat, 01 Jan 0001 00:00:00 +1400", "31 Dec 9999 23:59:60 +9959", "Tue, 1 Jan 2030 25:61:61",
    "-1", "99999999999", "Mon, 32 Foo 2026 10:00:00 +0000", "=?utf-8?q?today?=",
]
VALUES = [
    f"Alice <alice@{factories.TEAM_DOMAIN}>", OWN, "rita@reporter.example",
    "[SEC-2026-0001] hi", "[SEC-2026-" + "9" * 60 + "]", "<" + "x" * 5000 + "@y>",
    "<seed@reporter.example>", "=?utf-8?b?" + "QUFB" * 400 + "?=",
    "a" * 70 + "@" + "b." * 200 + "c",
    PASS, "auto-replied", "multipart/mixed; boundary=X", "message/rfc822", "base64",
    "text/plain; charset=utf-7", "text/html; charset=utf-16",
    "\u202e\u0000\udcff", "\x00\x7f", *DATES,
]
COMMANDS = [
    "/ack", "/assess severity=high target=9999-12-31", "/assess severity=x target=0001-01-01",
    "/duplicate SEC-2026-" + "0" * 50, "/duplicate SEC-2026-0001", "/cve CVE-2026-" + "1" * 60,
    "/credit " + "x" * 500, "/close " + "y" * 300, "/reopen", "/resolve", "/\x00",
    "/credit +2D0-x", "/cve +2D0-",
]

header_value = st.one_of(
    st.sampled_from(VALUES),
    st.sampled_from(VALUES),  # the hostile ones twice as often as free text
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
).map(lambda v: v.replace("\r", " ").replace("\n", " "))
field = st.tuples(st.sampled_from(NAMES), header_value)
TEAM = [("Authentication-Results", PASS), ("From", f"Alice <alice@{factories.TEAM_DOMAIN}>"),
        ("In-Reply-To", "<seed@reporter.example>")]
body = st.lists(st.one_of(st.sampled_from(COMMANDS), st.text(max_size=80)), max_size=6).map(
    "\n".join
)


def build(fields: list[tuple[str, str]], text: str) -> bytes:
    head = b"".join(
        name.encode() + b": " + value.encode("utf-8", "surrogateescape") + b"\r\n"
        for name, value in fields
    )
    return head + b"\r\n" + text.encode("utf-8", "surrogateescape")


def app_on(request: pytest.FixtureRequest, tmp_path: Path) -> App:
    """An app on SQLite or PostgreSQL (the fixture's param), with no mailbox to read: messages
    reach intake through ``deliver``."""
    url = None
    if request.param == "postgresql":
        pytest.importorskip("psycopg")
        url = request.getfixturevalue("pg_url")
    return factories.app(
        factories.settings(
            tmp_path,
            MailboxSettings(host="127.0.0.1", username=OWN),
            SmtpSettings(host="127.0.0.1", from_address=f"Example Security <{OWN}>"),
            database_url=url,
        )
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    instance = app_on(request, tmp_path)
    seed = b"From: rita@reporter.example\r\nMessage-ID: <seed@reporter.example>\r\n\r\nhi\r\n"
    deliver(instance, seed)
    yield instance
    instance.close()


def deliver(app: App, raw: bytes, folder: str = "INBOX") -> None:
    fetched = FetchedMessage(raw=raw, folder=folder, uidvalidity=1, uid=next(_uids),
                             internal_date=datetime.now(UTC))
    with app.db.session() as session:
        process(session, fetched, app.intake)
        session.commit()


def assert_on_a_case(app: App, raw: bytes) -> None:
    with app.db.session() as s:
        keys = app.intake.raw_store.index_keys(dedupe_key(raw))  # stored keyed
        stored = s.scalars(select(Message).where(Message.dedupe_key.in_(keys))).one()
        assert s.get(Case, stored.case_id) is not None
        assert stored.date is None or stored.date.year < 2200


def test_each_hostile_value_in_every_field_still_makes_a_case(app: App) -> None:
    for value in VALUES:
        clean = value.replace("\r", " ").replace("\n", " ")
        everywhere = build([(name, clean) for name in NAMES], "\n".join(COMMANDS))
        # The team's message keeps what makes it the team's (and not mailbot's own: no loop
        # field), so that its commands run with every argument.
        kept = [(n, clean) for n in NAMES if n not in ("From", "In-Reply-To",
                                                        "Authentication-Results",
                                                        "X-Mailbot-Loop")]
        team = build([*TEAM, *kept], "\n".join(COMMANDS))
        for raw in (everywhere, team):
            deliver(app, raw)
            assert_on_a_case(app, raw)


@PROPERTY
@given(fields=st.lists(field, max_size=12), text=body, team=st.booleans(),
       folder=st.sampled_from(["INBOX", "INBOX", "Sent"]))
def test_any_header_values_still_make_a_case(
    app: App, fields: list[tuple[str, str]], text: str, team: bool, folder: str
) -> None:
    raw = build([*TEAM, *fields] if team else fields, text)

    deliver(app, raw, folder)

    assert_on_a_case(app, raw)
