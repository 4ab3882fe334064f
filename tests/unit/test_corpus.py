"""Every message of the real-mail corpus goes through parsing and every rule unharmed.

The corpus (real bounces, spam, MIME torture tests, broken mail) is part of the repository, in
``tests/data/corpus/``; its SOURCES.md names where each folder comes from and under which licence,
and its MANIFEST.tsv lists every message with its origin.
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

TESTS = Path(__file__).resolve().parents[1]
CORPUS = TESTS / "data" / "corpus"
TEAM = TeamSettings(
    addresses=("kijitora@example.jp",),
    domains=("example.com", "example.jp"),
    authserv_id="mx.google.com",
)


def manifest() -> list[str]:
    rows = (CORPUS / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[0].split("\t")[:3] == ["file", "source_repo", "source_path"]
    return [row.split("\t", 1)[0] for row in rows[1:] if row.strip()]


FILES = [CORPUS / name for name in manifest()]


def test_the_corpus_travels_with_the_code() -> None:
    # Every message listed is there, and every file there is listed or is documentation.
    on_disk = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file()}
    documents = {"SOURCES.md", "MANIFEST.tsv"} | {
        n for n in on_disk if n.startswith("LICENSES/")}
    assert len(FILES) > 200
    assert on_disk - documents == set(manifest())


def test_only_permissively_licensed_folders_are_in_the_corpus() -> None:
    folders = {name.split("/", 1)[0] for name in manifest()}
    assert folders == {
        "sisimai-set-of-emails", "spamscope-mail-parser", "mailgun-flanker",
        "apache-spamassassin", "apache-james-mime4j", "stalwart-mail-parser-eml"}
    assert not [n for n in manifest() if "/mimetools-testmsgs/" in n or "/legacy/" in n]
    sources = (CORPUS / "SOURCES.md").read_text(encoding="utf-8")
    for left_out in ("notmuch", "Thunderbird", "Hunny Software", "MIME-tools", "oss-security"):
        assert left_out in sources


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
