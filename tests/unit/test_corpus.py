"""Every message of the shared third-party corpus goes through parsing and every rule unharmed.

The corpus (real bounces, spam, MIME torture tests, broken mail; see its SOURCES.md) lives next
to the repository and is not part of it; without it these tests are skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.config import TeamSettings
from mailbot.intake.rules import (
    Verdict,
    claims_team,
    is_automatic,
    is_our_own,
    is_trusted_team,
)
from mailbot.mail.message import Address, InboundMessage
from mailbot.mail.parse import dedupe_key, header_block_sender, parse_message

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
NOT_MESSAGES = {"SOURCES.md", "PARSE_REPORT.md", "MANIFEST.tsv"}
TEAM = TeamSettings(
    addresses=("kijitora@example.jp",),
    domains=("example.com", "example.jp"),
    authserv_id="mx.google.com",
)


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name not in NOT_MESSAGES)


FILES = corpus_files()
needs_corpus = pytest.mark.skipif(not FILES, reason=f"no message corpus at {CORPUS}")


@needs_corpus
def test_the_corpus_holds_hundreds_of_messages() -> None:
    assert len(FILES) > 300


@needs_corpus
@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_message_parses_and_meets_every_rule(path: Path) -> None:
    raw = path.read_bytes()
    msg = parse_message(raw)
    assert isinstance(msg, InboundMessage)
    assert msg.raw_size == len(raw)
    assert msg.date is None or msg.date.tzinfo is not None
    assert len(msg.references) <= 100
    assert all(a.addr == a.addr.lower() and a.addr.count("@") == 1 for a in msg.from_)
    assert "\x00" not in msg.text_body and "\n" not in msg.subject

    key = dedupe_key(raw)
    assert len(key) == 64 and key == dedupe_key(raw)
    sender = header_block_sender(raw)
    assert sender is None or isinstance(sender, Address)

    verdicts = [
        is_automatic(msg),
        is_our_own(msg, own_address="security@example.test"),
        claims_team(msg, TEAM),
        is_trusted_team(msg, TEAM, in_sent_folder=False),
        is_trusted_team(msg, TEAM, in_sent_folder=True),
    ]
    assert all(isinstance(v, Verdict) and v.reason for v in verdicts)


@needs_corpus
def test_every_corpus_bounce_and_vacation_reply_is_automatic() -> None:
    # sisimai's folders hold bounces, DSNs, ARF reports and auto-replies, except maildir/not/.
    sisimai = CORPUS / "sisimai-set-of-emails" / "maildir"
    machine_made = [p for p in FILES if sisimai in p.parents and "not" not in p.parts]
    missed = [
        str(p.relative_to(CORPUS))
        for p in machine_made
        if not is_automatic(parse_message(p.read_bytes())).yes
    ]
    assert machine_made
    assert missed == []
